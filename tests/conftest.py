import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.threads import set_omp_threads  # noqa: E402

set_omp_threads()  # before any test module imports mxnet (common/threads.py)

import numpy as np
import pytest


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """Six 48x64 synthetic scenes written as nyu_depth_v2_labeled.mat + splits.mat (train 0, 2, 3, 5; test 1, 4)."""
    from data.synthetic import generate, write_official
    images, depths = generate(6, seed=0, height=48, width=64)
    out = tmp_path_factory.mktemp("official")
    mat, splits = write_official(str(out), images, depths, [0, 2, 3, 5], [1, 4])
    return {"mat": mat, "splits": splits, "images": images, "depths": depths}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A prepared data dir from the synthetic scenes: 8 train sources x 2 copies at 64x48, 4 test images."""
    from data.prepare import prepare
    from data.synthetic import generate, write_official
    root = tmp_path_factory.mktemp("tiny")
    images, depths = generate(12, seed=0, height=96, width=128)
    mat, splits = write_official(str(root / "raw"), images, depths, np.arange(8), np.arange(8, 12))
    prepare(mat, splits, str(root / "prep"), seed=0, size=(64, 48), copies=2, progress=False)
    return str(root / "prep")
