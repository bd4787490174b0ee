"""The edges of evaluate.py, predict.py, export.py and data.prepare: one error line, never a traceback."""

import cv2
import numpy as np
import pytest

import evaluate
import predict
import train
from data import prepare
import export


@pytest.fixture(scope="module")
def run_dir(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("edges") / "run"
    assert train.main(["--pretrained", "0", "--epochs", "1", "--batch-size", "4", "--no-progress",
                       "--data", tiny_data, "--out", str(out)]) == 0
    return out


def one_line(capsys):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def predictions(kind):
    """(4, 12, 16) depth maps for tiny_data's 4 test images, broken in one way."""
    maps = np.full((4, 12, 16), 2.0, np.float32)
    if kind == "negative":
        maps[2, 3, 5] = -1.0
    elif kind == "zero":
        maps[1, 0, 7] = 0.0
        maps[3, 0, 0] = -5.0  # a later bad value: the first one is named
    elif kind == "nan":
        maps[0, 11, 15] = np.nan
    elif kind == "empty":
        maps = np.zeros((4, 0, 16), np.float32)
    return maps


@pytest.mark.parametrize("kind, message", [
    ("negative", "depth map 2 has non-positive depth (min -1, the first at pixel (3, 5)); predictions must be > 0 m"),
    ("zero", "depth map 1 has non-positive depth (min 0, the first at pixel (0, 7))"),
    ("nan", "depth map 0 has NaN or infinite values (the first at pixel (11, 15))"),
    ("empty", "holds empty depth maps (shape (4, 0, 16))"),
    ("npz", "is an .npz archive"),
])
def test_evaluate_refuses_bad_predictions(kind, message, tiny_data, tmp_path, capsys):
    path = tmp_path / ("pred.npz" if kind == "npz" else "pred.npy")
    if kind == "npz":
        np.savez(path, depth=predictions("good"))
    else:
        np.save(path, predictions(kind))
    out = tmp_path / "eval.json"
    assert evaluate.main(["--predictions", str(path), "--data", tiny_data, "--out", str(out)]) == 2
    line = one_line(capsys)
    assert message in line and str(path) in line
    assert not out.exists()
    np.save(tmp_path / "good.npy", predictions("good"))  # the same maps without the fault are scored
    assert evaluate.main(["--predictions", str(tmp_path / "good.npy"), "--data", tiny_data,
                          "--out", str(out)]) == 0


def truncated_copy(run_dir, tmp_path):
    import shutil
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    params = copy / "checkpoints" / "last" / "conf_net.params"
    params.write_bytes(params.read_bytes()[:500])
    return copy, params


def test_truncated_parameters_are_one_line_in_every_tool(run_dir, tiny_data, tmp_path, capsys):
    copy, params = truncated_copy(run_dir, tmp_path)
    image = tmp_path / "room.png"
    cv2.imwrite(str(image), np.full((48, 64, 3), 128, np.uint8))
    calls = [(evaluate.main, ["--run", str(copy)]),
             (predict.main, ["--run", str(copy), "--out", str(tmp_path / "p"), "--no-progress", str(image)]),
             (export.main, ["--run", str(copy), "--out", str(tmp_path / "x")])]
    for main, argv in calls:
        assert main(argv) == 2, main
        line = one_line(capsys)
        assert str(params) in line and "cannot load" in line, line
    assert not [p for p in (copy / "eval.json", tmp_path / "p", tmp_path / "x") if p.exists()]


def test_predict_refuses_a_truncated_jpeg_and_a_missing_gpu(run_dir, tmp_path, capsys):
    rgb = np.random.RandomState(0).randint(0, 255, (60, 80, 3)).astype(np.uint8)
    whole, cut = tmp_path / "whole.jpg", tmp_path / "cut.jpg"
    cv2.imwrite(str(whole), rgb)
    cut.write_bytes(whole.read_bytes()[:len(whole.read_bytes()) // 2])
    assert cv2.imread(str(cut)) is not None  # OpenCV alone decodes it (libjpeg only warns)
    out = tmp_path / "out"
    assert predict.main(["--run", str(run_dir), "--out", str(out), "--no-progress", str(whole), str(cut)]) == 2
    line = one_line(capsys)
    assert str(cut) in line and "not a readable image (image file is truncated" in line
    assert not out.exists()
    assert predict.main(["--run", str(run_dir), "--out", str(out), "--no-progress", "--gpus", "0", str(whole)]) == 2
    assert "--gpus 0: this machine's MXNet sees no GPU" in one_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("size", ["100x75", "320x200"])
def test_prepare_size_must_be_a_multiple_of_16(size, tmp_path, capsys):
    out = tmp_path / "prep"
    with pytest.raises(SystemExit) as stop:
        prepare.main(["--mat", "x.mat", "--splits", "y.mat", "--out", str(out), "--size", size])
    assert stop.value.code == 2
    assert "%s (width x height): both must be multiples of 16" % size in capsys.readouterr().err
    assert not out.exists()


def test_network_size_error_is_width_by_height(run_dir, tmp_path, capsys):
    image = tmp_path / "room.png"
    cv2.imwrite(str(image), np.full((48, 64, 3), 128, np.uint8))
    assert predict.main(["--run", str(run_dir), "--out", str(tmp_path / "o"), "--size", "72x48", str(image)]) == 2
    assert "input size 72x48 (width x height) is not a multiple of 16 in both; use e.g. 320x240" in one_line(capsys)
