"""Evaluation of trained runs: metrics, inference, confidence analysis, figures, report.

Modules
-------
metrics      ``compute_errors`` (the §5.2 measures) and the ``eigen`` / ``full`` protocols
inference    batched depth + confidence prediction over a dataset
confidence   sparsification curves (AUSE, AURG) and reliability of the confidence map
figures      qualitative grid, sparsification and reliability PNGs
report       ``python -m evaluation.report``: paper Tables 1-2 next to our runs
"""
from common.threads import set_omp_threads

set_omp_threads()  # before mxnet loads (common/threads.py)


class EvaluationError(Exception):
    """A one-line, user-facing problem with an evaluation input (printed as ``error: ...``)."""


__all__ = ["EvaluationError"]
