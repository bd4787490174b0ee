"""Run directories and crash-safe checkpoints.

A run directory ``runs/NAME`` holds::

    config.json      every flag + package versions + git commit
    split.json       labeled / unlabeled / val source ids and their train.h5 rows
    metrics.jsonl    one JSON line per epoch
    curves.png       the losses of metrics.jsonl
    checkpoints/last/, checkpoints/best/   (best only with --val-frac > 0)

A checkpoint directory holds ``depth_net.params``, ``conf_net.params``,
``depth_trainer.states``, ``conf_trainer.states``, ``cache.nd`` (the pseudo-label
cache, ``mx.nd.save``) and ``state.json`` (epoch, iteration within it, seed,
counters).  It is written to ``.tmp-<tag>`` first and then swapped in with renames,
so a crash at any moment leaves either the old or the new checkpoint complete
(``.old-<tag>`` is picked up if the crash fell between the two renames).
"""
import json
import os
import shutil

import mxnet as mx

CHECKPOINTS = "checkpoints"
FILES = ("depth_net.params", "conf_net.params", "depth_trainer.states",
         "conf_trainer.states", "cache.nd", "state.json")


class CheckpointError(Exception):
    """A run directory without a usable checkpoint (one-line message)."""


def write_json_atomic(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise CheckpointError("%s not found" % path)
    except ValueError as err:
        raise CheckpointError("%s is not valid JSON (%s)" % (path, err))


def checkpoint_dir(run_dir, tag):
    """The directory of checkpoint ``tag`` ('last', 'best') or an explicit path."""
    if os.path.isdir(tag) and os.path.isfile(os.path.join(tag, "state.json")):
        return tag
    root = os.path.join(run_dir, CHECKPOINTS)
    for name in (tag, ".old-" + tag):
        path = os.path.join(root, name)
        if all(os.path.isfile(os.path.join(path, f)) for f in FILES):
            return path
    raise CheckpointError("no complete checkpoint '%s' in %s (train first, or pick --checkpoint last|best|PATH)"
                          % (tag, run_dir))


def save(run_dir, tag, depth_net, conf_net, depth_trainer, conf_trainer, cache_arrays, state):
    """Write checkpoint ``tag`` atomically (see the module docstring)."""
    root = os.path.join(run_dir, CHECKPOINTS)
    os.makedirs(root, exist_ok=True)
    tmp, final, old = (os.path.join(root, p + tag) for p in (".tmp-", "", ".old-"))
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    depth_net.save_parameters(os.path.join(tmp, "depth_net.params"))
    conf_net.save_parameters(os.path.join(tmp, "conf_net.params"))
    depth_trainer.save_states(os.path.join(tmp, "depth_trainer.states"))
    conf_trainer.save_states(os.path.join(tmp, "conf_trainer.states"))
    mx.nd.save(os.path.join(tmp, "cache.nd"), cache_arrays)
    write_json_atomic(os.path.join(tmp, "state.json"), state)
    for name in os.listdir(tmp):
        fd = os.open(os.path.join(tmp, name), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    if os.path.isdir(final):
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def load_state(path):
    """state.json and the cache arrays of a checkpoint directory."""
    state = read_json(os.path.join(path, "state.json"))
    cache = mx.nd.load(os.path.join(path, "cache.nd"))
    return state, cache


def load_nets(run_dir, checkpoint="last", ctx=None):
    """Both networks of a run, ready for inference.

    Returns ``(depth_net, conf_net, config, path)``; ``config`` is the run's config.json.
    """
    from symbols import get_depth_net, get_confidence_net
    ctx = ctx or mx.cpu()
    config = read_json(os.path.join(run_dir, "config.json"))
    path = checkpoint_dir(run_dir, checkpoint)
    freeze = config.get("freeze_bn")
    if freeze is None:  # the default: frozen exactly when ImageNet weights were loaded
        freeze = bool(config.get("pretrained") or config.get("backbone_params"))
    depth_net = get_depth_net(pretrained=False, ctx=ctx, freeze_bn=freeze)
    conf_net = get_confidence_net(ctx=ctx)
    depth_net.load_parameters(os.path.join(path, "depth_net.params"), ctx=ctx)
    conf_net.load_parameters(os.path.join(path, "conf_net.params"), ctx=ctx)
    return depth_net, conf_net, config, path
