"""Continuing a run directory: what ``--resume`` restores, keeps or refuses, when ``--fork-from``
may start from another run, when ``--out`` is free, and what config.json records when the machine
changes under a run (OMP_NUM_THREADS, CPU model).

Each flag's role is tagged where the flag is defined (``config.resume_role``):

    FREE        may differ on --resume; restored from config.json unless given again
    INVOCATION  may differ; never restored (it is about this command: --stop-at, --fork-from, ...)
    SEMI        acts only from the first epoch that visits unlabeled images: may differ between a
                --fork-from run and its source
    (untagged)  the computation itself: must match the stored run

The functions take the command's parser: its defaults stand for flags newer than a stored run.
"""
import argparse
import os

import config
from common.files import read_json, write_json_atomic
from common.threads import cpu_model

from .layout import RunError, checkpoint_dir
from .nets import check_nets
from .records import CONFIG_REQUIRED, read_config
from .state import TrainingPoint


def flags_with_role(*roles):
    return {k for k, r in config.RESUME_ROLES.items() if r in roles}


def resume_free():
    """Flags that may differ on --resume (all others must match the stored config.json)."""
    return flags_with_role(config.FREE, config.INVOCATION)


def not_restored():
    """Flags a resume takes from the command line only (``explicit``: the flags written there)."""
    return flags_with_role(config.INVOCATION) | {"explicit"}


def fork_free():
    """Flags in which a --fork-from run may differ from its source."""
    return resume_free() | not_restored() | flags_with_role(config.SEMI)


def flag_text(key, value):
    if key == "gpus":
        return "--gpus %s" % (",".join(map(str, value)) or "'' (CPU)")
    return "--%s %s" % (key.replace("_", "-"), value)


def stored_value(stored, key, parser):
    """A flag as the stored run had it: its default if the run predates the flag; a path absolute
    (runs from before paths were stored absolute: taken from the current directory)."""
    value = stored[key] if key in stored else parser.get_default(key)
    return os.path.abspath(value) if key in config.PATH_FLAGS and value else value


def resume_options(args, parser):
    """The stored config of ``--resume RUN``, refusing flags that would change the run.

    Returns the options to resume with (every stored flag unless given again) and
    one line per flag given with a new value.
    """
    if not os.path.isfile(os.path.join(args.resume, "config.json")):
        raise RunError("%s holds no run to resume (no config.json); start one with --out %s"
                       % (args.resume, args.resume))
    stored = read_config(args.resume, RunError, CONFIG_REQUIRED)
    check_nets(stored, args.resume)
    thread_note = thread_change(stored, args)
    # a flag newer than the run was, in effect, at its default (e.g. --unlabeled-per-step unset)
    was, free = {k: stored_value(stored, k, parser) for k in args.explicit}, resume_free()
    changed = [k for k in args.explicit if k not in free and was[k] != getattr(args, k)]
    if changed:
        raise RunError("cannot resume %s with a different %s (stored: %s)" % (
            args.resume, ", ".join("--" + k.replace("_", "-") for k in changed),
            ", ".join("%s=%s" % (k, was[k]) for k in changed)))
    # flags newer than the run take their defaults (the behaviour of the code it was started with)
    merged, notes, skip = argparse.Namespace(**vars(args)), [], not_restored()
    for key, value in sorted(stored.items()):
        if key not in vars(args) or key in skip:
            continue
        if key not in args.explicit:
            setattr(merged, key, value)
        elif value != getattr(args, key):
            notes.append("%s (stored: %s)" % (flag_text(key, getattr(args, key)), flag_text(key, value)))
    merged.out = args.resume
    merged.explicit = args.explicit
    merged.thread_change = bool(thread_note)
    cpu_note = cpu_change(last_cpu(stored), "trained so far on")
    return merged, notes + [n for n in (thread_note, cpu_note) if n]


def check_stop_at(args):
    """--stop-at within the run's --epochs (the stored one on --resume)."""
    if args.stop_at is not None and args.stop_at > args.epochs:
        raise RunError("--stop-at %d is beyond the run's --epochs %d" % (args.stop_at, args.epochs))


def thread_change(stored, args):
    """Refuse (or, with --allow-thread-change, note) a resume under another OMP_NUM_THREADS."""
    was, now = stored.get("omp_num_threads"), os.environ.get("OMP_NUM_THREADS")
    if was is None or was == now:  # runs from before the count was recorded cannot be checked
        return None
    if not args.allow_thread_change:
        raise RunError("%s trained with OMP_NUM_THREADS=%s, this process has %s; the numbers would differ "
                       "from an uninterrupted run: resume with OMP_NUM_THREADS=%s, or accept it with "
                       "--allow-thread-change" % (args.resume, was, now, was))
    return ("OMP_NUM_THREADS=%s (stored: %s): from here the numbers differ from an uninterrupted run; "
            "config.json lists the change under thread_changes" % (now, was))


def cpu_change(was, how):
    """A note when this machine's CPU model differs from the run's (or the fork source's), else None:
    not refused (one cannot pick one's CPU), but the numbers differ from here on (oneDNN picks its
    kernels by CPU) and config.json lists the change under cpu_changes."""
    now = cpu_model()
    if was is None or now is None or was == now:  # runs from before the model was recorded cannot be checked
        return None
    return ("%s the CPU %r, this machine's is %r: from here the numbers differ from a run on one machine "
            "(oneDNN picks its kernels by CPU); config.json lists the change under cpu_changes" % (how, was, now))


def last_cpu(run):
    """The CPU model a run (its directory or its config.json as a dict) trained on last (cpu_model, then
    cpu_changes); None if unrecorded."""
    cfg = run if isinstance(run, dict) else read_json(os.path.join(run, "config.json"))
    changes = cfg.get("cpu_changes") or []
    return changes[-1]["cpu_model"] if changes else cfg.get("cpu_model")


def record_change(run_dir, key, point, **entry):
    """Append {epoch, iteration of ``point``, **entry} to config.json's list ``key`` (thread and CPU changes)."""
    path = os.path.join(run_dir, "config.json")
    cfg = read_json(path)
    cfg.setdefault(key, []).append(dict({"epoch": point.epoch, "iteration": point.iteration}, **entry))
    write_json_atomic(path, cfg)


def record_thread_change(run_dir, point):
    """config.json keeps every thread count the run trained with, from which point."""
    record_change(run_dir, "thread_changes", point, omp_num_threads=os.environ.get("OMP_NUM_THREADS"))


def record_cpu_change(run_dir, point, was):
    """config.json: the CPU model the run trained on before ``point`` (``cpu_model``: the one it started on)."""
    if was is not None and cpu_model() not in (None, was):
        record_change(run_dir, "cpu_changes", point, cpu_model=cpu_model(), before=was)


def check_fork(args, parser):
    """Refuse ``--fork-from RUN`` unless RUN's last checkpoint is a point of this run's own training;
    returns the epoch it continues from."""
    source = args.fork_from
    if not os.path.isfile(os.path.join(source, "config.json")):
        raise RunError("--fork-from %s: no run there (no config.json)" % source)
    stored = read_config(source, RunError, CONFIG_REQUIRED)
    check_nets(stored, source)
    free = fork_free()
    differ = [k for k in sorted(vars(args)) if k not in free and stored_value(stored, k, parser) != getattr(args, k)]
    if differ:
        raise RunError("cannot fork from %s: it differs in %s (stored: %s)" % (
            source, ", ".join("--" + k.replace("_", "-") for k in differ),
            ", ".join("%s=%s" % (k, stored_value(stored, k, parser)) for k in differ)))
    threads = os.environ.get("OMP_NUM_THREADS")
    if stored.get("omp_num_threads") != threads:  # the numbers depend on it (common/threads.py)
        raise RunError("cannot fork from %s: it trained with OMP_NUM_THREADS=%s, this run has %s"
                       % (source, stored.get("omp_num_threads"), threads))
    state = TrainingPoint.read(checkpoint_dir(source, "last"), RunError)
    first_unlabeled = max(args.semi_start - 1, 0)
    if state.iteration != 0 or state.epoch > first_unlabeled:
        raise RunError("cannot fork from %s: its last checkpoint is at epoch %d, iteration %d; a fork needs "
                       "one at the end of an epoch <= %d (semi_start - 1; train it with --stop-at %d)"
                       % (source, state.epoch, state.iteration, first_unlabeled, first_unlabeled))
    return state.epoch


def is_run(path):
    """A directory holds a run once it has config.json or a complete checkpoint."""
    if os.path.isfile(os.path.join(path, "config.json")):
        return True
    for tag in ("last", "best"):
        try:
            checkpoint_dir(path, tag)
            return True
        except RunError:
            pass
    return False


def refuse_existing_run(path):
    """``--out``: a new run never writes over another."""
    if not is_run(path):
        return
    try:
        checkpoint_dir(path, "last")
    except RunError:  # config.json but no training point: it failed or stopped before its first save
        raise RunError("%s already holds a run without a checkpoint (it stopped before its first one); "
                       "continue it with --resume %s, or remove %s to start it with other flags"
                       % (path, path, path))
    raise RunError("%s already holds a run; continue it with --resume %s or use another --out" % (path, path))


def check_writable(path):
    """Fail before any work if the run directory cannot be written."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write-test-%d" % os.getpid())  # workers of one job share --out
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as err:
        raise OSError("cannot write to --out %s (%s)" % (path, err.strerror or err))
