import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.threads import set_omp_threads  # noqa: E402

set_omp_threads()  # before any test module imports mxnet (common/threads.py)

import numpy as np
import pytest


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
