"""Run directories and crash-safe checkpoints.

A run directory ``runs/NAME`` holds::

    config.json      every flag + package versions + git commit
    split.json       labeled / unlabeled / val source ids and their train.h5 rows
    metrics.jsonl    one JSON line per epoch
    curves.png       the losses of metrics.jsonl
    checkpoints/last/, checkpoints/best/   (best only with --val-frac > 0)

A checkpoint directory holds ``depth_net.params``, ``conf_net.params``,
``depth_trainer.nd``, ``conf_trainer.nd``, ``cache.nd`` (the pseudo-label cache,
``mx.nd.save``) and ``state.json`` (epoch, iteration within it, seed, counters,
history, the optimisers' records).  It is written to ``.tmp-<tag>`` first and then swapped in with renames,
so a crash at any moment leaves either the old or the new checkpoint complete
(``.old-<tag>`` is picked up if the crash fell between the two renames).

``Checkpoints`` saves and restores a whole training point (both networks, both
optimisers, the pseudo-label cache, the trainer's counters in ``state.json``).  A
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

The run directory is locked (``flock`` on ``<run>/.lock``) by the training writing it,
and ``tidy`` (at every start) removes what an interrupted save left behind.

Test hook: with ``$DEPTH_CRASH_AFTER=<stage>`` the process ends at once (``os._exit``,
like ``kill -9``) when a save reaches ``<stage>``: ``<tag>:tmp`` (files written, not
yet swapped in), ``<tag>:swap`` (between the two renames) or ``<tag>`` (complete);
``<stage>#<n>`` ends it the n-th time.
"""
import errno
import fcntl
import os
import shutil

import mxnet as mx

from common.files import (LinkError, failed_write, read_json, refuse_link, refuse_links_below,
                          write_json_atomic)
from common.records import STATE_REQUIRED, read_config, read_state
from data.errors import one_line
from symbols import NETS, get_confidence_net, get_depth_net

CHECKPOINTS = "checkpoints"
FILES = ("depth_net.params", "conf_net.params", "depth_trainer.nd",
         "conf_trainer.nd", "cache.nd", "state.json")
# the layout before optimiser states left pickle (see the module docstring)
LEGACY_FILES = ("depth_net.params", "conf_net.params", "depth_trainer.states",
                "conf_trainer.states", "cache.nd", "state.json")
TAGS = ("last", "best")
SHARDS = "cache-shards"
CRASH_ENV = "DEPTH_CRASH_AFTER"


class CheckpointError(Exception):
    """A run directory without a usable checkpoint (one-line message)."""


_reached = {}


def crash_point(stage):
    """Test hook (module docstring): end the process here, as ``kill -9`` would."""
    wanted = os.environ.get(CRASH_ENV)
    if wanted and wanted.split("#")[0] == stage:
        _reached[stage] = _reached.get(stage, 0) + 1
        if _reached[stage] == int(wanted.split("#")[1] if "#" in wanted else 1):
            os._exit(137)


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
    raise CheckpointError("no complete checkpoint '%s' in %s (train first, or pick --checkpoint last|best|PATH)"
                          % (tag, run_dir))


def save(run_dir, tag, depth_net, conf_net, depth_trainer, conf_trainer, cache_arrays, state):
    """Write checkpoint ``tag`` atomically (see the module docstring)."""
    root = refuse_links_below(run_dir, os.path.join(run_dir, CHECKPOINTS))
    os.makedirs(root, exist_ok=True)
    tmp, final, old = (refuse_link(os.path.join(root, p + tag)) for p in (".tmp-", "", ".old-"))
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_files(tmp, depth_net, conf_net, depth_trainer, conf_trainer, cache_arrays, state)
    except (OSError, mx.base.MXNetError) as err:  # a full disk: leave no partial .tmp- behind to keep it full
        raise CheckpointError("%s; the previous checkpoint is intact: free space, then resume the run"
                              % failed_write("checkpoint " + final, err, tmp)) from None
    crash_point(tag + ":tmp")
    swap_in(tmp, final, old, tag)
    crash_point(tag)
    return final


def write_files(tmp, depth_net, conf_net, depth_trainer, conf_trainer, cache_arrays, state):
    """Every file of a checkpoint into the new directory ``tmp``, fsynced."""
    os.makedirs(tmp)
    depth_net.save_parameters(os.path.join(tmp, "depth_net.params"))
    conf_net.save_parameters(os.path.join(tmp, "conf_net.params"))
    from . import optim_states
    state = dict(state, optimizers={
        name: optim_states.save(trainer, os.path.join(tmp, name + "_trainer.nd"))
        for name, trainer in (("depth", depth_trainer), ("conf", conf_trainer))})
    mx.nd.save(os.path.join(tmp, "cache.nd"), cache_arrays)
    write_json_atomic(os.path.join(tmp, "state.json"), state)
    for name in os.listdir(tmp):
        fd = os.open(os.path.join(tmp, name), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


def swap_in(tmp, final, old, tag=""):
    """Replace ``final`` by the complete directory ``tmp``; ``old`` holds it in between."""
    if os.path.isdir(final):
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
    crash_point(tag + ":swap")
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def load_optimisers(path, state, depth_trainer, conf_trainer, trust_pickles=False):
    """Both optimisers' states from checkpoint ``path``; pickles only when trusted."""
    from . import optim_states
    trainers = (("depth", depth_trainer), ("conf", conf_trainer))
    if not is_legacy(path):
        for name, trainer in trainers:
            optim_states.load(trainer, os.path.join(path, name + "_trainer.nd"), state.get("optimizers", {}).get(name))
        return
    if not trust_pickles:
        raise CheckpointError("%s holds optimiser states as pickles (*_trainer.states, an older format), which "
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


def best_epoch(history):
    """(epoch, val_rel) of the first lowest validation rel in ``history``, or (None, inf)."""
    epoch, best = None, float("inf")
    for m in history:
        if m.get("val_rel") is not None and m["val_rel"] < best:
            epoch, best = m["epoch"], m["val_rel"]
    return epoch, best


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
        point = read_json(os.path.join(best, "state.json"), error=CheckpointError)
        if is_complete(best) and (point["epoch"], point["iteration"]) == (epoch + 1, 0):
            return None
    except (CheckpointError, KeyError, TypeError):
        pass
    if (last_state["epoch"], last_state["iteration"]) != (epoch + 1, 0):
        return "checkpoints/best is not the best epoch (%d) of the history and cannot be rebuilt" % (epoch + 1)
    tmp = os.path.join(root, ".tmp-best")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(last_path, tmp)
    swap_in(tmp, best, os.path.join(root, ".old-best"))
    return "checkpoints/best restored (epoch %d)" % (epoch + 1)


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
            raise CheckpointError(str(err))
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(self.fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(self.fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise CheckpointError("%s is being written by another training (pid %s); wait for it to end or "
                                  "use another --out" % (run_dir, holder))
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, b"%d\n" % os.getpid(), 0)

    def release(self, remove=False):
        if self.fd is not None:
            if remove:
                os.remove(self.path)
            os.close(self.fd)
            self.fd = None


def named_shards(run_dir):
    """The cache shard directories that a checkpoint of the run names."""
    root = os.path.join(run_dir, CHECKPOINTS)
    named = set()
    for name in os.listdir(root):
        try:
            named.add(read_json(os.path.join(root, name, "state.json"), error=CheckpointError)
                      .get("cache", {}).get("shards"))
        except (CheckpointError, OSError, AttributeError):
            continue
    return named - {None}


def load_state(path):
    """state.json and the cache arrays of a checkpoint directory."""
    state = read_state(path, CheckpointError, STATE_REQUIRED)
    try:
        cache = mx.nd.load(os.path.join(path, "cache.nd"))
    except mx.base.MXNetError as err:
        raise CheckpointError("%s: cannot load (%s)" % (os.path.join(path, "cache.nd"), one_line(err)))
    return state, cache


def check_nets(config, run_dir):
    """Refuse, in one line, a run recorded (config.json "nets") for networks other than this code's.

    Runs from before the record was kept have none and are taken as they are: the
    networks and their inputs were the same then.
    """
    recorded = config.get("nets")
    if recorded is None or recorded == NETS:
        return
    name = next(k for k in NETS if recorded.get(k) != NETS[k])
    raise CheckpointError("%s was trained for another %s (%s), this code has %s; use the code of its config.json "
                          "git_commit" % (run_dir, name, recorded.get(name), NETS[name]))


def froze_bn(config):
    """Whether a run's backbone BatchNorm kept its stored statistics: ``--freeze-bn`` if given,
    else frozen exactly when pretrained weights were loaded (symbols/depth_net.py)."""
    if config.get("freeze_bn") is not None:
        return bool(config["freeze_bn"])
    return bool(config.get("pretrained") or config.get("backbone_params"))


def load_nets(run_dir, checkpoint="last", ctx=None):
    """Both networks of a run, ready for inference.

    Returns ``(depth_net, conf_net, config, path)``; ``config`` is the run's config.json.
    """
    ctx = ctx or mx.cpu()
    config = read_config(run_dir, CheckpointError)
    check_nets(config, run_dir)
    path = checkpoint_dir(run_dir, checkpoint)
    depth_net = get_depth_net(pretrained=False, ctx=ctx, freeze_bn=froze_bn(config))
    conf_net = get_confidence_net(ctx=ctx)
    load_parameters(depth_net, os.path.join(path, "depth_net.params"), ctx)
    load_parameters(conf_net, os.path.join(path, "conf_net.params"), ctx)
    return depth_net, conf_net, config, path


def load_parameters(net, path, ctx):
    """``net.load_parameters`` with a one-line error naming the file."""
    try:
        net.load_parameters(path, ctx=ctx)
    except (mx.base.MXNetError, AssertionError, ValueError) as err:
        raise CheckpointError("%s: cannot load (%s)" % (path, one_line(err)))


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
        """Restore this rank's shard named by a checkpoint's ``state["cache"]``."""
        if entry["world"] != self.world:
            raise CheckpointError("the checkpoint holds the cache of %d worker(s); resume with %d worker(s), not %d"
                                  % (entry["world"], entry["world"], self.world))
        shard = os.path.join(checkpoints_dir, entry["shards"], "rank%d" % self.rank)
        if not os.path.isdir(shard):
            raise CheckpointError("cache shard %s of the checkpoint is missing" % shard)
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
    """Save and restore of a training point: ``save(tag, state)`` / ``restore(path)``.

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

    def save(self, tag, state):
        """Checkpoint ``tag`` of ``state`` (a JSON object with 'epoch' and 'iteration').

        Every worker calls it at the same points for ``last``: each writes its cache
        shard first, then rank 0 the checkpoint.  ``best`` (rank 0 only) follows
        ``last`` at the same point and shares its shards.
        """
        epoch, iteration = state["epoch"], state["iteration"]
        point = CacheSnapshots.point(epoch, iteration)
        if self.sharded:
            if self.last_shards is None or self.last_shards[0] != point:
                self.last_shards = (point, self.snapshots.write(self.cache, epoch, iteration))
                self.world.barrier()  # every shard is complete before rank 0 names them
            state = dict(state, cache=self.last_shards[1])
            cache_arrays = {"sharded": mx.nd.zeros((1,))}  # the placeholder: FILES wants a cache.nd
        else:
            cache_arrays = self.cache.arrays()
        if self.world.rank == 0:
            save(self.run_dir, tag, *self.nets, *self.optimisers, cache_arrays, state)
            if self.sharded:
                self.snapshots.prune(named_shards(self.run_dir), before=point)

    def restore(self, path, trust_pickles=False):
        """Networks, optimisers and cache from checkpoint ``path``; returns its state.

        The cache may come from either kind of checkpoint (``--cache-on`` may change
        on resume).  A checkpoint of the pickled layout (trusted) is written again
        without pickles.
        """
        state, cache_arrays = load_state(path)
        for net, name in zip(self.nets, ("depth_net", "conf_net")):
            load_parameters(net, os.path.join(path, name + ".params"), self.ctx)
        load_optimisers(path, state, *self.optimisers, trust_pickles)
        if "cache" in state:
            self.snapshots.load(self.cache, state["cache"], os.path.join(self.run_dir, CHECKPOINTS))
        elif self.world.size > 1:
            raise CheckpointError("%s was written by a single process; resume it with one" % path)
        else:
            self.cache.load(cache_arrays)
        if is_legacy(path):
            self.save("last", {k: v for k, v in state.items() if k not in ("optimizers", "cache")})
        return state
