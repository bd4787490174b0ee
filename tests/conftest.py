import os, sys; sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.threads import set_omp_threads  # noqa: E402

set_omp_threads()  # before any test module imports mxnet (common/threads.py)

import shutil

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


@pytest.fixture(scope="module")
def one_epoch(tiny_data, tmp_path_factory):
    """A run of 2 epochs stopped after the first (in this process, no lock): test_checkpoint.py and
    test_rundir.py break or resume copies of it (``run_copy``)."""
    from test_trainer import options
    from training.trainer import Trainer
    run = tmp_path_factory.mktemp("one_epoch") / "run"
    t = Trainer(options(tiny_data, run, "--epochs", "2", "--semi-start", "1"))
    t.start()
    t.train(stop_at=1)
    return str(run)


@pytest.fixture
def run_copy(one_epoch, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(one_epoch, copy)
    return copy
