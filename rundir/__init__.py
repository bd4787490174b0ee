"""The run directory: what ``runs/NAME`` holds, read and written by one layer.

Below training and evaluation, above symbols: training writes a run directory through it,
evaluate.py / predict.py / export.py / the claims read it through it.  Its one exception is
``RunError`` (a one-line message: no checkpoint, a lock held, a mistyped record, other networks).

Modules
-------
layout   what the directory holds, where a checkpoint is, ``RunError``
records  config.json checked on read against the types the project writes (and the checker itself)
state    state.json as one typed record, ``TrainingPoint``: where a training stands
files    config.json, split.json, metrics.jsonl, curves.png as training writes them
lock     one training writes a run directory at a time
nets     the trained networks of a run, loaded for inference

Crash-safe saving and restoring of a training point stays with training (training/checkpoint.py).
"""
from common.threads import set_omp_threads

set_omp_threads()  # before mxnet loads (common/threads.py)
