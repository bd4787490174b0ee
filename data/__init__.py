"""NYU Depth V2 reading, Eigen-style augmentation, prepared HDF5 datasets.

Modules
-------
nyu        readers for the official ``nyu_depth_v2_labeled.mat`` / ``splits.mat``
augment    resizing and the random scale/flip/colour/translation of Eigen et al.
prepare    ``python -m data.prepare``: official files -> ``train.h5`` / ``test.h5``
synthetic  ``python -m data.synthetic``: rendered rooms in the official layout
dataset    Gluon datasets and semi-supervised splits over the prepared files
grid       the one pixel convention: 1/4-resolution targets, upsampling (half-pixel, align-corners)
images     the image finder of --unlabeled and predict.py
unlabeled_dir  ``--unlabeled`` folders as an extra unlabeled dataset
errors     ``DataError``, the one-line error of bad input files
"""
from common.threads import set_omp_threads

set_omp_threads()  # before mxnet loads (common/threads.py)
from .errors import DataError

__all__ = ["DataError"]
