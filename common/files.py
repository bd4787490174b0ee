"""Run files: JSON read with a one-line error, JSON and text written atomically."""
import contextlib
import errno
import json
import os
import shutil
import sys


class RunFileError(Exception):
    """A run file that is missing or unreadable (one-line message)."""


def read_json(path, required=True, error=RunFileError):
    """The JSON object in ``path``; None if missing and not ``required``; ``error`` if unreadable."""
    if not os.path.isfile(path):
        if required:
            raise error("%s not found" % path)
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as err:
        raise error("%s is not valid JSON (%s)" % (path, err))


class LinkError(OSError):
    """A symbolic link where the project writes a file of its own (one line, naming it)."""


def refuse_link(path):
    """``path`` unless it is a symbolic link: a run or output directory from someone else must never
    make the project write outside it (a ``.lock`` linked to ~/.bashrc would be truncated)."""
    if os.path.islink(path):
        raise LinkError("%s is a symbolic link; the project writes only its own files there, never through a "
                        "link (remove the link)" % path)
    return path


def refuse_links_below(root, path):
    """``path`` unless it or a directory between ``root`` and it is a symbolic link (``root`` itself may be)."""
    rel = os.path.relpath(path, root)
    current = root
    for part in rel.split(os.sep):
        if part in ("", "."):
            continue
        current = os.path.join(current, part)
        refuse_link(current)
    return path


def open_new_file(path, binary=False):
    """``path`` opened for writing (created or truncated), never through a symbolic link."""
    refuse_link(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    return os.fdopen(fd, "wb" if binary else "w")


# Below this many free bytes a failed write is reported as a full disk (MXNet's own writes fail
# with "Check failed: std::fwrite", without an errno).
FULL_BYTES = 1 << 20


def write_failure(path, err):
    """The cause of a failed write of ``path`` in words: "no space left on device (N MB free)" when the
    disk is full, else the error's last line."""
    try:
        stat = os.statvfs(os.path.dirname(os.path.abspath(path)))
        free = stat.f_bavail * stat.f_frsize
    except OSError:
        free = None
    if getattr(err, "errno", None) == errno.ENOSPC or (free is not None and free < FULL_BYTES):
        return "no space left on device (%.1f MB free)" % ((free or 0) / 2 ** 20)
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(err).__name__


def remove_quietly(path):
    """Remove a file or directory tree if it is there (a failed write's leftovers)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        try:
            os.remove(path)
        except OSError:
            pass


def failed_write(path, err, *temporaries):
    """"cannot write PATH: CAUSE" for a write of ``path`` through ``temporaries`` that failed with ``err``;
    the temporaries are removed first, so a full disk is not kept full by the failed attempt."""
    cause = write_failure(temporaries[0] if temporaries else path, err)
    for tmp in temporaries:
        remove_quietly(tmp)
    return "cannot write %s: %s" % (path, cause)


@contextlib.contextmanager
def native_stderr_silenced(silenced=True):
    """File descriptor 2 to /dev/null for the block: MXNet's C++ log lines (LOG(INFO) of the INT8
    quantizer) bypass Python's sys.stderr.  Python exceptions still carry their messages."""
    if not silenced:
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def write_text_atomic(path, text):
    """Write ``text`` to a temporary file, flush it to disk, then rename: a crash leaves the
    old file or the new one, never a part.  Returns ``path``.  The rename replaces a link at
    ``path`` itself, never what it points to; a link at the temporary name is refused.  A
    failed write (a full disk) removes the temporary file and names ``path`` and the cause."""
    tmp = path + ".tmp"
    f = open_new_file(tmp)
    try:
        with f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise OSError(failed_write(path, err, tmp)) from None
    return path


def write_json_atomic(path, obj):
    """``obj`` as indented, key-sorted JSON, written atomically; returns ``path``."""
    return write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=True))
