"""Evaluation of trained runs: metrics, inference, scoring, confidence analysis, figures, report.

Modules
-------
metrics        ``compute_errors`` (the §5.2 measures) and the ``eigen`` / ``full`` protocols
runs           ``load_run``: a run's config, split, test set and networks, opened for scoring
scoring        Table 2: ``Scorer`` and ``score_test_set`` / ``score_predictions`` (external maps)
pseudo_labels  Table 1: pseudo-label rel and kept share per confidence threshold
external       external predictions (.npy or 16-bit PNG folders) in test.h5 order
inference      batched depth + confidence prediction over a dataset; score_depth (training)
confidence     sparsification curves (AUSE, AURG) and reliability of the confidence map
figures        qualitative grid, sparsification and reliability PNGs
report         ``python -m evaluation.report``: paper Tables 1-2 next to our runs; one file name per scoring
quantize       ``--int8``: both networks quantized by oneDNN, calibrated on labeled training rows
"""
from common.threads import set_omp_threads

set_omp_threads()  # before mxnet loads (common/threads.py)


class EvaluationError(Exception):
    """A one-line, user-facing problem with an evaluation input (printed as ``error: ...``)."""


__all__ = ["EvaluationError"]
