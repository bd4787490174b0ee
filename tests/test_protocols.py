"""evaluate.py's protocol flags, ground truths, external predictions and bad input, end to end.

Ground truth: the session's tiny prepared set (conftest: 4 test images at 96x128 with raw
holes) and, for BTS's fixed 480x640 crop, two rendered 480x640 rooms.  Expected numbers
come from short re-implementations here (``restated``) or from tests/test_metrics.bts_eval.
"""
import csv
import json
import os

import cv2
import h5py
import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

import evaluate
from data import prepare, synthetic
from evaluation.inference import predict
from test_metrics import bts_eval

METRIC_NAMES = ("rel", "sq_rel", "rms", "rms_log", "log10", "silog", "d1", "d2", "d3")


def read_test(data_dir, name):
    with h5py.File(os.path.join(data_dir, "test.h5"), "r") as h5:
        return h5[name][:]


def restated(gts, preds, box, low, high, per_image=True, floor=1e-3):
    """The metrics written out once more: mask, clip, per image or pooled."""
    terms = []
    for gt, pred in zip(gts, preds):
        mask = (gt > low) & (gt < high)
        if box is not None:
            crop = np.zeros_like(mask)
            crop[box[0]:box[1], box[2]:box[3]] = True
            mask &= crop
        g = gt[mask].astype(np.float64)
        p = np.clip(pred[mask].astype(np.float64), max(low, floor), high)
        d = np.log(p) - np.log(g)
        r = np.maximum(p / g, g / p)
        terms.append({"rel": np.abs(p - g) / g, "sq_rel": (p - g) ** 2 / g, "sq": (p - g) ** 2, "d": d,
                      "log10": np.abs(np.log10(p) - np.log10(g)), "d1": r < 1.25, "d2": r < 1.25 ** 2,
                      "d3": r < 1.25 ** 3})

    def metrics(t):
        out = {k: float(np.mean(t[k])) for k in ("rel", "sq_rel", "log10", "d1", "d2", "d3")}
        out.update(rms=float(np.sqrt(np.mean(t["sq"]))), rms_log=float(np.sqrt(np.mean(t["d"] ** 2))),
                   silog=float(np.sqrt(np.mean(t["d"] ** 2) - np.mean(t["d"]) ** 2) * 100))
        return out

    if per_image:
        each = [metrics(t) for t in terms]
        return {k: float(np.mean([e[k] for e in each])) for k in METRIC_NAMES}
    return metrics({k: np.concatenate([t[k] for t in terms]) for k in terms[0]})


def run_eval(argv, capsys):
    code = evaluate.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def preds(tiny_data, tmp_path_factory):
    """Full-resolution predictions for the tiny set: the filled depth, perturbed."""
    root = str(tmp_path_factory.mktemp("protocols"))
    filled = read_test(tiny_data, "depths")
    rng = np.random.RandomState(0)
    pred = (filled * rng.uniform(0.7, 1.4, size=filled.shape)).astype(np.float32)
    path = os.path.join(root, "pred.npy")
    np.save(path, pred)
    return {"root": root, "npy": path, "pred": pred, "data": tiny_data}


# 96x128 frames: eigen (45, 471, 41, 601) x 0.2 rounded half up; toolbox (44, 471, 40, 601) rounds
# to the same box at this size (the two differ at 480x640: tests/test_metrics.py).
EIGEN_96 = (9, 94, 8, 120)
TOOLBOX_96 = (9, 94, 8, 120)


@pytest.mark.parametrize("flags, gt, box, low, high, per_image", [
    ([], "raw_depths", EIGEN_96, 1e-3, 10.0, True),
    (["--gt", "filled"], "depths", EIGEN_96, 1e-3, 10.0, True),
    (["--protocol", "full"], "depths", None, 0.0, np.inf, False),
    (["--protocol", "full", "--gt", "raw", "--crop", "eigen", "--average", "image"], "raw_depths", EIGEN_96,
     0.0, np.inf, True),
    (["--crop", "none", "--average", "pixel", "--min-depth", "1", "--max-depth", "4"], "raw_depths", None,
     1.0, 4.0, False),
    (["--crop", "20:60:30:90"], "raw_depths", (4, 12, 6, 18), 1e-3, 10.0, True),
])
def test_protocol_flags_match_a_restatement(preds, capsys, flags, gt, box, low, high, per_image):
    out = os.path.join(preds["root"], "flags.json")
    code, _, err = run_eval(["--predictions", preds["npy"], "--data", preds["data"], "--out", out] + flags, capsys)
    assert code == 0, err
    with open(out) as f:
        result = json.load(f)
    expected = restated(read_test(preds["data"], gt), preds["pred"], box, low, high, per_image)
    for name in METRIC_NAMES:
        assert result["metrics"][name] == pytest.approx(expected[name], rel=1e-6), name
    protocol = result["protocol"]
    assert protocol["gt"] == {"raw_depths": "raw", "depths": "filled"}[gt]
    assert protocol["crop_box"] == (list(box) if box else None) and protocol["frame"] == [96, 128]
    assert protocol["average"] == ("image" if per_image else "pixel") and protocol["align"] == "none"
    assert protocol["min_depth"] == low and protocol["max_depth"] == (None if np.isinf(high) else high)
    assert set(result["metrics_by_protocol"]) >= {"eigen", "full", protocol["name"]}
    assert result["presets"]["eigen"]["gt"] == "raw" and result["presets"]["full"]["gt"] == "filled"


def test_raw_and_filled_differ_on_holes(preds):
    raw, filled = read_test(preds["data"], "raw_depths"), read_test(preds["data"], "depths")
    holes = (raw == 0) & (filled > 0)
    assert holes[:, 9:94, 8:120].mean() > 0.05      # the fixture really has holes inside the crop
    np.testing.assert_array_equal(raw[raw > 0], filled[raw > 0])


def test_toolbox_crop_at_480x640_and_align_flags(preds, capsys):
    out = os.path.join(preds["root"], "median.json")
    code, _, err = run_eval(["--predictions", preds["npy"], "--data", preds["data"], "--out", out,
                             "--align", "median", "--crop", "toolbox"], capsys)
    assert code == 0, err
    with open(out) as f:
        result = json.load(f)
    raw = read_test(preds["data"], "raw_depths")
    scaled = []
    for g, p in zip(raw, preds["pred"]):
        mask = (g > 1e-3) & (g < 10)
        crop = np.zeros_like(mask)
        crop[TOOLBOX_96[0]:TOOLBOX_96[1], TOOLBOX_96[2]:TOOLBOX_96[3]] = True
        mask &= crop
        scaled.append(p * np.median(g[mask]) / np.median(p[mask]))
    expected = restated(raw, scaled, TOOLBOX_96, 1e-3, 10.0)
    assert result["metrics"]["rel"] == pytest.approx(expected["rel"], rel=1e-6)
    assert result["protocol"]["align"] == "median" and result["protocol"]["name"] == "eigen+crop=toolbox,align=median"


def test_per_image_csv(preds, tmp_path, capsys):
    table = str(tmp_path / "scores.csv")
    out = str(tmp_path / "e.json")
    code, printed, err = run_eval(["--predictions", preds["npy"], "--data", preds["data"], "--out", out,
                                   "--per-image", table], capsys)
    assert code == 0, err
    assert table in printed
    with open(table) as f:
        rows = list(csv.DictReader(f))
    raw = read_test(preds["data"], "raw_depths")
    sources = read_test(preds["data"], "source")
    assert [int(r["row"]) for r in rows] == [0, 1, 2, 3]
    assert [int(r["source"]) for r in rows] == sources.tolist()
    for i, r in enumerate(rows):
        one = restated(raw[i:i + 1], preds["pred"][i:i + 1], EIGEN_96, 1e-3, 10.0)
        for name in METRIC_NAMES:
            assert float(r[name]) == pytest.approx(one[name], rel=1e-6), (i, name)
        mask = (raw[i] > 1e-3) & (raw[i] < 10)
        assert int(r["n_pixels"]) == int(mask[9:94, 8:120].sum())


def write_pngs(folder, maps, names):
    os.makedirs(folder, exist_ok=True)
    for m, name in zip(maps, names):
        cv2.imwrite(os.path.join(folder, name), np.round(m * 1000).astype(np.uint16))


def test_png_predictions_by_source_and_by_row(preds, tmp_path, capsys):
    sources = read_test(preds["data"], "source")
    millimetres = np.round(preds["pred"] * 1000) / 1000
    by_source = str(tmp_path / "by_source")
    write_pngs(by_source, preds["pred"], ["kitchen_rgb_%05d.png" % s for s in sources[::-1]][::-1])
    by_row = str(tmp_path / "by_row")
    write_pngs(by_row, preds["pred"], ["%d.png" % i for i in range(4)])
    results = []
    for folder, match in ((by_source, "source"), (by_row, "row")):
        code, _, err = run_eval(["--predictions", folder, "--data", preds["data"], "--match", match], capsys)
        assert code == 0, err
        with open(folder + "_eval.json") as f:
            results.append(json.load(f))
    expected = restated(read_test(preds["data"], "raw_depths"), millimetres, EIGEN_96, 1e-3, 10.0)
    for result in results:
        for name in METRIC_NAMES:
            assert result["metrics"][name] == pytest.approx(expected[name], rel=1e-5), name


@pytest.fixture(scope="module")
def vga(tmp_path_factory):
    """Two 480x640 test rooms prepared, so BTS's fixed crop rows 45:471, cols 41:601 applies as is."""
    root = str(tmp_path_factory.mktemp("vga"))
    images, depths = synthetic.generate(3, seed=5)
    mat, splits = synthetic.write_official(os.path.join(root, "official"), images, depths, [0], [1, 2])
    data = os.path.join(root, "data")
    prepare.prepare(mat, splits, data, size=(64, 48), copies=1, progress=False)
    return data


def test_eigen_with_raw_gives_bts_numbers_on_bts_pngs(vga, tmp_path, capsys):
    raw = read_test(vga, "raw_depths")
    rng = np.random.RandomState(1)
    pred = np.clip(read_test(vga, "depths") * rng.uniform(0.8, 1.25, size=raw.shape), 0.5, 12)
    folder = str(tmp_path / "bts_dump")
    write_pngs(folder, pred, ["bedroom_rgb_%05d.png" % s for s in read_test(vga, "source")])
    out = str(tmp_path / "bts.json")
    code, _, err = run_eval(["--predictions", folder, "--data", vga, "--protocol", "eigen", "--gt", "raw",
                             "--out", out], capsys)
    assert code == 0, err
    with open(out) as f:
        ours = json.load(f)["metrics"]
    # BTS reads the PNGs as float32 / 1000 and the ground truth likewise.
    loaded = [cv2.imread(os.path.join(folder, n), -1).astype(np.float32) / 1000.0 for n in sorted(os.listdir(folder))]
    exact, as_bts = bts_eval(list(raw), loaded, dtype=np.float64), bts_eval(list(raw), loaded)
    for name in exact:
        assert ours[name] == pytest.approx(exact[name], rel=1e-9), name
        assert ours[name] == pytest.approx(as_bts[name], rel=1e-5), name


class Fixed:
    """A stand-in depth net with a known output: 1/4 block mean of channel 0 plus the column index."""

    def __call__(self, x):
        pooled = mx.nd.Pooling(x[:, :1], kernel=(4, 4), stride=(4, 4), pool_type="avg")
        columns = mx.nd.arange(pooled.shape[3]).reshape((1, 1, 1, -1))
        return mx.nd.broadcast_add(pooled, columns) + 10


def test_flip_tta_averages_with_the_mirrored_prediction():
    rng = np.random.RandomState(0)
    images = [rng.normal(size=(3, 8, 16)).astype(np.float32) for _ in range(3)]
    dataset = gluon.data.SimpleDataset([(img, np.int32(i)) for i, img in enumerate(images)])
    conf_net = lambda image, depth: mx.nd.ones_like(depth) * 0.5  # noqa: E731  (ConfidenceNet's signature)
    plain = [d for _, d, _ in predict(Fixed(), conf_net, dataset, batch_size=2, progress=False)]
    flipped = [d for _, d, _ in predict(Fixed(), conf_net, dataset, batch_size=2, progress=False, flip=True)]
    plain, flipped = np.concatenate(plain), np.concatenate(flipped)
    blocks = np.stack([img[0].reshape(2, 4, 4, 4).mean(axis=(1, 3)) for img in images])
    # plain: block mean + column j + 10; flipped back: block mean + (3 - j) + 10; mean: + 1.5 + 10
    np.testing.assert_allclose(plain, blocks + np.arange(4) + 10, rtol=1e-5)
    np.testing.assert_allclose(flipped, blocks + 1.5 + 10, rtol=1e-5)


def bad_cases(preds, tmp_path):
    root = str(tmp_path)
    arrays = {"inf": np.full((4, 12, 16), np.inf, np.float32), "zero": np.zeros((4, 12, 16), np.float32),
              "transposed": np.ones((4, 16, 12), np.float32),
              "negative": -np.ones((4, 12, 16), np.float32)}
    for name, a in arrays.items():
        np.save(os.path.join(root, name + ".npy"), a)
    sources = read_test(preds["data"], "source")
    good = ["r_%05d.png" % s for s in sources]
    folders = {}
    for case in ("missing_png", "unreadable_png", "eight_bit_png", "zero_png", "duplicate_png", "unknown_png"):
        folder = os.path.join(root, case)
        write_pngs(folder, np.ones((4, 12, 16)), good)
        folders[case] = folder
    os.remove(os.path.join(folders["missing_png"], good[2]))
    with open(os.path.join(folders["unreadable_png"], good[1]), "wb") as f:
        f.write(b"not a png")
    cv2.imwrite(os.path.join(folders["eight_bit_png"], good[0]), np.ones((12, 16), np.uint8))
    cv2.imwrite(os.path.join(folders["zero_png"], good[3]), np.zeros((12, 16), np.uint16))
    write_pngs(folders["duplicate_png"], np.ones((1, 12, 16)), ["copy_%05d.png" % sources[0]])
    write_pngs(folders["unknown_png"], np.ones((1, 12, 16)), ["r_%05d.png" % 9999])
    npy, data = preds["npy"], ["--data", preds["data"]]
    return {
        "inf": ([os.path.join(root, "inf.npy")], "depth map 0 has NaN or infinite values"),
        "zero": ([os.path.join(root, "zero.npy")], "depth map 0 has non-positive depth"),
        "negative": ([os.path.join(root, "negative.npy")], "non-positive"),
        "missing_png": ([folders["missing_png"]], "no PNG for 1 test image(s), e.g. source %d" % sources[2]),
        "unreadable_png": ([folders["unreadable_png"]], good[1] + ": not a readable image"),
        "eight_bit_png": ([folders["eight_bit_png"]], "expected a 16-bit single-channel PNG"),
        "zero_png": ([folders["zero_png"]], good[3] + " (test row 3) has non-positive depth"),
        "duplicate_png": ([folders["duplicate_png"]], "both name source %d" % sources[0]),
        "unknown_png": ([folders["unknown_png"]], "NYU index 9999 is not a test image"),
        "inverse_without_lstsq": ([npy, "--align-space", "inverse"], "needs align lstsq"),
        "empty_range": ([npy, "--min-depth", "5", "--max-depth", "1"], "min depth < max depth"),
        "bad_crop": ([npy, "--crop", "1:2:3"], "crop '1:2:3'"),
        "flip_without_run": ([npy, "--flip-tta"], "--flip-tta"),
        "per_image_not_csv": ([npy, "--per-image", os.path.join(root, "x.txt")], ".csv"),
        "match_with_npy": ([npy, "--match", "row"], "--match is for a folder of PNGs"),
        "transposed": ([os.path.join(root, "transposed.npy")], "map of test row 0 is 16x12, not the 96x128"),
    }, data


CASES = ["inf", "zero", "negative", "missing_png", "unreadable_png", "eight_bit_png", "zero_png", "duplicate_png",
         "unknown_png", "inverse_without_lstsq", "empty_range", "bad_crop", "flip_without_run", "per_image_not_csv",
         "match_with_npy", "transposed"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_one_line_nothing_written(preds, tmp_path, capsys, case):
    cases, data = bad_cases(preds, tmp_path)
    (source, *flags), message = cases[case]
    out, table = str(tmp_path / "out.json"), str(tmp_path / "rows.csv")
    argv = ["--predictions", source] + data + ["--out", out] + flags
    if "--per-image" not in flags:
        argv += ["--per-image", table]
    code, _, err = run_eval(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not os.path.exists(out) and not os.path.exists(table)


def test_prepared_before_raw_depths_says_how_to_add_them(preds, tmp_path, capsys):
    import shutil
    old = str(tmp_path / "old")
    shutil.copytree(preds["data"], old)
    with h5py.File(os.path.join(old, "test.h5"), "a") as h5:
        del h5["raw_depths"]
    out = str(tmp_path / "o.json")
    code, _, err = run_eval(["--predictions", preds["npy"], "--data", old, "--out", out], capsys)
    assert code == 2 and not os.path.exists(out)
    assert err.count("\n") == 1 and "has no raw_depths" in err and "--add-raw" in err and "--gt filled" in err
    code, _, err = run_eval(["--predictions", preds["npy"], "--data", old, "--out", out, "--gt", "filled"], capsys)
    assert code == 0, err
    with open(out) as f:
        result = json.load(f)
    assert set(result["metrics_by_protocol"]) == {"eigen+gt=filled", "full"}  # no raw preset without raw depth


def test_crops_are_named_by_the_code_that_uses_them():
    from evaluation.metrics import parse_crop
    assert parse_crop("bts") == parse_crop("eigen") == (45, 471, 41, 601)  # BTS / AdaBins eval code
    assert parse_crop("dorn") == (20, 460, 24, 616)  # DenseDepth's inclusive [20, 459, 24, 615] as slices
    assert parse_crop("dorn") == parse_crop("20:460:24:616")


def test_align_corners_upsampling_by_hand():
    from data.grid import upsample, upsample_align_corners
    small = np.array([[0.0, 2.0], [4.0, 6.0]], np.float32)
    # corners on corners: output i samples input i (h - 1) / (H - 1) = i / 2
    np.testing.assert_allclose(upsample_align_corners(small, (3, 3)), [[0, 1, 2], [2, 3, 4], [4, 5, 6]])
    # 4 columns: positions 0, 1/3, 2/3, 1 -> 0, 2/3, 4/3, 2 on the first row
    np.testing.assert_allclose(upsample_align_corners(small, (2, 4))[0], [0, 2 / 3, 4 / 3, 2], rtol=1e-6)
    # half-pixel centres repeat the edge values: the first two of four columns are 0 and 0.5
    np.testing.assert_allclose(upsample(small, (2, 4))[0], [0, 0.5, 1.5, 2], rtol=1e-6)


def test_upsample_flag_for_external_predictions(preds, capsys):
    from data.grid import upsample_align_corners
    small = os.path.join(preds["root"], "quarter.npy")
    np.save(small, np.ascontiguousarray(preds["pred"][:, ::4, ::4]))  # 24 x 32 maps for 96 x 128 ground truth
    runs = {}
    for mode in ("half-pixel", "align-corners"):
        code, out, err = run_eval(["--predictions", small, "--data", preds["data"], "--upsample", mode,
                                   "--protocol", "full", "--out", small + mode + ".json"], capsys)
        assert code == 0, err
        runs[mode] = json.load(open(small + mode + ".json"))
        assert runs[mode]["upsample"] == mode
    # the align-corners score is the restatement's on maps resized the align-corners way
    gts = read_test(preds["data"], "depths")
    big = np.stack([upsample_align_corners(p, gts.shape[1:]) for p in preds["pred"][:, ::4, ::4]])
    want = restated(gts, big, None, 0.0, np.inf, per_image=False)
    assert runs["align-corners"]["metrics"]["rel"] == pytest.approx(want["rel"], rel=1e-5)
    assert runs["half-pixel"]["metrics"]["rel"] != pytest.approx(want["rel"], rel=1e-5)


def test_upsample_is_refused_for_a_run(capsys):
    code, _, err = run_eval(["--run", "somewhere", "--upsample", "align-corners"], capsys)
    assert code == 2 and "--upsample is for --predictions" in err
