"""Raw ground truth: data.synthetic's rawDepths, LabeledMat.raw_depth, test.h5 raw_depths, --add-raw."""
import os
import shutil

import h5py
import numpy as np
import pytest

from data import prepare, synthetic
from data.dataset import TestDataset
from data.nyu import LabeledMat

HEIGHT, WIDTH = 48, 64  # tiny official-layout images
SIZE = (32, 24)  # prepared (width, height)


@pytest.fixture(scope="module")
def prepared(official, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("prepared"))
    prepare.prepare(official["mat"], official["splits"], out, seed=0, size=SIZE, copies=1, progress=False)
    return {"dir": out, **official}


def test_synthetic_raw_depths_are_the_depths_with_holes(official):
    with LabeledMat(official["mat"]) as mat:
        assert mat.has_raw
        for i in range(len(mat)):
            raw, depth = mat.raw_depth(i), mat.depth(i)
            measured = raw > 0
            np.testing.assert_array_equal(raw[measured], depth[measured])
            assert 0.3 < measured.mean() < 0.99
            # Nothing outside the toolbox projection region, rows 44:471, cols 40:601 of 480x640,
            # at 48x64: rows round(4.4):round(47.1) = 4:47, cols 4:round(60.1) = 4:60.
            assert not measured[:4].any() and not measured[47:].any()
            assert not measured[:, :4].any() and not measured[:, 60:].any()
            assert measured[4:47, 4:60].mean() > 0.5


def test_projector_shadow_beside_a_near_object():
    depth = np.full((480, 640), 4.0, np.float32)
    depth[:, 300:400] = 2.0                      # a near object: the wall just left of it is shadowed
    raw = synthetic.with_holes(depth, np.random.RandomState(0))
    reach = 640 // 80
    row = 240
    # 8 px left of the edge: the 2 m object is within reach -> no measurement (unless another hole).
    assert not (raw[row, 300 - reach:300] > 0).any()
    # Further left, beyond reach, and on the object itself, depth is measured except for random holes.
    assert (raw[200:280, 100:300 - reach] > 0).mean() > 0.8
    assert (raw[200:280, 300:400] > 0).mean() > 0.8


def test_prepare_stores_raw_test_depths_and_add_raw_upgrades(official, prepared, tmp_path, capsys):
    with h5py.File(os.path.join(prepared["dir"], "test.h5"), "r") as h5, LabeledMat(official["mat"]) as mat:
        for k, source in enumerate([1, 4]):
            np.testing.assert_array_equal(h5["raw_depths"][k], mat.raw_depth(source))
        assert h5["raw_depths"].shape == (2, HEIGHT, WIDTH)
        before = {key: h5[key][:] for key in ("images", "depths", "source")}
    # A test.h5 from before raw depths were stored gets them in place.
    old = str(tmp_path / "old")
    shutil.copytree(prepared["dir"], old)
    with h5py.File(os.path.join(old, "test.h5"), "a") as h5:
        del h5["raw_depths"]
    assert not TestDataset(os.path.join(old, "test.h5")).has_raw
    argv = ["--mat", official["mat"], "--splits", official["splits"], "--out", old, "--add-raw"]
    assert prepare.main(argv) == 0
    with h5py.File(os.path.join(old, "test.h5"), "r") as h5:
        assert set(h5) == {"images", "depths", "source", "raw_depths"}
        for key, value in before.items():
            np.testing.assert_array_equal(h5[key][:], value)
        with h5py.File(os.path.join(prepared["dir"], "test.h5"), "r") as fresh:
            np.testing.assert_array_equal(h5["raw_depths"][:], fresh["raw_depths"][:])
    assert prepare.main(argv) == 0 and "already present" in capsys.readouterr().out
    # Another split than the one test.h5 was made from: refused, one line.
    other = str(tmp_path / "other_splits")
    synthetic.write_official(other, official["images"], official["depths"], [0, 1, 2, 3], [4, 5])
    argv[3] = os.path.join(other, synthetic.SPLITS_NAME)
    assert prepare.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "testNdxs" in err and len(err.strip().splitlines()) == 1


def test_prepare_refuses_a_mat_without_raw_depths(official, tmp_path, capsys):
    bare = str(tmp_path / "bare.mat")
    shutil.copy(official["mat"], bare)
    with h5py.File(bare, "a") as h5:
        del h5["rawDepths"]
    out = str(tmp_path / "out")
    assert prepare.main(["--mat", bare, "--splits", official["splits"], "--out", out]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {bare}: no 'rawDepths' dataset (expected the official NYU labeled .mat)\n"
    assert not os.path.exists(out)
