"""Behaviour of the data package on tiny files in the official NYU layout."""
import hashlib
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import scipy.io

from data import augment, prepare, synthetic
from data.dataset import (IMAGENET_MEAN, IMAGENET_STD, LabeledDataset, TestDataset,
                          UnlabeledDataset, depth_to_quarter, normalize_image, read_depths,
                          read_prepared, rows_for_sources, split_sources, valid_mask)
from data.errors import DataError
from data.nyu import LabeledMat, read_splits

HEIGHT, WIDTH = 48, 64  # tiny official-layout images
SIZE = (32, 24)  # prepared (width, height)
COPIES = 3
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope="module")
def prepared(official, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("prepared"))
    summary = prepare.prepare(official["mat"], official["splits"], out, seed=0, size=SIZE,
                              copies=COPIES, progress=False)
    return {"dir": out, "summary": summary, **official}


# --- official file layout -------------------------------------------------------------

def test_labeled_mat_undoes_matlab_transpose(tmp_path):
    # Written by hand in h5py's view of MATLAB (N, 3, W, H): marker at x < 3, y < 2, red only.
    path = str(tmp_path / "marker.mat")
    images = np.zeros((1, 3, WIDTH, HEIGHT), np.uint8)
    images[0, 0, :3, :2] = 255
    depths = np.full((1, WIDTH, HEIGHT), 5.0, np.float32)
    depths[0, :3, :2] = 1.0
    with h5py.File(path, "w") as h5:
        h5["images"], h5["depths"] = images, depths
    with LabeledMat(path) as mat:
        image, depth = mat.image(0), mat.depth(0)
        assert (len(mat), mat.height, mat.width) == (1, HEIGHT, WIDTH)
    assert image.shape == (HEIGHT, WIDTH, 3) and depth.shape == (HEIGHT, WIDTH)
    expected = np.zeros((HEIGHT, WIDTH), bool)
    expected[:2, :3] = True  # top-left in H x W
    np.testing.assert_array_equal(image[..., 0] == 255, expected)
    assert image[..., 1:].max() == 0  # channel 0 is red
    np.testing.assert_array_equal(depth == 1.0, expected)


def test_write_official_round_trips_through_reader(official):
    with LabeledMat(official["mat"]) as mat:
        assert len(mat) == 6
        for i in range(6):
            np.testing.assert_array_equal(mat.image(i), official["images"][i])
            np.testing.assert_array_equal(mat.depth(i), official["depths"][i])
    raw = scipy.io.loadmat(official["splits"])
    assert raw["trainNdxs"].shape == (4, 1) and raw["trainNdxs"].dtype == np.float64
    np.testing.assert_array_equal(raw["trainNdxs"].ravel(), [1, 3, 4, 6])  # 1-based on disk


def test_read_splits_converts_one_based(tmp_path):
    path = str(tmp_path / "splits.mat")
    scipy.io.savemat(path, {"trainNdxs": np.array([[1.0], [3.0]]), "testNdxs": np.array([[2.0]])})
    train, test = read_splits(path)
    np.testing.assert_array_equal(train, [0, 2])
    np.testing.assert_array_equal(test, [1])
    assert train.dtype == np.int64


def test_read_splits_rejects_zero_index(tmp_path):
    path = str(tmp_path / "splits.mat")
    scipy.io.savemat(path, {"trainNdxs": np.array([[0.0]]), "testNdxs": np.array([[2.0]])})
    with pytest.raises(DataError, match="splits.mat.*>= 1"):
        read_splits(path)


# --- prepare ---------------------------------------------------------------------------

def test_prepare_writes_copies_source_major(prepared):
    train_idx = [0, 2, 3, 5]
    with h5py.File(os.path.join(prepared["dir"], "train.h5"), "r") as h5:
        assert h5["images"].shape == (4 * COPIES, SIZE[1], SIZE[0], 3)
        assert h5["depths"].shape == (4 * COPIES, SIZE[1], SIZE[0])
        assert h5["images"].chunks == (1, SIZE[1], SIZE[0], 3)
        np.testing.assert_array_equal(h5["source"][:], np.repeat(train_idx, COPIES))
        assert dict(h5.attrs) == {"seed": 0, "copies": COPIES, "width": SIZE[0], "height": SIZE[1],
                                  "dataset": "synthetic"}
        # First copy of each source is the plain resize of that source image.
        for k, source in enumerate(train_idx):
            plain = augment.resize_image(prepared["images"][source], SIZE)
            np.testing.assert_array_equal(h5["images"][k * COPIES], plain)
            assert not np.array_equal(h5["images"][k * COPIES + 1], plain)
    with h5py.File(os.path.join(prepared["dir"], "test.h5"), "r") as h5:
        np.testing.assert_array_equal(h5["source"][:], [1, 4])
        assert h5["images"].shape == (2, SIZE[1], SIZE[0], 3)
        np.testing.assert_array_equal(h5["depths"][:], prepared["depths"][[1, 4]])  # full resolution
    summary = prepared["summary"]
    assert summary["train"]["rows"] == 4 * COPIES and summary["test"]["rows"] == 2
    assert 0.5 < summary["depth_min"] < summary["depth_max"] < 12


def test_prepare_same_seed_same_bytes_and_other_seed_differs(official, prepared, tmp_path):
    again, other = str(tmp_path / "again"), str(tmp_path / "other")
    prepare.prepare(official["mat"], official["splits"], again, seed=0, size=SIZE, copies=COPIES,
                    progress=False)
    prepare.prepare(official["mat"], official["splits"], other, seed=1, size=SIZE, copies=COPIES,
                    progress=False)
    for name in ("train.h5", "test.h5"):
        assert sha256(os.path.join(again, name)) == sha256(os.path.join(prepared["dir"], name))
        with h5py.File(os.path.join(again, name), "r") as a, \
                h5py.File(os.path.join(prepared["dir"], name), "r") as b:
            for key in ("images", "depths", "source"):
                np.testing.assert_array_equal(a[key][:], b[key][:])
    with h5py.File(os.path.join(other, "train.h5"), "r") as a, \
            h5py.File(os.path.join(prepared["dir"], "train.h5"), "r") as b:
        assert not np.array_equal(a["images"][:], b["images"][:])
        np.testing.assert_array_equal(a["images"][::COPIES], b["images"][::COPIES])  # plain copies


def test_failed_run_keeps_existing_output(official, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert prepare.main(["--mat", official["mat"], "--splits", official["splits"], "--out", out,
                         "--size", "32x32", "--copies", "2"]) == 0
    before = sha256(os.path.join(out, "train.h5"))
    bad_mat = str(tmp_path / "nan.mat")
    depths = official["depths"].copy()
    depths[3] = np.nan
    synthetic.write_official(str(tmp_path / "nan"), official["images"], depths, [0, 3], [1])
    shutil.move(str(tmp_path / "nan" / synthetic.MAT_NAME), bad_mat)
    capsys.readouterr()
    assert prepare.main(["--mat", bad_mat, "--splits", official["splits"], "--out", out,
                         "--size", "32x32", "--copies", "2"]) == 2
    assert sha256(os.path.join(out, "train.h5")) == before
    assert sorted(os.listdir(out)) == ["test.h5", "train.h5"]  # no .tmp left behind


# --- bad inputs through the CLI --------------------------------------------------------

def write_h5(path, **datasets):
    with h5py.File(path, "w") as h5:
        for name, value in datasets.items():
            h5[name] = value
    return path


def bad_input_case(kind, tmp_path, official):
    """(mat, splits, the file the error must name) for one kind of bad input."""
    mat, splits = official["mat"], official["splits"]
    images = official["images"].transpose(0, 3, 2, 1)
    depths = official["depths"].transpose(0, 2, 1)
    if kind == "missing mat":
        return str(tmp_path / "absent.mat"), splits, str(tmp_path / "absent.mat")
    if kind == "missing splits":
        return mat, str(tmp_path / "absent.mat"), str(tmp_path / "absent.mat")
    if kind == "mat not hdf5":
        path = tmp_path / "text.mat"
        path.write_text("not a mat file\n")
        return str(path), splits, str(path)
    if kind == "splits not mat":
        path = tmp_path / "text_splits.mat"
        path.write_text("not a mat file\n")
        return mat, str(path), str(path)
    if kind == "no images":
        return write_h5(str(tmp_path / "noimg.mat"), depths=depths), splits, str(tmp_path / "noimg.mat")
    if kind == "no depths":
        return write_h5(str(tmp_path / "nodep.mat"), images=images), splits, str(tmp_path / "nodep.mat")
    if kind == "wrong image shape":
        path = write_h5(str(tmp_path / "shape.mat"), images=images[:, 0], depths=depths)
        return path, splits, path
    if kind == "wrong channel count":
        path = write_h5(str(tmp_path / "chan.mat"), images=images[:, :2], depths=depths)
        return path, splits, path
    if kind == "count mismatch":
        path = write_h5(str(tmp_path / "count.mat"), images=images, depths=depths[:5])
        return path, splits, path
    if kind == "index out of range":
        path = str(tmp_path / "range_splits.mat")
        scipy.io.savemat(path, {"trainNdxs": np.array([[1.0], [7.0]]), "testNdxs": np.array([[2.0]])})
        return mat, path, path
    if kind == "empty split":
        path = str(tmp_path / "empty_splits.mat")
        scipy.io.savemat(path, {"trainNdxs": np.array([[1.0]]), "testNdxs": np.zeros((0, 1))})
        return mat, path, path
    if kind == "missing split key":
        path = str(tmp_path / "key_splits.mat")
        scipy.io.savemat(path, {"trainNdxs": np.array([[1.0]])})
        return mat, path, path
    if kind in ("nan depth", "no valid depth"):
        bad = official["depths"].copy()
        bad[2] = np.nan if kind == "nan depth" else 0.0
        folder = tmp_path / kind.replace(" ", "_")
        path, _ = synthetic.write_official(str(folder), official["images"], bad, [0, 2], [1])
        return path, splits, path
    raise AssertionError(kind)


BAD_INPUTS = ["missing mat", "missing splits", "mat not hdf5", "splits not mat", "no images",
              "no depths", "wrong image shape", "wrong channel count", "count mismatch",
              "index out of range", "empty split", "missing split key", "nan depth",
              "no valid depth"]


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_prepare_cli_rejects_bad_input(kind, official, tmp_path, capsys):
    mat, splits, named = bad_input_case(kind, tmp_path, official)
    out = tmp_path / "prepared"
    status = prepare.main(["--mat", mat, "--splits", splits, "--out", str(out), "--size", "32x32"])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert status == 2
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], captured.err
    assert captured.out == ""
    assert not out.exists()
    if kind in ("nan depth", "no valid depth"):
        assert "image 2" in lines[0]


def test_prepare_as_a_module_exits_2_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "data.prepare", "--mat", str(tmp_path / "absent.mat"),
         "--splits", str(tmp_path / "absent_splits.mat"), "--out", str(tmp_path / "out")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'absent_splits.mat'}: no such file"]
    assert not (tmp_path / "out").exists()


# --- synthetic scenes ------------------------------------------------------------------

def test_render_scene_is_a_plausible_learnable_room():
    image, depth = synthetic.render_scene(np.random.RandomState(0), height=HEIGHT, width=WIDTH)
    assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
    assert depth.shape == (HEIGHT, WIDTH) and depth.dtype == np.float32
    assert 0.5 < depth.min() and depth.max() < 12
    grey = image.astype(float).mean(2)
    assert grey.std() > 5
    neighbour_corr = np.corrcoef(grey[:, :-1].ravel(), grey[:, 1:].ravel())[0, 1]
    assert neighbour_corr > 0.7  # structured, not noise
    # Depth discontinuities show up as image edges.
    depth_edge = np.abs(np.diff(depth, axis=1)) > 0.3
    image_step = np.abs(np.diff(grey, axis=1))
    assert depth_edge.any() and image_step[depth_edge].mean() > 2 * image_step[~depth_edge].mean()


def test_generate_is_seeded_per_scene():
    images_a, depths_a = synthetic.generate(3, seed=4, height=24, width=32)
    images_b, depths_b = synthetic.generate(2, seed=4, height=24, width=32)
    np.testing.assert_array_equal(images_a[:2], images_b)
    np.testing.assert_array_equal(depths_a[:2], depths_b)
    assert not np.array_equal(images_a[0], images_a[1])


def test_synthetic_cli_writes_official_layout(tmp_path, capsys):
    out = str(tmp_path / "syn")
    assert synthetic.main(["--out", out, "--n", "8", "--size", "32x24", "--test-frac", "0.25"]) == 0
    train, test = read_splits(os.path.join(out, synthetic.SPLITS_NAME))
    assert len(test) == 2 and len(train) == 6 and not set(train) & set(test)
    with LabeledMat(os.path.join(out, synthetic.MAT_NAME)) as mat:
        assert (len(mat), mat.height, mat.width) == (8, 24, 32)


# --- splits and datasets ---------------------------------------------------------------

def test_split_sources_has_no_leakage_and_paper_fractions():
    sources = np.repeat(np.arange(40) * 3 + 1, 9)  # 9 copies per source, source-major
    for fraction, expected in ((0.5, 20), (0.25, 10)):
        split = split_sources(sources, fraction, seed=0, val_frac=0.1)
        labeled, unlabeled, val = (set(split[k]) for k in ("labeled", "unlabeled", "val"))
        assert len(labeled) + len(val) == expected and len(val) == round(0.1 * expected)
        assert not (labeled & unlabeled or labeled & val or unlabeled & val)
        assert labeled | unlabeled | val == set(sources.tolist())
        assert split["labeled"] == sorted(split["labeled"])
        for side in (labeled, unlabeled, val):
            rows = rows_for_sources(sources, side)
            assert len(rows) == 9 * len(side)  # every copy of a source is on its side
            assert set(sources[rows].tolist()) == side
    half = split_sources(sources, 0.5, seed=0)
    quarter = split_sources(sources, 0.25, seed=0)
    assert set(quarter["labeled"]) <= set(half["labeled"])
    assert split_sources(sources, 0.5, seed=1)["labeled"] != half["labeled"]
    assert split_sources(sources, 0.5, seed=0) == half


def test_split_sources_edge_cases():
    assert split_sources([5, 6, 7], 1.0, seed=0) == {"labeled": [5, 6, 7], "unlabeled": [], "val": []}
    assert len(split_sources(range(10), 0.01, seed=0)["labeled"]) == 1
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="labeled_frac"):
            split_sources(range(10), bad, seed=0)


def test_depth_to_quarter_samples_block_centres():
    depth = np.arange(1, 65, dtype=np.float32).reshape(8, 8)
    depth[0, 0] = 0.0  # invalid but outside a block centre: ignored
    depth[5, 2] = 0.0  # one invalid pixel of a centre: the other three are averaged
    depth[5:7, 5:7] = np.nan  # every centre pixel invalid
    quarter = depth_to_quarter(depth)
    # Block centres lie between rows/cols 1|2 and 5|6: the mean of the 2 x 2 pixels there.
    top_left = (depth[1, 1] + depth[1, 2] + depth[2, 1] + depth[2, 2]) / 4
    top_right = (depth[1, 5] + depth[1, 6] + depth[2, 5] + depth[2, 6]) / 4
    bottom_left = (depth[5, 1] + depth[6, 1] + depth[6, 2]) / 3
    expected = np.array([[top_left, top_right], [bottom_left, np.nan]], np.float32)
    np.testing.assert_allclose(quarter, expected, rtol=1e-6)
    assert quarter.dtype == np.float32 and quarter.shape == (2, 2)
    assert depth_to_quarter(np.ones((10, 9), np.float32)).shape == (2, 2)
    np.testing.assert_array_equal(valid_mask(np.array([0.0, -1.0, np.nan, np.inf, 2.0])),
                                  [False, False, False, False, True])


def test_normalize_image():
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 0] = 255
    out = normalize_image(image)
    assert out.shape == (3, 2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0], (np.array([1.0, 0, 0]) - IMAGENET_MEAN) / IMAGENET_STD,
                               rtol=1e-6)


def test_datasets_return_documented_shapes(prepared):
    data = read_prepared(prepared["dir"])
    assert (data.width, data.height, data.copies) == (SIZE[0], SIZE[1], COPIES)
    rows = rows_for_sources(data.train_source, [2, 5])
    labeled = LabeledDataset(data.train_path, rows)
    image, depth = labeled[1]
    assert len(labeled) == 2 * COPIES
    assert image.shape == (3, SIZE[1], SIZE[0]) and image.dtype == np.float32
    assert depth.shape == (1, SIZE[1] // 4, SIZE[0] // 4) and depth.dtype == np.float32
    withheld = read_depths(data.train_path, rows, quarter=True)
    np.testing.assert_array_equal(withheld[1], depth[0])
    assert read_depths(data.train_path, rows).shape == (2 * COPIES, SIZE[1], SIZE[0])
    test = TestDataset(data.test_path)
    image, index = test[1]
    assert len(test) == 2 and index == 1 and isinstance(index, np.int32)
    assert test.depth_full(1).shape == (HEIGHT, WIDTH)
    np.testing.assert_array_equal(normalize_image(test.images_uint8(1)), image)


def test_unlabeled_dataset_never_reads_depths(prepared, tmp_path):
    data = read_prepared(prepared["dir"])
    stripped = str(tmp_path / "train.h5")
    shutil.copy(data.train_path, stripped)
    with h5py.File(stripped, "r+") as h5:
        del h5["depths"]  # any read of depths would now raise KeyError
    rows = rows_for_sources(data.train_source, [0, 3])
    unlabeled = UnlabeledDataset(stripped, rows)
    reference = LabeledDataset(data.train_path, rows)
    for i in range(len(unlabeled)):
        image, slot = unlabeled[i]
        assert slot == i and isinstance(slot, np.int32)
        np.testing.assert_array_equal(image, reference[i][0])
    with pytest.raises(KeyError):
        LabeledDataset(stripped, rows)[0]  # the stripped file really has no depths


def test_lazy_file_handle_survives_pickling(prepared):
    import pickle
    data = read_prepared(prepared["dir"])
    dataset = UnlabeledDataset(data.train_path, [0, 1])
    dataset[0]
    clone = pickle.loads(pickle.dumps(dataset))
    np.testing.assert_array_equal(clone[1][0], dataset[1][0])


@pytest.mark.parametrize("missing", ["train.h5", "test.h5"])
def test_read_prepared_names_missing_file(prepared, tmp_path, missing):
    folder = tmp_path / "partial"
    shutil.copytree(prepared["dir"], folder)
    os.remove(folder / missing)
    with pytest.raises(DataError, match=f"data dir .* has no {missing}; run python -m data.prepare"):
        read_prepared(str(folder))


def test_read_prepared_names_missing_dataset(prepared, tmp_path):
    folder = tmp_path / "nosource"
    shutil.copytree(prepared["dir"], folder)
    with h5py.File(folder / "test.h5", "r+") as h5:
        del h5["source"]
    with pytest.raises(DataError, match="test.h5: no dataset source"):
        read_prepared(str(folder))


def test_prepared_files_say_which_dataset_they_hold(tmp_path):
    """Synthetic scenes are marked so that reports never present them as NYU numbers."""
    images, depths = synthetic.generate(4, seed=1, height=48, width=64)
    mat, splits = synthetic.write_official(str(tmp_path / "syn"), images, depths, [0, 1], [2, 3])
    prepare.prepare(mat, splits, str(tmp_path / "out"), size=(32, 32), copies=1, progress=False)
    for name in ("train.h5", "test.h5"):
        with h5py.File(tmp_path / "out" / name, "r") as f:
            assert f.attrs["dataset"] == "synthetic"
    # the official file carries no marker: a .mat without it is NYU Depth v2
    with h5py.File(mat, "r+") as f:
        del f.attrs["semidepth_dataset"]
    with LabeledMat(mat) as labeled:
        assert labeled.dataset_name == "nyu_depth_v2"

