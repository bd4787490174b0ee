"""The run directory's lock: one training writes a run directory at a time."""
import errno
import fcntl
import os

from common.files import LinkError, refuse_link

from .layout import RunError


class RunLock:
    """An exclusive ``flock`` on ``<run>/<name>`` for as long as this object lives.

    A second training into the same directory fails at once with one line naming
    the holder's pid (written into the lock file).
    """

    def __init__(self, run_dir, name=".lock"):
        self.path = os.path.join(run_dir, name)
        try:
            self.fd = os.open(refuse_link(self.path), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except LinkError as err:
            raise RunError(str(err))
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(self.fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(self.fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise RunError("%s is being written by another training (pid %s); wait for it to end or "
                                  "use another --out" % (run_dir, holder))
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, b"%d\n" % os.getpid(), 0)

    def release(self, remove=False):
        if self.fd is not None:
            if remove:
                os.remove(self.path)
            os.close(self.fd)
            self.fd = None
