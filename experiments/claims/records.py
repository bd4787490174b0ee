"""A claims OUT directory without its checkpoints: carry finished runs to another machine.

``make claims-extra`` takes hours; its checkpoints (~0.3 GB per run) cannot travel, but nothing
the report reads is in them.  ``carry OUT DEST`` copies what the report and run.sh read of every
finished arm run (every file but ``checkpoints/``, whose ``last/state.json`` stays so run.sh sees
the run as finished) and OUT's own records (of two started_at, the earlier stays), and writes
``DEST/fingerprints.json``: the CPU model, the thread count and a SHA-256 of the stand-in backbone
and of the prepared data.  On the other machine run.sh re-creates the data and the backbone (they
are not carried: ~0.1 GB, and bit for bit the same only on the same CPU model and thread count);
``restore DEST OUT`` then refuses in one line if they differ from the fingerprints, since a seed
trained on another backbone belongs to another experiment, and else copies the runs back; run.sh
continues with the runs not carried.
The ``seed<S>_prefix`` runs are not carried: a fork needs their checkpoint, so run.sh re-trains
them (bit for bit the same under the same fingerprints).
"""
import hashlib
import os
import shutil

import h5py
import numpy as np

from common.files import read_json, write_json_atomic
from common.threads import set_omp_threads
from evaluation import EvaluationError

from .tables import PREFIX_ARM

# OUT's own records (run.sh): the settings, the working time per invocation, the data and pretraining logs
TOP_FILES = ("settings.txt", "data/synthetic.json", "data/prepare.json",
             "pretrain_data/synthetic.json", "pretrain_data/prepare.json",
             "pretrain/backbone.json", "pretrain/pretext.log", "pretrain/train.log")
TOP_DIRS = ("invocations",)
BACKBONE = "pretrain/backbone.params"
DATA = ("data/prepared/train.h5", "data/prepared/test.h5",
        "pretrain_data/prepared/train.h5", "pretrain_data/prepared/test.h5")
KEPT_STATE = os.path.join("checkpoints", "last", "state.json")
STARTED_AT = "started_at"  # the first invocation's time: each machine's run.sh writes its own, the earlier stays


def keep_earliest_start(src, dst):
    """Write SRC's started_at into DST unless DST's is earlier (a later prep must not move the plan's start)."""
    times = []
    for root in (src, dst):
        path = os.path.join(root, STARTED_AT)
        if os.path.isfile(path):
            text = open(path).read().strip()
            if not text.isdigit():
                raise EvaluationError("%s holds %r, not a time in seconds" % (path, text))
            times.append(int(text))
    if times:
        with open(os.path.join(dst, STARTED_AT), "w") as f:
            f.write("%d\n" % min(times))


def cpu_model():
    return next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                 if line.startswith("model name")), "?")


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def h5_sha256(path):
    """SHA-256 of every dataset's name, dtype, shape and bytes (not of the file: HDF5 may store times)."""
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        names = []
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        for name in sorted(names):
            a = np.ascontiguousarray(f[name][()])
            h.update(("%s|%s|%s|" % (name, a.dtype.str, a.shape)).encode())
            h.update(a.tobytes())
    return h.hexdigest()


def fingerprints(out):
    """{relative path: SHA-256} of OUT's backbone and prepared data, plus the machine's CPU and threads."""
    files = {}
    for rel in (BACKBONE,) + DATA:
        path = os.path.join(out, rel)
        if not os.path.isfile(path):
            raise EvaluationError("%s not found: run.sh has not prepared the data and the backbone yet" % path)
        files[rel] = file_sha256(path) if rel.endswith(".params") else h5_sha256(path)
    return {"cpu": cpu_model(), "omp_num_threads": set_omp_threads(), "files": files}


def finished_runs(out):
    """The arm runs of OUT that run.sh finished: evaluated, swept, with a last checkpoint."""
    names = []
    for name in sorted(os.listdir(out)):
        d = os.path.join(out, name)
        if not (name.startswith("seed") and "_" in name and os.path.isdir(d)):
            continue
        if name.split("_", 1)[1] == PREFIX_ARM:
            continue
        if all(os.path.isfile(os.path.join(d, f)) for f in ("eval.json", "pseudo_sweep.json", KEPT_STATE)):
            names.append(name)
    return names


def run_files(run):
    """Relative paths of a run's files to carry: all but checkpoints/ (except its last state.json) and .lock."""
    kept = []
    for root, dirs, files in os.walk(run):
        rel_root = os.path.relpath(root, run)
        dirs[:] = [d for d in dirs if not (rel_root == "." and d == "checkpoints")]  # not walked into
        kept += [os.path.normpath(os.path.join(rel_root, f)) for f in files if f != ".lock"]
    return sorted(kept) + [KEPT_STATE]


def copy(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(src, dst)


def carry(out, dest):
    """Copy OUT's finished runs and records into DEST (a new or earlier carried directory); returns the runs."""
    if not os.path.isdir(out):
        raise EvaluationError("%s is not a directory" % out)
    prints = fingerprints(out)
    os.makedirs(dest, exist_ok=True)
    keep_earliest_start(out, dest)
    for rel in TOP_FILES:
        if os.path.isfile(os.path.join(out, rel)):
            copy(os.path.join(out, rel), os.path.join(dest, rel))
    for d in TOP_DIRS:
        for name in sorted(os.listdir(os.path.join(out, d))) if os.path.isdir(os.path.join(out, d)) else ():
            copy(os.path.join(out, d, name), os.path.join(dest, d, name))
    runs = finished_runs(out)
    for name in runs:
        for rel in run_files(os.path.join(out, name)):
            copy(os.path.join(out, name, rel), os.path.join(dest, name, rel))
    prints["runs"] = runs
    write_json_atomic(os.path.join(dest, "fingerprints.json"), prints)
    return runs


def restore(dest, out):
    """Copy DEST's runs into OUT after checking OUT's backbone and data against DEST's fingerprints.

    Runs OUT already has are left as they are.  The evaluation files are touched after state.json so
    run.sh does not evaluate again (it would need the checkpoint)."""
    carried = read_json(os.path.join(dest, "fingerprints.json"), error=EvaluationError)
    here = fingerprints(out)
    differ = sorted(rel for rel, sha in carried["files"].items() if here["files"].get(rel) != sha)
    if differ:
        raise EvaluationError("%s differ from the carried runs' (made on %s, %s threads; this machine: %s, %s "
                              "threads): those runs belong to another backbone or data, not restored"
                              % (", ".join(differ), carried["cpu"], carried["omp_num_threads"],
                                 here["cpu"], here["omp_num_threads"]))
    settings = os.path.join(out, "settings.txt")
    if os.path.isfile(settings) and open(settings).read() != open(os.path.join(dest, "settings.txt")).read():
        raise EvaluationError("%s holds other settings than the carried runs" % settings)
    keep_earliest_start(dest, out)
    restored = []
    for name in carried["runs"]:
        if os.path.exists(os.path.join(out, name)):
            continue
        for rel in run_files(os.path.join(dest, name)):
            copy(os.path.join(dest, name, rel), os.path.join(out, name, rel))
        for rel in ("eval.json", "table1.json", "pseudo_sweep.json"):
            path = os.path.join(out, name, rel)
            if os.path.isfile(path):
                os.utime(path)  # newer than state.json: run.sh's "already evaluated" test
        restored.append(name)
    for d in TOP_DIRS:  # the working time of the invocations that trained them
        for name in sorted(os.listdir(os.path.join(dest, d))) if os.path.isdir(os.path.join(dest, d)) else ():
            if not os.path.exists(os.path.join(out, d, name)):
                copy(os.path.join(dest, d, name), os.path.join(out, d, name))
    return restored

