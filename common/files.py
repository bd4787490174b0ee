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


def write_text_atomic(path, text):
    """Write ``text`` to a temporary file, flush it to disk, then rename: a crash leaves the
    old file or the new one, never a part.  Returns ``path``."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def write_json_atomic(path, obj):
    """``obj`` as indented, key-sorted JSON, written atomically; returns ``path``."""
    return write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=True))
