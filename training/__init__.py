"""Losses (eq. 1-6), the pseudo-label cache, checkpoints and the joint training loop of §4."""
from common.threads import set_omp_threads

set_omp_threads()  # before mxnet loads (common/threads.py)
