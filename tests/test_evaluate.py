"""evaluate.py and evaluation.report end to end on a fabricated run and a tiny prepared data set.

The data: 10 rendered rooms at 96x128 (6 train, 4 test), network input 64x48,
so the networks predict 12x16 maps that are upsampled to the 96x128 ground truth.
The run: untrained networks saved with training.checkpoint.save, plus a
hand-written config.json and split.json.
"""
import json
import os
import struct
import subprocess
import sys

import cv2
import h5py
import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

import evaluate
from data import prepare, synthetic
from data.dataset import normalize_image, read_depths
from evaluation import report
from evaluation.metrics import PROTOCOLS, ErrorAccumulator, upsample
from symbols import get_confidence_net, get_depth_net
from rundir.state import TrainingPoint
from training import checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GT_SIZE = (96, 128)        # test ground truth (H, W)
INPUT_SIZE = (64, 48)      # network input (W, H): predictions are 12 x 16
N_TEST = 4


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("eval"))
    images, depths = synthetic.generate(10, seed=0, height=GT_SIZE[0], width=GT_SIZE[1])
    depths[6, :8, :8] = np.nan          # a test image with a hole: stored as 0 = invalid
    depths[4, :16, :16] = np.nan        # and an unlabeled training image (Table 1)
    mat, splits = synthetic.write_official(os.path.join(root, "raw"), images, depths,
                                           list(range(6)), list(range(6, 10)))
    data = os.path.join(root, "data")
    prepare.prepare(mat, splits, data, seed=0, size=INPUT_SIZE, copies=2, progress=False)

    mx.random.seed(0)
    depth_net, conf_net = get_depth_net(pretrained=False), get_confidence_net()
    x = mx.nd.zeros((1, 3, INPUT_SIZE[1], INPUT_SIZE[0]))
    conf_net(x, depth_net(x))   # finish deferred initialisation
    # a trained confidence net varies over the image; a new one says 0.5 everywhere
    conf_net.last.weight.set_data(mx.nd.random.normal(0, 0.05, shape=conf_net.last.weight.shape))
    base = os.path.join(root, "base")
    checkpoint.save(base, "last", depth_net, conf_net,
                    gluon.Trainer(depth_net.collect_params(), "sgd", {"learning_rate": 0.1}),
                    gluon.Trainer(conf_net.collect_params(), "adam"),
                    {"depth": mx.nd.zeros((1, 1, 1, 1))}, TrainingPoint())
    return {"root": root, "data": data, "base": base}


def make_run(tiny, name, **config):
    """A run directory sharing the fixture's checkpoint, with its own config.json and split.json."""
    run = os.path.join(tiny["root"], name)
    os.makedirs(run)
    # a link, not a copy: the parameters and optimiser states are ~300 MB
    os.symlink(os.path.join(tiny["base"], "checkpoints"), os.path.join(run, "checkpoints"))
    cfg = {"data": tiny["data"], "alpha": 5.0, "t_semi": 0.9, "labeled_frac": 0.5, "lambda_semi": 0.1,
           "seed": 0, "dataset": "synthetic"}
    cfg.update(config)
    with open(os.path.join(run, "config.json"), "w") as f:
        json.dump(cfg, f)
    # train.h5 rows: 2 copies per source, sources 0..5; sources 3, 4, 5 are unlabeled
    split = {"labeled": [0, 1, 2], "unlabeled": [3, 4, 5], "val": [],
             "labeled_rows": [0, 1, 2, 3, 4, 5], "unlabeled_rows": [6, 7, 8, 9, 10, 11], "val_rows": []}
    with open(os.path.join(run, "split.json"), "w") as f:
        json.dump(split, f)
    return run


def reference_maps(tiny, h5_name, rows, mirror=False):
    """Depth and confidence (12 x 16) of the given rows, one image at a time, without evaluate.py.

    ``mirror``: of the left-right mirrored images, mirrored back.
    """
    params = os.path.join(tiny["base"], "checkpoints", "last")
    depth_net, conf_net = get_depth_net(pretrained=False), get_confidence_net()
    depth_net.load_parameters(os.path.join(params, "depth_net.params"))
    conf_net.load_parameters(os.path.join(params, "conf_net.params"))
    with h5py.File(os.path.join(tiny["data"], h5_name), "r") as h5:
        images = [normalize_image(h5["images"][int(r)][:, ::-1] if mirror else h5["images"][int(r)]) for r in rows]
    depths, confs = [], []
    for image in images:
        x = mx.nd.array(image[None])
        d = depth_net(x)
        depths.append(d.asnumpy()[0, 0])
        confs.append(conf_net(x, d).asnumpy()[0, 0])
    depths, confs = np.stack(depths), np.stack(confs)
    return (depths[..., ::-1], confs[..., ::-1]) if mirror else (depths, confs)


# The Eigen crop of a 96 x 128 frame, by hand: (45, 471, 41, 601) of 480 x 640 times 0.2 = 9, 94.2, 8.2,
# 120.2, rounded.
EIGEN_ROWS, EIGEN_COLS = slice(9, 94), slice(8, 120)


def independent_scores(raw, filled, preds):
    """Both presets re-implemented without evaluation.metrics, for rel, rms, log10, d1 and n_pixels.

    eigen: raw ground truth, the crop above, ground truth in (1e-3, 10) m, prediction clipped
    to [1e-3, 10] m, mean over images.  full: filled ground truth, every finite pixel > 0,
    prediction floored at 1e-3 m, pooled over all pixels of the set.
    """
    def measures(g, p):
        return {"rel": np.mean(np.abs(p - g) / g), "rms": np.sqrt(np.mean((p - g) ** 2)),
                "log10": np.mean(np.abs(np.log10(p) - np.log10(g))),
                "d1": np.mean(np.maximum(p / g, g / p) < 1.25)}

    per_image, pooled_g, pooled_p, n_eigen = [], [], [], 0
    for r, g, p in zip(raw, filled, preds):
        r, g, p = (np.asarray(x, np.float64) for x in (r, g, p))
        with np.errstate(invalid="ignore"):
            cr, cp = r[EIGEN_ROWS, EIGEN_COLS], p[EIGEN_ROWS, EIGEN_COLS]
            keep = (cr > 1e-3) & (cr < 10)
            per_image.append(measures(cr[keep], np.clip(cp[keep], 1e-3, 10)))
            n_eigen += int(keep.sum())
            keep = np.isfinite(g) & (g > 0)
        pooled_g.append(g[keep])
        pooled_p.append(np.maximum(p[keep], 1e-3))
    eigen = {k: float(np.mean([m[k] for m in per_image])) for k in per_image[0]}
    full = measures(np.concatenate(pooled_g), np.concatenate(pooled_p))
    return {"eigen": dict(eigen, n_pixels=n_eigen, n_images=len(per_image)),
            "full": dict(full, n_pixels=sum(x.size for x in pooled_g), n_images=len(per_image))}


def load_test_gt(tiny, gt="filled"):
    with h5py.File(os.path.join(tiny["data"], "test.h5"), "r") as h5:
        return h5[{"filled": "depths", "raw": "raw_depths"}[gt]][:]


def run_main(argv, capsys):
    code = evaluate.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_help_exits_zero():
    for cmd in ([sys.executable, "evaluate.py", "--help"], [sys.executable, "-m", "evaluation.report", "--help"]):
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "usage" in done.stdout
    assert "--predictions" in subprocess.run([sys.executable, "evaluate.py", "--help"], cwd=REPO,
                                             capture_output=True, text=True, timeout=60).stdout


def test_run_end_to_end_matches_reference_and_predictions_path(tiny, capsys):
    run = make_run(tiny, "e2e", omp_num_threads="2")
    code, out, err = run_main(["--run", run, "--confidence", "--figures", "3", "--batch-size", "3",
                               "--no-progress"], capsys)
    assert code == 0, err
    with open(os.path.join(run, "eval.json")) as f:
        result = json.load(f)
    assert result["protocol"]["name"] == "eigen" and set(result["metrics_by_protocol"]) == {"eigen", "full"}
    assert result["metrics"] == result["metrics_by_protocol"]["eigen"]
    assert result["config"]["lambda_semi"] == 0.1 and result["checkpoint"].endswith("last")
    assert result["metrics"]["n_images"] == N_TEST and "rel" in out

    # The same numbers from maps computed one image at a time, upsampled and scored here.
    depth, _ = reference_maps(tiny, "test.h5", range(N_TEST))
    upsampled = [cv2.resize(d, GT_SIZE[::-1], interpolation=cv2.INTER_LINEAR) for d in depth]
    scores = independent_scores(load_test_gt(tiny, "raw"), load_test_gt(tiny, "filled"), upsampled)
    for name, expected in scores.items():
        for metric, value in expected.items():
            assert result["metrics_by_protocol"][name][metric] == pytest.approx(value, rel=1e-4, abs=1e-6), \
                (name, metric)

    # The quarter-resolution maps as an external .npy give the same numbers.
    npy = os.path.join(tiny["root"], "quarter.npy")
    np.save(npy, depth.astype(np.float32))
    code, _, err = run_main(["--predictions", npy, "--data", tiny["data"]], capsys)
    assert code == 0, err
    with open(os.path.join(tiny["root"], "quarter_eval.json")) as f:
        external = json.load(f)
    for metric in ("rel", "rms", "log10", "d1"):
        assert external["metrics"][metric] == pytest.approx(result["metrics"][metric], rel=1e-4, abs=1e-6)

    # Confidence outputs: every scored pixel lands in a reliability bin.
    with open(os.path.join(run, "confidence.json")) as f:
        conf = json.load(f)
    assert sum(conf["reliability"]["count"]) == result["metrics"]["n_pixels"]
    for name in ("rel", "rms"):
        assert np.isfinite(conf["sparsification"][name]["ause"]) and conf["sparsification"][name]["ause"] >= 0
        assert len(conf["sparsification"][name]["curves"]["confidence"]) == 100
    # 5 panels of 240 px; rows 240 * 96 / 128 = 180 px; 30 px of titles, 64 px of colorbars
    assert png_size(os.path.join(run, "qualitative.png")) == (1200, 3 * 180 + 30 + 64)
    assert png_size(os.path.join(run, "sparsification.png")) == (900, 360)
    assert png_size(os.path.join(run, "reliability.png")) == (450, 450)
    # every figure names what it shows: the run, the checkpoint, how far it trained, the protocol
    from PIL import Image
    state = json.load(open(os.path.join(run, "checkpoints", "last", "state.json")))
    cfg = json.load(open(os.path.join(run, "config.json")))
    assert "epochs" not in cfg  # this hand-made run: as far as it went
    caption = "%s, checkpoint last: epoch %d of %d, trained with OMP_NUM_THREADS=2; protocol eigen" % (
        os.path.normpath(run), state["epoch"], state["epoch"])
    for name in ("qualitative.png", "sparsification.png", "reliability.png"):
        assert Image.open(os.path.join(run, name)).text["source"] == caption, name


def test_flip_tta_on_a_run(tiny, capsys):
    run = make_run(tiny, "flip")
    table = os.path.join(tiny["root"], "flip_rows.csv")
    code, _, err = run_main(["--run", run, "--flip-tta", "--no-progress", "--per-image", table], capsys)
    assert code == 0, err
    assert not os.path.exists(os.path.join(run, "eval.json"))  # a flip-averaged score is not the plain one
    with open(os.path.join(run, "eval_flip.json")) as f:
        result = json.load(f)
    assert result["flip_tta"] is True
    plain, _ = reference_maps(tiny, "test.h5", range(N_TEST))
    mirrored, _ = reference_maps(tiny, "test.h5", range(N_TEST), mirror=True)
    gt = load_test_gt(tiny, "raw")
    acc = ErrorAccumulator(PROTOCOLS["eigen"])
    for i in range(N_TEST):
        acc.add(gt[i], upsample((plain[i] + mirrored[i]) / 2, GT_SIZE))
    for metric, value in acc.result().items():
        assert result["metrics"][metric] == pytest.approx(value, rel=1e-4, abs=1e-6), metric
    with open(table) as f:
        assert len(f.read().strip().splitlines()) == 1 + N_TEST


def test_table1_on_unlabeled_rows(tiny, capsys):
    rows = [6, 7, 8, 9, 10, 11]
    depth, conf = reference_maps(tiny, "train.h5", rows)
    t_semi = float(np.median(conf))     # a threshold that keeps about half of the pixels
    run = make_run(tiny, "table1", t_semi=t_semi, labeled_frac=0.25, lambda_semi=0.0)
    code, out, err = run_main(["--run", run, "--table1", "--no-progress"], capsys)
    assert code == 0, err
    with open(os.path.join(run, "table1.json")) as f:
        table = json.load(f)
    for row in table["rows"]:  # the printed table says what table1.json holds; no kept pixel is said in words
        shown = "n/a (no pixel reaches T)" if row["rel"] is None else "%.4f" % row["rel"]
        assert "Table 1  T=%.2f  rel %s  pixels kept %.3f" % (row["t_semi"], shown, row["kept_fraction"]) in out
    at_paper, at_t, at_0 = table["rows"]  # the paper's 0.9, the run's own T, every pixel
    assert at_paper["t_semi"] == 0.9 and at_paper["kept_fraction"] == pytest.approx(np.mean(conf >= 0.9),
                                                                                     abs=2 / conf.size)
    assert at_t["t_semi"] == pytest.approx(t_semi) and at_0["t_semi"] == 0
    assert at_t["kept_fraction"] == pytest.approx(np.mean(conf >= t_semi), abs=2 / conf.size)
    assert 0.3 < at_t["kept_fraction"] < 0.7 and at_0["kept_fraction"] == 1
    gt = read_depths(os.path.join(tiny["data"], "train.h5"), rows, quarter=True).astype(np.float64)
    valid = np.isfinite(gt) & (gt > 0)

    def rel(keep):  # mean |E - D| / D, prediction floored at 1e-3 m as under the full protocol
        return np.mean(np.abs(np.maximum(depth[keep], 1e-3) - gt[keep]) / gt[keep])
    assert at_0["rel"] == pytest.approx(rel(valid), rel=1e-4)
    confident = valid & (conf >= t_semi)
    assert at_t["rel"] == pytest.approx(rel(confident), rel=1e-3)
    assert table["n_images"] == 6 and table["labeled_frac"] == 0.25


def test_predictions_at_full_resolution(tiny, capsys):
    gt = load_test_gt(tiny)
    pred = np.where(gt > 0, gt * 1.1, 1.0).astype(np.float32)   # 10 % too far everywhere valid
    npy = os.path.join(tiny["root"], "scaled.npy")
    np.save(npy, pred)
    out = os.path.join(tiny["root"], "scaled_full.json")
    code, _, err = run_main(["--predictions", npy, "--data", tiny["data"], "--protocol", "full", "--out", out],
                            capsys)
    assert code == 0, err
    with open(out) as f:
        result = json.load(f)
    assert result["protocol"]["name"] == "full"
    assert result["metrics"]["rel"] == pytest.approx(0.1, rel=1e-5)
    assert result["metrics"]["log10"] == pytest.approx(np.log10(1.1), rel=1e-5)
    assert result["metrics"]["d1"] == 1.0
    assert result["metrics"]["n_pixels"] == int((gt > 0).sum())   # the NaN hole is not scored


@pytest.fixture(scope="module")
def bad(tiny):
    """argv and the output file that must stay untouched, per kind of bad input."""
    root = tiny["root"]
    no_ckpt = os.path.join(root, "no_ckpt")
    os.makedirs(no_ckpt)
    with open(os.path.join(no_ckpt, "config.json"), "w") as f:
        json.dump({"data": tiny["data"], "labeled_frac": 0.5, "lambda_semi": 0.1}, f)
    empty_data = os.path.join(root, "empty_data")
    os.makedirs(empty_data)
    no_split = make_run(tiny, "no_split")
    os.remove(os.path.join(no_split, "split.json"))
    other_data = make_run(tiny, "other_data")
    arrays = {
        "wrong_count": np.ones((N_TEST + 1, 12, 16), np.float32),
        "wrong_ndim": np.ones((N_TEST, 12), np.float32),
        "int_dtype": np.ones((N_TEST, 12, 16), np.int32),
        "has_nan": np.where(np.arange(N_TEST * 192).reshape(N_TEST, 12, 16) == 100, np.nan, 1.0).astype(np.float32),
    }
    for name, array in arrays.items():
        np.save(os.path.join(root, name + ".npy"), array)
    with open(os.path.join(root, "text.npy"), "w") as f:
        f.write("not an array")

    def npy(name):
        return os.path.join(root, name + ".npy")

    def beside(name):
        return os.path.join(root, name + "_eval.json")

    data = ["--data", tiny["data"]]
    not_h5 = "%s has no test.h5 (prepare it with python -m data.prepare --out %s)" % (empty_data, empty_data)
    shape = "has shape %s; expected (4, H, W), one depth map per test image"
    either = "give either --run RUN or --predictions PRED.npy --data DIR"
    # case: (argv, the output that must stay untouched, the error message expected in the one line)
    return {
        "run_without_checkpoint": (["--run", no_ckpt], os.path.join(no_ckpt, "eval.json"),
                                   "no complete checkpoint 'last' in %s" % no_ckpt),
        "missing_run_dir": (["--run", os.path.join(root, "nope")], None,
                            "run directory %s does not exist" % os.path.join(root, "nope")),
        "data_without_test_h5": (["--run", other_data, "--data", empty_data], os.path.join(other_data, "eval.json"),
                                 not_h5),
        "table1_without_split": (["--run", no_split, "--table1"], os.path.join(no_split, "eval.json"),
                                 "%s not found" % os.path.join(no_split, "split.json")),
        "predictions_wrong_count": (["--predictions", npy("wrong_count")] + data, beside("wrong_count"),
                                    npy("wrong_count") + " " + shape % "(5, 12, 16)"),
        "predictions_wrong_ndim": (["--predictions", npy("wrong_ndim")] + data, beside("wrong_ndim"),
                                   npy("wrong_ndim") + " " + shape % "(4, 12)"),
        "predictions_int_dtype": (["--predictions", npy("int_dtype")] + data, beside("int_dtype"),
                                  "%s has dtype int32; expected float depth in metres" % npy("int_dtype")),
        # the NaN is element 100 of the flattened array: in map 0 (192 pixels per map)
        "predictions_nan": (["--predictions", npy("has_nan")] + data, beside("has_nan"),
                            "%s: depth map 0 has NaN or infinite values" % npy("has_nan")),
        "predictions_not_npy": (["--predictions", npy("text")] + data, beside("text"),
                                "%s is not a readable .npy array" % npy("text")),
        "predictions_missing": (["--predictions", npy("absent")] + data, None, "%s not found" % npy("absent")),
        "predictions_without_data": (["--predictions", npy("wrong_count")], None, "--predictions needs --data DIR"),
        "predictions_with_empty_data": (["--predictions", npy("has_nan"), "--data", empty_data], None, not_h5),
        "neither_run_nor_predictions": ([], None, either),
        "both_run_and_predictions": (["--run", no_ckpt, "--predictions", npy("has_nan")] + data, None, either),
        "figures_with_predictions": (["--predictions", npy("has_nan"), "--figures", "2"] + data, None,
                                     "--table1, --confidence and --figures need a --run (networks), not --predictions"),
        "negative_batch_size": (["--run", no_ckpt, "--batch-size", "0"], None,
                                "--batch-size must be >= 1 and --figures >= 0"),
    }


BAD_CASES = ["run_without_checkpoint", "missing_run_dir", "data_without_test_h5", "table1_without_split",
             "predictions_wrong_count", "predictions_wrong_ndim", "predictions_int_dtype", "predictions_nan",
             "predictions_not_npy", "predictions_missing", "predictions_without_data",
             "predictions_with_empty_data", "neither_run_nor_predictions", "both_run_and_predictions",
             "figures_with_predictions", "negative_batch_size"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_error_line_and_writes_nothing(bad, case, capsys):
    argv, output, message = bad[case]
    sentinel = "earlier result\n"
    if output:
        with open(output, "w") as f:
            f.write(sentinel)
    assert evaluate.main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0], err
    if output:
        with open(output) as f:
            assert f.read() == sentinel


def test_argparse_error_exit_status_is_2(capsys):
    with pytest.raises(SystemExit) as stop:
        evaluate.main(["--protocol", "kitti"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: argument --protocol") and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- report

def _fake_run(root, name, frac, lam, metrics, table1=None, dataset="synthetic"):
    run = os.path.join(root, name)
    os.makedirs(run, exist_ok=True)
    cfg = {"labeled_frac": frac, "lambda_semi": lam, "t_semi": 0.9, "data": os.path.join(root, "nowhere")}
    if dataset:
        cfg["dataset"] = dataset
    with open(os.path.join(run, "config.json"), "w") as f:
        json.dump(cfg, f)
    with open(os.path.join(run, "eval.json"), "w") as f:
        json.dump({"protocol": {"name": "eigen"}, "metrics": metrics}, f)
    if table1:
        with open(os.path.join(run, "table1.json"), "w") as f:
            json.dump({"rows": table1}, f)
    return run


def _row(text, *cells):
    """The cells of the first markdown table row containing all ``cells``."""
    for line in text.splitlines():
        parts = [p.strip() for p in line.strip("|").split("|")]
        if all(c in parts for c in cells):
            return parts
    raise AssertionError("no row with %s in\n%s" % (cells, text))


def test_report_puts_paper_and_ours_side_by_side(tmp_path):
    metrics = {"rel": 0.25, "log10": 0.1, "rms": 0.9, "d1": 0.6, "d2": 0.9, "d3": 0.97}
    semi = _fake_run(str(tmp_path), "semi_half", 0.5, 0.1, metrics,
                     table1=[{"t_semi": 0.9, "rel": 0.2, "kept_fraction": 0.4},
                             {"t_semi": 0.0, "rel": 0.3, "kept_fraction": 1.0}])
    base = _fake_run(str(tmp_path), "sup_quarter", 0.25, 0.0, dict(metrics, rel=0.2))
    out = str(tmp_path / "report.md")
    assert report.main([base, semi, "--out", out]) == 0
    text = open(out).read()
    # Table 2: 1/2, lambda 0.1: paper rel 0.204, ours 0.250 -> +0.046; rms 0.704 vs 0.900 -> +0.196
    assert _row(text, "semi_half", "rel")[4:7] == ["0.204", "0.250", "+0.046"]
    assert _row(text, "semi_half", "rms")[4:7] == ["0.704", "0.900", "+0.196"]
    # 1/4, lambda 0: paper rel 0.238, ours 0.200 -> -0.038
    assert _row(text, "sup_quarter", "rel")[4:7] == ["0.238", "0.200", "-0.038"]
    assert _row(text, "sup_quarter", "d1")[4:7] == ["0.591", "0.600", "+0.009"]
    # Table 1: 1/2, T = 0.9: paper 0.14, ours 0.200 -> +0.060; T = 0: 0.19 vs 0.300 -> +0.110
    assert _row(text, "semi_half (0.1)", "0.9")[3:7] == ["0.14", "0.200", "+0.060", "0.400"]
    assert _row(text, "semi_half (0.1)", "0")[3:7] == ["0.19", "0.300", "+0.110", "1.000"]
    assert "not NYU Depth V2" in text and "for reference only" in text
    # rows follow the paper's order whatever the order of the arguments: 1/2 before 1/4
    assert text.index("| semi_half | rel |") < text.index("| sup_quarter | rel |")


def test_report_without_banner_for_nyu_and_with_note(tmp_path):
    run = _fake_run(str(tmp_path), "nyu_run", 0.5, 0.0, {"rel": 0.21}, dataset="nyu")
    text = report.build_report([run], note="Trained for 10 epochs only.")
    assert "not NYU Depth V2" not in text and "Trained for 10 epochs only." in text
    assert _row(text, "nyu_run", "rel")[4:7] == ["0.210", "0.210", "+0.000"]
    assert _row(text, "nyu_run", "log10")[4:7] == ["0.085", "-", "-"]   # missing metric stays visible


def test_report_bad_input(tmp_path, capsys):
    run = str(tmp_path / "no_eval")
    os.makedirs(run)
    with open(os.path.join(run, "config.json"), "w") as f:
        json.dump({"labeled_frac": 0.5, "lambda_semi": 0.1}, f)
    out = str(tmp_path / "report.md")
    assert report.main([run, "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "eval.json" in err[0]
    assert not os.path.exists(out)


def test_paper_results_are_the_printed_tables():
    paper = report.load_paper()
    t1 = {(r["labeled_frac"], r["t_semi"]): r["rel"] for r in paper["table1"]["rows"]}
    assert t1 == {(0.5, 0.9): 0.14, (0.5, 0.0): 0.19, (0.25, 0.9): 0.20, (0.25, 0.0): 0.24}
    t2 = {(r["labeled_frac"], r["lambda_semi"]): [r[m] for m in ("rel", "log10", "rms", "d1", "d2", "d3")]
          for r in paper["table2"]["rows"]}
    assert t2 == {(0.5, 0.0): [0.210, 0.085, 0.714, 0.670, 0.913, 0.975],
                  (0.5, 0.1): [0.204, 0.083, 0.704, 0.686, 0.917, 0.977],
                  (0.25, 0.0): [0.238, 0.100, 0.803, 0.591, 0.870, 0.965],
                  (0.25, 0.1): [0.235, 0.095, 0.802, 0.615, 0.883, 0.966]}



@pytest.mark.parametrize("args, name", [
    ((), "eval.json"), (("best",), "eval_best.json"), (("last", "full"), "eval_full.json"),
    (("last", "eigen"), "eval.json"), (("last", "eigen+gt=filled,align=median"), "eval_eigen-gt-filled-align-median.json"),
    (("last", None, True), "eval_flip.json"), (("last", None, False, True), "eval_int8.json"),
    (("best", "full", True, True), "eval_best_full_flip_int8.json"),
])
def test_one_file_name_per_scoring(args, name):
    assert report.scoring_file("eval.json", *args) == name


def test_two_protocols_never_overwrite_each_other_and_out_works_with_run(tiny, capsys):
    run = make_run(tiny, "protocols")
    assert run_main(["--run", run, "--no-progress"], capsys)[0] == 0
    plain = open(os.path.join(run, "eval.json"), "rb").read()
    code, out, err = run_main(["--run", run, "--no-progress", "--protocol", "full", "--align", "median"], capsys)
    assert code == 0, err
    assert open(os.path.join(run, "eval.json"), "rb").read() == plain
    other = os.path.join(run, "eval_full-align-median.json")
    assert other in out.splitlines()
    assert json.load(open(other))["protocol"]["name"] == "full+align=median"
    mine = os.path.join(tiny["root"], "mine.json")
    code, out, err = run_main(["--run", run, "--no-progress", "--out", mine], capsys)
    assert code == 0 and mine in out.splitlines(), err
    assert json.load(open(mine))["metrics"] == json.loads(plain)["metrics"]
    code, _, err = run_main(["--run", run, "--no-progress", "--out", os.path.join(tiny["root"], "x.txt")], capsys)
    assert code == 2 and "give a .json file name" in err


def test_a_run_that_stopped_early_says_so_in_eval_json_and_the_report(tiny_data, tmp_path, capsys):
    import train
    from test_train import BASE
    run = tmp_path / "r"
    assert train.main(BASE + ["--data", tiny_data, "--out", str(run), "--epochs", "3", "--stop-at", "1"]) == 0
    out = capsys.readouterr().out
    assert "stopped at epoch 1 of 3 (--stop-at 1): %s; continue with python train.py --resume %s" % (run, run) in out
    assert "run finished" not in out
    code, _, err = run_main(["--run", str(run), "--no-progress"], capsys)
    assert code == 0
    assert err.strip() == ("note: %s is at epoch 1 of 3: the run stopped early; continue it with python train.py "
                           "--resume %s" % (run / "checkpoints" / "last", run))
    result = json.load(open(run / "eval.json"))
    assert (result["trained_epochs"], result["trained_iteration"], result["epochs"]) == (1, 0, 3)
    md = str(tmp_path / "report.md")
    assert report.main([str(run), "--out", md]) == 0
    row = [c.strip() for c in next(line for line in open(md) if line.startswith("| r |")).strip("|\n").split("|")]
    assert row[5] == "1 of 3 (stopped early; `train.py --resume`)"


def test_report_shows_table2_under_full_too(tmp_path):
    run = _fake_run(str(tmp_path), "sup_quarter", 0.25, 0.0, {"rel": 0.2})
    path = os.path.join(run, "eval.json")
    ev = json.load(open(path))
    ev["metrics_by_protocol"] = {"eigen": {"rel": 0.2}, "full": {"rel": 0.31}}
    json.dump(ev, open(path, "w"))
    text = report.build_report([run])
    head, full = text.split("### The same under `full`")
    assert _row(head, "sup_quarter", "rel")[4:7] == ["0.238", "0.200", "-0.038"]
    assert _row(full, "sup_quarter", "rel")[4:7] == ["0.238", "0.310", "+0.072"]  # 0.310 - 0.238
    no_full = _fake_run(str(tmp_path / "old"), "older", 0.25, 0.0, {"rel": 0.2})  # eval.json without the presets
    assert "### The same under `full`" not in report.build_report([no_full])


def test_a_test_h5_that_is_not_hdf5_is_named(tiny, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "test.h5").write_text("not an HDF5 file")
    run = make_run(tiny, "text_h5")
    code, _, err = run_main(["--run", run, "--data", str(data), "--no-progress"], capsys)
    assert (code, err.strip()) == (2, "error: %s: not an HDF5 file; make it with python -m data.prepare"
                                   % (data / "test.h5"))
    assert not os.path.exists(os.path.join(run, "eval.json"))


def test_figure_caption_of_a_mid_epoch_and_a_best_checkpoint():
    from evaluation.runs import extent_caption
    assert extent_caption("runs/a/", "runs/a/checkpoints/last", {"trained_epochs": 3, "trained_iteration": 7,
                                                                 "epochs": 8}) == \
        "runs/a, checkpoint last: epoch 3 of 8, iteration 7"
    assert extent_caption("runs/a", "runs/a/checkpoints/best/", {"trained_epochs": 5, "trained_iteration": 0,
                                                                 "epochs": 8, "chosen_on_val_images": 2}) == \
        "runs/a, checkpoint best: epoch 5 of 8, chosen on 2 validation images"
