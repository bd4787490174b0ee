"""The one test hook in production code: end the process at a named point, as ``kill -9`` would.

With ``$DEPTH_CRASH_AFTER=<point>[#n]`` the process ends at once (``os._exit(137)``: no cleanup,
no ``finally``) the n-th time (default: the first) it reaches ``crash_point(<point>)``.  Points:

* ``<tag>:tmp``, ``<tag>:swap``, ``<tag>`` for tag ``last`` or ``best``: a checkpoint save with its
  files written but not swapped in, between its two renames, complete (training/checkpoint.py);
* ``step:<epoch>:<iteration>``: right after the mid-epoch checkpoint at that point
  (training/trainer.py, with ``--save-every``).

Tests may also replace ``crash_point`` (``monkeypatch.setattr(common.crash, "crash_point", ...)``):
production code calls it through this module.
"""
import os

CRASH_ENV = "DEPTH_CRASH_AFTER"
_reached = {}


def crash_point(point):
    """End the process here if ``$DEPTH_CRASH_AFTER`` names ``point`` (module docstring)."""
    wanted = os.environ.get(CRASH_ENV)
    if wanted and wanted.split("#")[0] == point:
        _reached[point] = _reached.get(point, 0) + 1
        if _reached[point] == int(wanted.split("#")[1] if "#" in wanted else 1):
            os._exit(137)
