"""Crash-safe checkpoints of a training point (the run directory's layout: rundir/layout.py).

A checkpoint directory holds ``depth_net.params``, ``conf_net.params``,
``depth_trainer.nd``, ``conf_trainer.nd``, ``cache.nd`` (the pseudo-label cache,
``mx.nd.save``) and ``state.json`` (the ``rundir.state.TrainingPoint``: epoch, iteration
within it, seed, counters, history, the optimisers' records).  It is written to
``.tmp-<tag>`` first and then swapped in with renames, so a crash at any moment leaves
either the old or the new checkpoint complete (``.old-<tag>`` is picked up if the crash
fell between the two renames).

``Checkpoints`` saves and restores a whole training point (both networks, both
optimisers, the pseudo-label cache, the trainer's ``TrainingPoint`` in ``state.json``),
starts a run directory and opens one for a resume.  A
cache in files (``--cache-on disk``) or spread over workers cannot live in
``checkpoints/last``, which must be a consistent snapshot; instead, at every
checkpoint each rank copies its cache to ``checkpoints/cache-shards/<point>/rank<r>/``
(``CacheSnapshots``: written as ``rank<r>.tmp``, fsynced and renamed), where
``<point>`` is the (epoch, iteration) the checkpoint resumes at; ``state.json`` names
``<point>`` and the number of ranks, and ``cache.nd`` holds a placeholder.  The
checkpoint is swapped in only after every shard is complete, and shard directories
are deleted only once no complete checkpoint names them, so a crash at any moment
leaves the newest complete checkpoint and its shards intact.  ``best`` and ``last``
written at the same point share one shard directory.

Optimiser states are arrays plus a JSON record (``training.optim_states``), never
pickles: resuming a run directory from someone else runs no code from it.  A
checkpoint from before that change (``*_trainer.states``, pickles) is refused unless
``train.py --trust-pickled-states`` says its author is trusted; it is then converted.

The run directory is locked by the training writing it (rundir/lock.py), and ``tidy``
(at every start) removes what an interrupted save left behind.

Test hook: ``$DEPTH_CRASH_AFTER`` ends the process like ``kill -9`` at a save's stages
``<tag>:tmp``, ``<tag>:swap`` and ``<tag>`` (common/crash.py).
"""
import dataclasses
import os
import shutil

import mxnet as mx
from tqdm import tqdm

from common import crash
from common.files import failed_write, refuse_link, refuse_links_below, write_json_atomic
from rundir.files import check_split, curves_png, start_run, write_metrics
from rundir.layout import (CHECKPOINTS, SHARDS, RunError, best_epoch, checkpoint_dir, is_complete, is_legacy,
                           load_state, named_shards)
from rundir.nets import load_parameters
from rundir.state import TrainingPoint

from . import optim_states


def save(run_dir, tag, depth_net, conf_net, depth_trainer, conf_trainer, cache_arrays, state):
    """Write checkpoint ``tag`` of ``state`` (a ``TrainingPoint``) atomically (see the module docstring)."""
    root = refuse_links_below(run_dir, os.path.join(run_dir, CHECKPOINTS))
    os.makedirs(root, exist_ok=True)
    tmp, final, old = (refuse_link(os.path.join(root, p + tag)) for p in (".tmp-", "", ".old-"))
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_files(tmp, depth_net, conf_net, depth_trainer, conf_trainer, cache_arrays, state)
    except (OSError, mx.base.MXNetError) as err:  # a full disk: leave no partial .tmp- behind to keep it full
        raise RunError("%s; the previous checkpoint is intact: free space, then resume the run"
                              % failed_write("checkpoint " + final, err, tmp)) from None
    crash.crash_point(tag + ":tmp")
    swap_in(tmp, final, old, tag)
    crash.crash_point(tag)
    return final


def write_files(tmp, depth_net, conf_net, depth_trainer, conf_trainer, cache_arrays, state):
    """Every file of a checkpoint into the new directory ``tmp``, fsynced."""
    os.makedirs(tmp)
    depth_net.save_parameters(os.path.join(tmp, "depth_net.params"))
    conf_net.save_parameters(os.path.join(tmp, "conf_net.params"))
    state = dataclasses.replace(state, optimizers={
        name: optim_states.save(trainer, os.path.join(tmp, name + "_trainer.nd"))
        for name, trainer in (("depth", depth_trainer), ("conf", conf_trainer))})
    mx.nd.save(os.path.join(tmp, "cache.nd"), cache_arrays)
    write_json_atomic(os.path.join(tmp, "state.json"), state.to_json())
    for name in os.listdir(tmp):
        fd = os.open(os.path.join(tmp, name), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


def swap_in(tmp, final, old, tag=""):
    """Replace ``final`` by the complete directory ``tmp``; ``old`` holds it in between."""
    if os.path.isdir(final):
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
    crash.crash_point(tag + ":swap")
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def load_optimisers(path, state, depth_trainer, conf_trainer, trust_pickles=False):
    """Both optimisers' states from checkpoint ``path``; pickles only when trusted."""
    trainers = (("depth", depth_trainer), ("conf", conf_trainer))
    if not is_legacy(path):
        for name, trainer in trainers:
            optim_states.load(trainer, os.path.join(path, name + "_trainer.nd"), state.optimizers.get(name))
        return
    if not trust_pickles:
        raise RunError("%s holds optimiser states as pickles (*_trainer.states, an older format), which "
                              "can run code when loaded; if you trust whoever wrote it, resume once with "
                              "--trust-pickled-states to convert it" % path)
    for name, trainer in trainers:
        trainer.load_states(os.path.join(path, name + "_trainer.states"))


def tidy(run_dir):
    """Undo what a save interrupted at any moment left (module docstring)."""
    root = os.path.join(run_dir, CHECKPOINTS)
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        path = os.path.join(root, name)
        if name.startswith(".tmp-"):
            shutil.rmtree(path, ignore_errors=True)
        elif name.startswith(".old-"):
            final = os.path.join(root, name[len(".old-"):])
            if not os.path.isdir(final) and is_complete(path):
                os.rename(path, final)  # the crash fell between the two renames of swap_in
            else:
                shutil.rmtree(path, ignore_errors=True)
    shards = os.path.join(root, SHARDS)
    for point in os.listdir(shards) if os.path.isdir(shards) else []:
        for name in os.listdir(os.path.join(shards, point)):
            if name.endswith(".tmp"):
                shutil.rmtree(os.path.join(shards, point, name), ignore_errors=True)
    for name in os.listdir(run_dir):
        if name.endswith(".tmp") or name.endswith(".tmp.png"):
            os.remove(os.path.join(run_dir, name))


def repair_best(run_dir, history, last_path, last_state):
    """Make ``best`` the checkpoint after the best epoch of ``history`` again.

    ``best`` is written right after ``last`` at the same point, so after a crash
    between the two ``last`` is exactly the missing ``best``.  Returns a note or None.
    """
    epoch, _ = best_epoch(history)
    if epoch is None:
        return None
    root = os.path.join(run_dir, CHECKPOINTS)
    best = os.path.join(root, "best")
    try:
        point = TrainingPoint.read(best, RunError)
        if is_complete(best) and (point.epoch, point.iteration) == (epoch + 1, 0):
            return None
    except RunError:
        pass
    if (last_state.epoch, last_state.iteration) != (epoch + 1, 0):
        return "checkpoints/best is not the best epoch (%d) of the history and cannot be rebuilt" % (epoch + 1)
    tmp = os.path.join(root, ".tmp-best")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(last_path, tmp)
    swap_in(tmp, best, os.path.join(root, ".old-best"))
    return "checkpoints/best restored (epoch %d)" % (epoch + 1)


class CacheSnapshots:
    """Cache shards of checkpoints under ``<run>/checkpoints/cache-shards/`` (module docstring).

    Parameters
    ----------
    run_dir : str
    rank, world : int
        This process's rank and the number of ranks.
    """

    def __init__(self, run_dir, rank=0, world=1):
        self.root = os.path.join(run_dir, CHECKPOINTS, SHARDS)
        self.rank, self.world = rank, world

    @staticmethod
    def point(epoch, iteration):
        """The shard directory name of a checkpoint; sorts like (epoch, iteration)."""
        return "e%05d-i%08d" % (epoch, iteration)

    def write(self, cache, epoch, iteration):
        """This rank's shard for the checkpoint at (epoch, iteration); returns its state entry."""
        name = self.point(epoch, iteration)
        final = os.path.join(self.root, name, "rank%d" % self.rank)
        tmp = final + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        cache.save_files(tmp)
        shutil.rmtree(final, ignore_errors=True)  # an unreferenced shard of an interrupted save
        os.rename(tmp, final)
        return {"shards": os.path.join(SHARDS, name), "world": self.world}

    def load(self, cache, entry, checkpoints_dir):
        """Restore this rank's shard named by a checkpoint's ``TrainingPoint.cache``."""
        if entry["world"] != self.world:
            raise RunError("the checkpoint holds the cache of %d worker(s); resume with %d worker(s), not %d"
                                  % (entry["world"], entry["world"], self.world))
        shard = os.path.join(checkpoints_dir, entry["shards"], "rank%d" % self.rank)
        if not os.path.isdir(shard):
            raise RunError("cache shard %s of the checkpoint is missing" % shard)
        cache.load_files(shard)

    def prune(self, referenced, before):
        """Delete shard directories older than ``before`` that no checkpoint names."""
        if not os.path.isdir(self.root):
            return
        keep = {os.path.basename(path) for path in referenced}
        for name in os.listdir(self.root):
            if name not in keep and name < before:
                shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)


class Checkpoints:
    """A training's run directory: ``start`` a new one, ``save(tag, point)`` / ``restore(path)`` a training
    point, ``open_last`` for a resume, ``rewrite_outputs`` (metrics.jsonl, curves.png) from a history.

    Parameters
    ----------
    run_dir : str
    nets : (depth_net, conf_net)
    optimisers : (depth_trainer, conf_trainer), ``gluon.Trainer``
    cache : the pseudo-label cache (``training.cache`` or ``training.disk_cache``)
    world : training.distributed.World
        Rank, size and barrier of the workers (a single process: rank 0 of 1).
    sharded : bool
        Keep the cache as shards beside the checkpoints, not in ``cache.nd``.
    ctx : list of mx.Context
        Where restored parameters go.
    """

    def __init__(self, run_dir, nets, optimisers, cache, world, sharded, ctx):
        self.run_dir, self.nets, self.optimisers, self.cache = run_dir, nets, optimisers, cache
        self.world, self.sharded, self.ctx = world, sharded, ctx
        self.snapshots = CacheSnapshots(run_dir, world.rank, world.size)
        self.last_shards = None  # (point, state entry) of the shards this process wrote last

    def start(self, split, opts, derived):
        """A new run: split.json, then config.json (which makes the directory a run)."""
        os.makedirs(self.run_dir, exist_ok=True)
        if self.world.rank == 0:
            tidy(self.run_dir)
            start_run(self.run_dir, split, opts, derived)

    def open_last(self, split, data):
        """For a resume: rank 0 tidies the directory, every rank checks split.json; the path of
        ``checkpoints/last``, or None if no checkpoint was completed."""
        if self.world.rank == 0:
            tidy(self.run_dir)
        self.world.barrier()
        check_split(self.run_dir, split, data)
        try:
            return checkpoint_dir(self.run_dir, "last")
        except RunError:
            return None

    def fork_source(self, source, split, data):
        """``checkpoints/last`` of run ``source`` for --fork-from (train.py checked its flags)."""
        if self.sharded:
            raise RunError("--fork-from works with the cache in memory of one process, "
                           "not with --cache-on disk or several workers")
        check_split(source, split, data)
        return checkpoint_dir(source, "last")

    def rewrite_outputs(self, history, last_path=None, last_state=None, mask_rule=None):
        """Rank 0: metrics.jsonl and (given ``mask_rule``) curves.png from ``history``; after a resume
        from ``last_path`` also ``best``, if a crash left it behind (``repair_best``)."""
        if self.world.rank != 0:
            return
        note = last_path and repair_best(self.run_dir, history, last_path, last_state)
        if note:
            tqdm.write(note)
        write_metrics(self.run_dir, history)
        if history and mask_rule is not None:
            curves_png(self.run_dir, history, mask_rule)

    def save(self, tag, state):
        """Checkpoint ``tag`` of ``state`` (a ``TrainingPoint``).

        Every worker calls it at the same points for ``last``: each writes its cache
        shard first, then rank 0 the checkpoint.  ``best`` (rank 0 only) follows
        ``last`` at the same point and shares its shards.
        """
        epoch, iteration = state.epoch, state.iteration
        point = CacheSnapshots.point(epoch, iteration)
        if self.sharded:
            if self.last_shards is None or self.last_shards[0] != point:
                self.last_shards = (point, self.snapshots.write(self.cache, epoch, iteration))
                self.world.barrier()  # every shard is complete before rank 0 names them
            state = dataclasses.replace(state, cache=self.last_shards[1])
            cache_arrays = {"sharded": mx.nd.zeros((1,))}  # the placeholder: FILES wants a cache.nd
        else:
            cache_arrays = self.cache.arrays()
        if self.world.rank == 0:
            save(self.run_dir, tag, *self.nets, *self.optimisers, cache_arrays, state)
            if self.sharded:
                self.snapshots.prune(named_shards(self.run_dir), before=point)

    def restore(self, path, trust_pickles=False):
        """Networks, optimisers and cache from checkpoint ``path``; returns its ``TrainingPoint``.

        The cache may come from either kind of checkpoint (``--cache-on`` may change
        on resume).  A checkpoint of the pickled layout (trusted) is written again
        without pickles.
        """
        state, cache_arrays = load_state(path)
        for net, name in zip(self.nets, ("depth_net", "conf_net")):
            load_parameters(net, os.path.join(path, name + ".params"), self.ctx)
        load_optimisers(path, state, *self.optimisers, trust_pickles)
        if state.cache is not None:
            self.snapshots.load(self.cache, state.cache, os.path.join(self.run_dir, CHECKPOINTS))
        elif self.world.size > 1:
            raise RunError("%s was written by a single process; resume it with one" % path)
        else:
            self.cache.load(cache_arrays)
        if is_legacy(path):
            self.save("last", dataclasses.replace(state, optimizers={}, cache=None))
        return state
