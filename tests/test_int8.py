"""INT8 inference (evaluation/quantize.py, evaluate.py / predict.py --int8).

The tiny run: random networks (pretrained=False) with BatchNorm statistics moved away from
0 / 1, a 32x32 prepared synthetic set whose labeled, unlabeled and validation rows are
disjoint.  float32 references come from the same networks run imperatively.
"""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

import evaluate
import predict as predict_cli
from data import prepare, synthetic
from data.dataset import LabeledDataset
from evaluation import EvaluationError
from evaluation import quantize
from evaluation.metrics import PROTOCOLS
from evaluation.runs import load_run
from symbols import get_confidence_net, get_depth_net
from rundir.state import TrainingPoint
from training import checkpoint

SIZE = (32, 32)
LABELED_ROWS = [0, 1, 2, 3, 8, 9]     # train.h5 rows: 2 copies per source, sources 0, 1, 4 labeled
UNLABELED_ROWS = [4, 5, 6, 7]
VAL_ROWS = [10, 11]

needs_onednn = pytest.mark.skipif(not mx.runtime.Features().is_enabled("MKLDNN"), reason="INT8 needs oneDNN")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("int8"))
    images, depths = synthetic.generate(9, seed=0, height=48, width=64)
    mat, splits = synthetic.write_official(os.path.join(root, "raw"), images, depths, list(range(6)), [6, 7, 8])
    data = os.path.join(root, "data")
    prepare.prepare(mat, splits, data, seed=0, size=SIZE, copies=2, progress=False)
    mx.random.seed(0)
    depth_net, conf_net = get_depth_net(pretrained=False), get_confidence_net()
    x = mx.nd.zeros((1, 3, SIZE[1], SIZE[0]))
    conf_net(x, depth_net(x))   # finish deferred initialisation
    rng = np.random.RandomState(0)
    for name, p in depth_net.collect_params().items():
        if name.endswith("running_mean"):
            p.set_data(mx.nd.array(rng.normal(0, 0.2, p.shape)))
        elif name.endswith("running_var"):
            p.set_data(mx.nd.array(rng.uniform(0.5, 2.0, p.shape)))
    conf_net.last.weight.set_data(mx.nd.random.normal(0, 0.05, shape=conf_net.last.weight.shape))
    run = os.path.join(root, "run")
    checkpoint.save(run, "last", depth_net, conf_net,
                    gluon.Trainer(depth_net.collect_params(), "sgd", {"learning_rate": 0.1}),
                    gluon.Trainer(conf_net.collect_params(), "adam"), {"depth": mx.nd.zeros((1, 1, 1, 1))},
                    TrainingPoint())
    with open(os.path.join(run, "config.json"), "w") as f:
        json.dump({"data": data, "alpha": 5.0, "t_semi": 0.9, "labeled_frac": 0.5, "seed": 0,
                   "dataset": "synthetic", "input_size": list(SIZE)}, f)
    with open(os.path.join(run, "split.json"), "w") as f:
        json.dump({"labeled": [0, 1, 4], "unlabeled": [2, 3], "val": [5], "labeled_rows": LABELED_ROWS,
                   "unlabeled_rows": UNLABELED_ROWS, "val_rows": VAL_ROWS}, f)
    return {"root": root, "data": data, "run": run, "nets": (depth_net, conf_net)}


def test_calibration_rows_are_evenly_spaced_labeled_rows():
    # 4 of 6 sorted rows: positions linspace(0, 5, 4) = 0, 1.67, 3.33, 5 -> 0, 2, 3, 5
    assert quantize.calibration_rows([9, 8, 3, 2, 1, 0], 4).tolist() == [0, 2, 3, 9]
    assert quantize.calibration_rows([5, 1], 32).tolist() == [1, 5]
    assert quantize.calibration_rows([7], 1).tolist() == [7]


@needs_onednn
def test_int8_depth_is_close_to_float32_and_calibrated_on_labeled_rows_only(tiny, monkeypatch):
    read = []
    original = LabeledDataset.__getitem__
    monkeypatch.setattr(LabeledDataset, "__getitem__", lambda self, i: read.append(int(self.rows[i])) or
                        original(self, i))
    run = load_run(tiny["run"], "last", protocol=PROTOCOLS["full"])
    (qdepth, qconf), record = quantize.int8_nets(run, tiny["run"], 4)
    # linspace(0, 5, 4) over the sorted labeled rows; nothing else of train.h5 (or test.h5) was read
    assert read == [0, 2, 3, 9] and record["calib_rows"] == [0, 2, 3, 9] and record["calib_images"] == 4
    monkeypatch.undo()
    # rows the calibration never saw
    unseen = LabeledDataset(os.path.join(tiny["data"], "train.h5"), VAL_ROWS + UNLABELED_ROWS)
    images = mx.nd.array(np.stack([unseen[i][0] for i in range(len(unseen))]))
    depth_net, conf_net = tiny["nets"]
    want_depth = depth_net(images).asnumpy()
    want_conf = conf_net(images, depth_net(images)).asnumpy()
    got_depth = qdepth(images)
    got_conf = qconf(images, got_depth).asnumpy()
    got_depth = got_depth.asnumpy()
    # it is an INT8 graph: quantize nodes in it, the head convolution left in float32
    nodes = json.loads(qdepth._cached_graph[1].tojson())["nodes"]
    ops = [n["op"] for n in nodes]
    assert "_contrib_quantize_v2" in ops and "_contrib_dequantize" in ops
    convs = [n["name"] for n in nodes if n["op"] == "_sg_mkldnn_conv"]  # oneDNN's fused convolutions, in order
    assert convs[-1].startswith("sg_") and all(c.startswith("quantized_sg_") for c in convs[:-1])
    # the confidence net too, its deconvs included (as SubPixelDeconv convolutions): 5 INT8, the last float32
    nodes = json.loads(qconf._cached_graph[1].tojson())["nodes"]
    assert "Deconvolution" not in [n["op"] for n in nodes]
    convs = [n["name"] for n in nodes if n["op"] == "_sg_mkldnn_conv"]
    assert len(convs) == 6 and convs[-1].startswith("sg_") and all(c.startswith("quantized_sg_") for c in convs[:-1])
    # Tolerance: 8-bit tensors keep ~1/127 of each calibrated range per layer; over the ~60
    # layers of the depth net that compounds to the 2.2 % mean (37 cm worst pixel) seen on the
    # trained demo run, whose validation rel then moved by 0.001.  A missed calibration, wrong
    # scale or a swapped input would be off by far more.  Outputs on unseen (non-calibration) rows.
    relative = np.abs(got_depth - want_depth) / want_depth
    assert relative.mean() < 0.05 and relative.max() < 0.25, (relative.mean(), relative.max())
    assert np.std(got_depth) > 0.2 * np.std(want_depth)  # not a flattened map
    assert np.abs(got_conf - want_conf).max() < 0.05 and np.all((got_conf > 0) & (got_conf < 1))
    # deterministic: the same rows give the same graph and the same numbers
    run = load_run(tiny["run"], "last", protocol=PROTOCOLS["full"])
    (again, _), _ = quantize.int8_nets(run, tiny["run"], 4)
    np.testing.assert_array_equal(again(images).asnumpy(), got_depth)


@needs_onednn
def test_evaluate_int8_writes_its_own_json_that_records_it(tiny, capfd):
    assert evaluate.main(["--run", tiny["run"], "--no-progress", "--gt", "filled"]) == 0
    capfd.readouterr()
    assert evaluate.main(["--run", tiny["run"], "--no-progress", "--gt", "filled", "--int8",
                          "--calib-images", "3"]) == 0
    out = capfd.readouterr().out
    assert out.startswith("INT8 inference (oneDNN, naive calibration on 3 labeled training images): "
                          "not the float32 numbers\n")
    # --gt filled is its own scoring (eval_eigen-gt-filled.json), its INT8 twin adds _int8
    assert os.path.join(tiny["run"], "eval_eigen-gt-filled_int8.json") in out.splitlines()
    with open(os.path.join(tiny["run"], "eval_eigen-gt-filled.json")) as f:
        f32 = json.load(f)
    with open(os.path.join(tiny["run"], "eval_eigen-gt-filled_int8.json")) as f:
        i8 = json.load(f)
    assert f32["int8"] is False
    # sorted labeled rows 0 1 2 3 8 9 at positions 0, 2.5, 5 (numpy rounds half to even: 2)
    assert i8["int8"]["calib_rows"] == [0, 2, 9] and i8["int8"]["calibration"] == "naive"
    assert i8["int8"]["float32_layers"]["depth_net"][0].endswith("_fwd")
    assert i8["metrics"]["n_pixels"] == f32["metrics"]["n_pixels"]
    assert i8["metrics"]["rel"] == pytest.approx(f32["metrics"]["rel"], rel=0.1)


def run_evaluate(argv, capsys):
    code = evaluate.main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--calib-images", "4"], "--calib-images is for --int8"),
    (["--int8", "--calib-images", "0"], "--calib-images must be >= 1"),
    (["--int8", "--gpus", "0"], "--int8 runs on CPU only (oneDNN); drop --gpus"),
])
def test_evaluate_int8_flag_errors(tiny, argv, message, capsys):
    code, err = run_evaluate(["--run", tiny["run"], "--no-progress"] + argv, capsys)
    assert (code, err) == (2, "error: %s\n" % message)


def test_evaluate_int8_needs_a_run(tmp_path, capsys):
    code, err = run_evaluate(["--predictions", str(tmp_path / "p.npy"), "--data", str(tmp_path), "--int8"], capsys)
    assert (code, err) == (2, "error: --int8 and --calib-images run the networks: they need --run\n")


@pytest.mark.parametrize("argv,message", [
    (["--calib-images", "4"], "--calib-images and --data are for --int8"),
    (["--data", "somewhere"], "--calib-images and --data are for --int8"),
    (["--int8", "--calib-images", "-1"], "--calib-images must be >= 1"),
    (["--int8", "--gpus", "0"], "--int8 runs on CPU only (oneDNN); drop --gpus"),
])
def test_predict_int8_flag_errors(tmp_path, argv, message, capsys):
    out = tmp_path / "out"
    assert predict_cli.main(["--run", "runs/none", "--out", str(out), "photo.png"] + argv) == 2
    assert capsys.readouterr().err == "error: %s\n" % message
    assert not out.exists()


def test_int8_refuses_gpus_and_builds_without_onednn(monkeypatch):
    with pytest.raises(EvaluationError, match=r"^--int8 runs on CPU only \(oneDNN\); drop --gpus$"):
        quantize.check_int8([mx.cpu(), mx.gpu(0)])
    monkeypatch.setattr(quantize, "Features", lambda: type("F", (), {"is_enabled": lambda self, name: False})())
    with pytest.raises(EvaluationError) as info:
        quantize.check_int8([mx.cpu()])
    assert str(info.value) == "--int8 needs an MXNet build with oneDNN (MKLDNN); this one has none"


@needs_onednn
def test_int8_without_labeled_rows_or_train_h5(tiny, tmp_path):
    run = {"ctxs": [mx.cpu()], "nets": tiny["nets"], "data": tiny["data"], "split": {"labeled_rows": []}}
    with pytest.raises(EvaluationError) as info:
        quantize.int8_nets(run, tiny["run"], 4)
    assert str(info.value) == "--int8 calibrates on labeled training rows and the run's split.json has none"
    with pytest.raises(EvaluationError) as info:
        quantize.int8_nets(dict(run, data=str(tmp_path)), tiny["run"], 4)
    assert str(info.value) == ("--int8 calibrates on the run's labeled training images: %s has no train.h5"
                               % tmp_path)


@needs_onednn
def test_predict_int8_writes_maps_close_to_float32(tiny, tmp_path, capsys):
    import cv2
    photo = tmp_path / "photo.png"
    rng = np.random.RandomState(3)
    cv2.imwrite(str(photo), rng.randint(0, 256, size=(40, 56, 3), dtype=np.uint8))
    argv = ["--run", tiny["run"], str(photo), "--no-progress"]
    assert predict_cli.main(argv + ["--out", str(tmp_path / "f32")]) == 0
    assert predict_cli.main(argv + ["--out", str(tmp_path / "i8"), "--int8", "--calib-images", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == ("1 image(s) predicted with %s at 32x32 in INT8 -> %s (NAME_depth.npy/.png, NAME_conf.npy/.png)"
                      % (os.path.join(tiny["run"], "checkpoints", "last"), tmp_path / "i8"))
    want, got = (np.load(tmp_path / d / "photo_depth.npy") for d in ("f32", "i8"))
    assert got.shape == want.shape == (40, 56)
    assert np.mean(np.abs(got - want) / want) < 0.05  # the tolerance of the test above


@needs_onednn
def test_int8_quantizer_log_lines_only_with_verbose(tiny, tmp_path):
    import cv2
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.random.RandomState(4).randint(0, 256, size=(40, 56, 3), dtype=np.uint8))
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    argv = [sys.executable, "predict.py", "--run", tiny["run"], str(photo), "--no-progress", "--int8",
            "--calib-images", "2"]
    quiet = subprocess.run(argv + ["--out", str(tmp_path / "q")], cwd=repo, capture_output=True, text=True, timeout=300)
    loud = subprocess.run(argv + ["--out", str(tmp_path / "v"), "--verbose"], cwd=repo, capture_output=True,
                          text=True, timeout=300)
    assert quiet.returncode == loud.returncode == 0, quiet.stderr + loud.stderr
    assert quiet.stderr.strip() == ""
    assert loud.stderr.strip() != ""  # MXNet's own lines, e.g. its quantization passes
    np.testing.assert_array_equal(np.load(tmp_path / "q" / "photo_depth.npy"),
                                  np.load(tmp_path / "v" / "photo_depth.npy"))
