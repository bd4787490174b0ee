"""The layout of a run directory and the one exception of this layer.

A run directory ``runs/NAME`` holds::

    config.json      every flag + package versions + git commit + CPU model (rundir/files.py)
    split.json       labeled / unlabeled / val source ids and their train.h5 rows
    metrics.jsonl    one JSON line per epoch
    curves.png       the losses of metrics.jsonl
    .lock            held by the training writing it (rundir/lock.py)
    checkpoints/last/, checkpoints/best/   (best only with --val-frac > 0)
    checkpoints/cache-shards/              (sharded pseudo-label caches, training/checkpoint.py)

A checkpoint directory holds ``FILES`` (``LEGACY_FILES`` before optimiser states left pickle);
training/checkpoint.py writes it crash-safe.
"""
import os

import mxnet as mx

from data.errors import one_line

from .state import TrainingPoint

CHECKPOINTS = "checkpoints"
FILES = ("depth_net.params", "conf_net.params", "depth_trainer.nd",
         "conf_trainer.nd", "cache.nd", "state.json")
# the layout before optimiser states left pickle (see the module docstring)
LEGACY_FILES = ("depth_net.params", "conf_net.params", "depth_trainer.states",
                "conf_trainer.states", "cache.nd", "state.json")
TAGS = ("last", "best")
SHARDS = "cache-shards"


class RunError(Exception):
    """A run directory that cannot be used as asked: no checkpoint, a lock held, a mistyped record,
    another network, a full disk (one-line message)."""


def is_complete(path):
    """A checkpoint directory with every file (of this layout or the pickled one)."""
    return any(all(os.path.isfile(os.path.join(path, f)) for f in files) for files in (FILES, LEGACY_FILES))


def is_legacy(path):
    return not all(os.path.isfile(os.path.join(path, f)) for f in FILES)


def checkpoint_dir(run_dir, tag):
    """The directory of checkpoint ``tag`` ('last', 'best') or an explicit path."""
    if os.path.isdir(tag) and os.path.isfile(os.path.join(tag, "state.json")):
        return tag
    root = os.path.join(run_dir, CHECKPOINTS)
    for name in (tag, ".old-" + tag):
        path = os.path.join(root, name)
        if is_complete(path):
            return path
    raise RunError("no complete checkpoint '%s' in %s (train first, or pick --checkpoint last|best|PATH)"
                          % (tag, run_dir))


def named_shards(run_dir):
    """The cache shard directories that a checkpoint of the run names."""
    root = os.path.join(run_dir, CHECKPOINTS)
    named = set()
    for name in os.listdir(root):
        try:
            cache = TrainingPoint.read(os.path.join(root, name), RunError, required=()).cache
        except (RunError, OSError):
            continue
        if cache and isinstance(cache.get("shards"), str):
            named.add(cache["shards"])
    return named


def load_state(path):
    """The ``TrainingPoint`` (state.json) and the cache arrays of a checkpoint directory."""
    state = TrainingPoint.read(path, RunError)
    try:
        cache = mx.nd.load(os.path.join(path, "cache.nd"))
    except mx.base.MXNetError as err:
        raise RunError("%s: cannot load (%s)" % (os.path.join(path, "cache.nd"), one_line(err)))
    return state, cache


def best_epoch(history):
    """(epoch, val_rel) of the first lowest validation rel in ``history``, or (None, inf)."""
    epoch, best = None, float("inf")
    for m in history:
        if m.get("val_rel") is not None and m["val_rel"] < best:
            epoch, best = m["epoch"], m["val_rel"]
    return epoch, best
