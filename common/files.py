"""Run files: JSON read with a one-line error, JSON and text written atomically."""
import json
import os


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


def write_text_atomic(path, text):
    """Write ``text`` to a temporary file, flush it to disk, then rename: a crash leaves the
    old file or the new one, never a part.  Returns ``path``.  The rename replaces a link at
    ``path`` itself, never what it points to; a link at the temporary name is refused."""
    tmp = path + ".tmp"
    with open_new_file(tmp) as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def write_json_atomic(path, obj):
    """``obj`` as indented, key-sorted JSON, written atomically; returns ``path``."""
    return write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=True))
