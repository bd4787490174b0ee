"""What a new user meets first: readable figures, reports naming what they scored, one image
finder, images checked before training, help examples and entry points that run as written."""
import json
import os
import re
import shlex
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

import evaluate
import predict
import train
from data.errors import DataError
from data.images import list_images
from data.unlabeled_dir import ExtraUnlabeledDataset, describe_change
from evaluation import figures, report
from rundir.files import curve_points

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = (64, 48)


def write_png(path, seed=0, size=(40, 30)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rgb = np.random.RandomState(seed).randint(0, 256, (size[1], size[0], 3)).astype(np.uint8)
    cv2.imwrite(str(path), rgb)


# ---- figures ---------------------------------------------------------------------------------
def test_robust_limits_are_the_2nd_and_98th_percentiles():
    values = np.linspace(0.33, 0.49, 101)            # step 0.0016: index 2 and index 98
    low, high = figures.robust_limits(np.r_[values, np.nan])
    assert low == pytest.approx(0.33 + 2 * 0.0016) and high == pytest.approx(0.33 + 98 * 0.0016)
    assert figures.robust_limits(np.full(5, 0.5)) == pytest.approx((0.4995, 0.5005))   # MIN_SPAN = 1e-3
    assert figures.robust_limits(np.array([np.nan])) == (0.0, 1.0)


def fig_rows(n=2, seed=0):
    rng = np.random.RandomState(seed)
    rows = []
    for i in range(n):
        gt = rng.uniform(1.5, 6.0, (24, 32))
        gt[0, :4] = 0
        gt[1, :4] = np.nan
        rows.append({"id": i, "image": rng.randint(0, 256, (24, 32, 3)).astype(np.uint8), "gt": gt,
                     "pred": gt + 0.3, "conf": rng.uniform(0.33, 0.49, (24, 32))})
    return rows


def test_qualitative_grid_fits_the_confidence_scale_to_the_data(tmp_path):
    rows = fig_rows()
    path = figures.qualitative_grid(rows, 0.4, str(tmp_path / "q.png"))
    image = Image.open(path)
    assert image.size == figures.grid_size_px(2, (24, 32))
    confs = np.concatenate([r["conf"].ravel() for r in rows])
    gts = np.concatenate([r["gt"].ravel() for r in rows])
    gts = gts[np.isfinite(gts) & (gts > 0)]
    text = {k: float(v) for k, v in image.text.items() if k != "Software"}
    assert text["confidence_vmin"] == pytest.approx(np.percentile(confs, 2), rel=1e-5)
    assert text["confidence_vmax"] == pytest.approx(np.percentile(confs, 98), rel=1e-5)
    assert (text["depth_vmin"], text["depth_vmax"]) == pytest.approx((gts.min(), gts.max()), rel=1e-5)
    assert text["t_semi"] == 0.4
    # the confidence column uses viridis from end to end (green 1..231), not the narrow
    # band that 0.33-0.49 gets on a fixed 0..1 scale (green 92..140)
    rgb = np.asarray(image.convert("RGB"))
    column = rgb[figures.TITLE_PX + 5:image.size[1] - figures.COLORBAR_PX - 5,
                 3 * figures.PANEL_PX + 5:4 * figures.PANEL_PX - 5]
    assert int(column[..., 1].max()) - int(column[..., 1].min()) > 180
    # the bottom strip (colorbars, legend) is not blank
    strip = rgb[image.size[1] - figures.COLORBAR_PX:]
    assert (strip < 250).any(axis=2)[:, figures.PANEL_PX:4 * figures.PANEL_PX].mean() > 0.02
    # the mask legend: a black patch (C < T) under the mask column
    assert (strip[:, 4 * figures.PANEL_PX:] < 10).all(axis=2).sum() >= 20


def test_curves_count_epochs_from_zero_like_metrics_jsonl():
    history = [{"epoch": 0, "sup": 1.0, "semi": None}, {"epoch": 1, "sup": 0.5, "semi": 0.2}]
    assert curve_points(history, "sup") == [(0, 1.0), (1, 0.5)]
    assert curve_points(history, "semi") == [(1, 0.2)]
    from training.trainer import summary_line
    line = summary_line({"epoch": 0, "phase": "supervised", "lr": 1e-3, "seconds": 1.0}, 8)
    assert line.startswith("epoch   0 of 0..7")


# ---- reports -----------------------------------------------------------------------------------
def fake_run(root, name, t_semi=0.4, checkpoint="last", lam=0.1):
    run = os.path.join(str(root), name)
    os.makedirs(run, exist_ok=True)
    with open(os.path.join(run, "config.json"), "w") as f:
        json.dump({"labeled_frac": 0.25, "lambda_semi": lam, "t_semi": t_semi, "epochs": 8, "dataset": "synthetic"}, f)
    ck = os.path.join(os.path.abspath(run), "checkpoints", checkpoint)
    with open(os.path.join(run, report.checkpoint_file("eval.json", checkpoint)), "w") as f:
        json.dump({"protocol": {"name": "eigen"}, "metrics": {"rel": 0.3}, "checkpoint": ck}, f)
    return run


def table_row(text, first):
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == first:
            return cells
    raise AssertionError(first)


def test_checkpoint_file_names():
    assert report.checkpoint_file("eval.json") == "eval.json"
    assert report.checkpoint_file("eval.json", "best") == "eval_best.json"
    assert report.checkpoint_file("qualitative.png", "runs/a/checkpoints/best/") == "qualitative_best.png"
    assert report.checkpoint_file("table1.json", "runs/a/checkpoints/last") == "table1.json"
    assert report.checkpoint_file("eval.json", "/x/my ckpt") == "eval_my_ckpt.json"


def test_report_names_run_checkpoint_threshold_protocol_and_skips_unevaluated(tmp_path, capsys):
    demo = fake_run(tmp_path, "demo", t_semi=0.4)
    base = fake_run(tmp_path, "base", t_semi=0.9, lam=0.0)
    os.makedirs(tmp_path / "not_evaluated")
    (tmp_path / "notes.txt").write_text("x")
    out = str(tmp_path / "report.md")
    argv = [demo, base, str(tmp_path / "not_evaluated"), str(tmp_path / "notes.txt"), "--out", out]
    assert report.main(argv) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["warning: %s has no eval.json (run evaluate.py --run %s); skipped"
                   % ((str(tmp_path / "not_evaluated"),) * 2),
                   "warning: %s is not a run directory; skipped" % (tmp_path / "notes.txt")]
    text = open(out).read()
    # run | data | labeled | λ | T_semi | epochs | checkpoint scored | protocol | other scorings
    assert table_row(text, "demo") == ["demo", "synthetic", "1/4", "0.1", "0.4", "8", "`checkpoints/last`", "`eigen`",
                                       "-"]
    assert table_row(text, "base")[4] == "0.9 (unused, λ = 0)"
    # the paper's T is the paper's: ours is not called 0.9
    assert "Ours: the runs above, with their own T_semi" in text


def test_report_of_best_reads_eval_best(tmp_path, capsys):
    run = fake_run(tmp_path, "r", checkpoint="best")
    out = str(tmp_path / "report.md")
    assert report.main([run, "--out", out]) == 2       # no eval.json: nothing to report
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no run to report") and "eval.json" in err[0]
    assert report.main([run, "--out", out, "--checkpoint", "best"]) == 0
    assert "`checkpoints/best`" in table_row(open(out).read(), "r")
    # a table1.json of last is not one of best: the line names the file and command best needs
    with open(os.path.join(run, "table1.json"), "w") as f:
        json.dump({"rows": [{"t_semi": 0.9, "rel": 0.2, "kept_fraction": 0.5}]}, f)
    assert report.main([run, "--out", out, "--checkpoint", "best"]) == 0
    assert "No run has a table1_best.json (run `evaluate.py --table1 --checkpoint best`)." in open(out).read()
    assert report.main([run, "--out", out]) == 2  # last has no eval.json


def test_units_warning_for_millimetres():
    assert report.units_warning(2.5, "p.npy") is None
    assert report.units_warning(np.nan, "p.npy") is None
    warning = report.units_warning(2500.0, "p.npy")
    assert warning.startswith("warning: p.npy: median predicted depth is 2500") and "metres" in warning
    assert "\n" not in warning


def test_evaluate_warns_about_millimetre_predictions(tiny_data, tmp_path, capsys):
    import h5py
    with h5py.File(os.path.join(tiny_data, "test.h5"), "r") as h5:
        gt = np.asarray(h5["depths"][:], np.float32)
    for scale, warned in ((1.0, False), (1000.0, True)):
        path = str(tmp_path / ("pred%g.npy" % scale))
        np.save(path, np.maximum(gt, 0.5) * scale)
        assert evaluate.main(["--predictions", path, "--data", tiny_data]) == 0
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
        assert len(err) == (1 if warned else 0)


# ---- one image finder ------------------------------------------------------------------------
@pytest.fixture
def nested(tmp_path):
    root = tmp_path / "photos"
    for k, rel in enumerate(["b.png", "a.JPG", "sub/c.jpeg", "sub/deeper/d.png", ".hidden.png",
                             ".ipynb_checkpoints/e.png", "sub/._f.jpg"]):
        write_png(root / rel, seed=k)
    (root / "notes.txt").write_text("x")
    return root


def test_one_finder_for_predict_and_unlabeled(nested):
    expected = ["a.JPG", "b.png", os.path.join("sub", "c.jpeg"), os.path.join("sub", "deeper", "d.png")]
    assert list_images(str(nested)) == expected
    paths, stems = predict.find_images([str(nested)])
    assert paths == [os.path.join(str(nested), p) for p in expected]
    assert stems == ["a", "b", os.path.join("sub", "c"), os.path.join("sub", "deeper", "d")]
    assert ExtraUnlabeledDataset(str(nested), SIZE, progress=False).files == expected


def test_every_unlabeled_image_is_checked_up_front(nested, capsys):
    (nested / "sub" / "deeper" / "z.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError) as err:
        ExtraUnlabeledDataset(str(nested), SIZE, progress=True)
    message = str(err.value)
    assert message.startswith(os.path.join(str(nested), "sub", "deeper", "z.png") + ": not a readable image")
    assert "\n" not in message
    assert "checking --unlabeled" in capsys.readouterr().err   # the progress bar


def test_train_stops_before_the_first_epoch_on_a_bad_unlabeled_image(tiny_data, nested, tmp_path, capsys):
    (nested / "zz.png").write_text("broken")
    out = tmp_path / "run"
    code = train.main(["--pretrained", "0", "--epochs", "1", "--batch-size", "2", "--no-progress",
                       "--data", tiny_data, "--out", str(out), "--unlabeled", str(nested)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: %s: not a readable image" % (nested / "zz.png"))
    assert not (out / "checkpoints").exists()


def test_resume_blames_the_unlabeled_folder():
    saved = {"path": "/p", "count": 3, "names_sha1": "a"}
    assert "the --unlabeled folder /p changed" in describe_change(saved, dict(saved, count=4))
    assert "started with --unlabeled /p, not /q" in describe_change(saved, dict(saved, path="/q"))
    assert "started without --unlabeled" in describe_change(None, saved)
    assert "give it again" in describe_change(saved, None)


# ---- help examples and entry points ----------------------------------------------------------
def doc_examples(doc, program):
    """Argument lists of the example lines ``python PROGRAM ...`` / ``... -- PROGRAM ...`` of a docstring."""
    found = []
    for line in doc.splitlines():
        if not line.strip().startswith(("python ", "scripts/")) or "[" in line or "..." in line:
            continue  # not an example, or one with elided parts
        words = shlex.split(line.split("#")[0])
        if program in words:
            found.append(words[words.index(program) + 1:])
    assert found, program
    return found


def test_train_help_examples_parse_and_name_the_prepared_data():
    with open(os.path.join(REPO, "scripts", "demo.sh")) as f:
        demo = f.read()
    demo_data = re.search(r"DATA=\$\{2:-(\S+)\}", demo).group(1) + "/prepared"
    assert '--out "$DATA/prepared"' in demo
    cwd = os.getcwd()
    os.chdir(REPO)  # @configs/... is relative to the repository, as in the README
    try:
        for argv in doc_examples(train.__doc__, "train.py"):
            args = train.parse_args(argv)
            # stored absolute (a run is usable from any directory); the examples run from the repository
            assert args.data == os.path.join(REPO, demo_data if args.preset == "demo" else "datasets/nyu"), argv
    finally:
        os.chdir(cwd)


def test_evaluate_and_predict_help_examples_parse():
    for argv in doc_examples(evaluate.__doc__, "evaluate.py"):
        evaluate.check_args(evaluate.build_parser().parse_args(argv))
    for argv in doc_examples(predict.__doc__, "predict.py"):
        predict.build_parser().parse_args(argv)


def entrypoint(*words, cwd):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    return subprocess.run(["bash", os.path.join(REPO, "docker", "entrypoint.sh")] + list(words), cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)


def test_entrypoint_help_and_every_tool_word_outside_the_image(tmp_path):
    with open(os.path.join(REPO, "docker", "entrypoint.sh")) as f:
        words = re.findall(r"^\s+([a-z]+)\)\s+exec ", f.read(), re.M)
    assert {"train", "evaluate", "predict", "export", "prepare", "synthetic", "report", "reproduce"} <= set(words)
    done = entrypoint("--help", cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    listed = [line.split()[0] for line in done.stdout.splitlines()[1:]]
    assert set(words) <= set(listed)
    for word in ("predict", "export"):   # run from elsewhere, they still find the repository
        done = entrypoint(word, "--help", cwd=str(tmp_path))
        assert done.returncode == 0 and "usage" in done.stdout, done.stderr


# ---- a tiny trained run: outputs per checkpoint, predict on a nested folder ----------------
@pytest.fixture(scope="module")
def run_dir(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("usability") / "tiny_run"
    assert train.main(["--pretrained", "0", "--epochs", "1", "--batch-size", "2", "--no-progress", "--val-frac", "0.25",
                       "--t-semi", "0.45", "--labeled-frac", "0.5", "--data", tiny_data, "--out", str(out)]) == 0
    assert (out / "checkpoints" / "best").is_dir()
    return str(out)


def test_evaluate_best_keeps_the_files_of_last(run_dir, capsys):
    outputs = ["eval.json", "confidence.json", "sparsification.png", "reliability.png", "qualitative.png"]
    flags = ["--run", run_dir, "--confidence", "--figures", "2", "--no-progress"]
    assert evaluate.main(flags) == 0
    last = {name: open(os.path.join(run_dir, name), "rb").read() for name in outputs}
    assert evaluate.main(flags + ["--checkpoint", "best"]) == 0
    for name in outputs:   # untouched by best, which has its own files
        assert open(os.path.join(run_dir, name), "rb").read() == last[name], name
        assert os.path.isfile(os.path.join(run_dir, report.checkpoint_file(name, "best"))), name
    scored = {tag: json.load(open(os.path.join(run_dir, report.checkpoint_file("eval.json", tag))))["checkpoint"]
              for tag in ("last", "best")}
    assert os.path.basename(scored["last"]) == "last" and os.path.basename(scored["best"]) == "best"
    # the grid's threshold is the run's own T (0.45), not the paper's 0.9
    assert float(Image.open(os.path.join(run_dir, "qualitative_best.png")).text["t_semi"]) == 0.45
    capsys.readouterr()
    out = os.path.join(run_dir, "report_best.md")
    assert report.main([run_dir, "--checkpoint", "best", "--out", out]) == 0
    row = table_row(open(out).read(), os.path.basename(run_dir))
    # epochs: trained of the run's; best: the validation images that chose it
    assert row[2:5] == ["1/2", "0.1", "0.45"] and row[5] == "1 of 1" and row[7] == "`eigen`"
    # 8 sources x 1/2 labeled = 4, a quarter of them (1 source, 2 copies) held out: 2 validation rows
    assert row[6] == "`checkpoints/best` (chosen on 2 validation images)"


def test_predict_walks_sub_folders_and_fits_the_confidence_png(run_dir, nested, tmp_path):
    out = tmp_path / "pred"
    assert predict.main(["--run", run_dir, str(nested), "--out", str(out), "--no-progress"]) == 0
    written = sorted(os.path.relpath(os.path.join(r, f), str(out)) for r, _, fs in os.walk(str(out)) for f in fs)
    stems = ["a", "b", os.path.join("sub", "c"), os.path.join("sub", "deeper", "d")]
    assert written == sorted(s + suffix for s in stems for suffix in ("_conf.npy", "_conf.png", "_depth.npy",
                                                                       "_depth.png"))
    conf = np.load(str(out / "sub" / "c_conf.npy"))
    png = Image.open(str(out / "sub" / "c_conf.png"))
    assert png.size == (conf.shape[1], conf.shape[0])
    low, high = np.percentile(conf, 2), np.percentile(conf, 98)
    if high - low < 1e-3:   # an untrained net is nearly constant: the scale keeps a 1e-3 span
        low, high = (low + high) / 2 - 5e-4, (low + high) / 2 + 5e-4
    assert float(png.text["vmin"]) == pytest.approx(low, rel=1e-5)
    assert float(png.text["vmax"]) == pytest.approx(high, rel=1e-5)
    depth = np.load(str(out / "a_depth.npy"))
    assert float(Image.open(str(out / "a_depth.png")).text["vmax"]) == pytest.approx(depth.max(), rel=1e-5)


def test_the_suite_keeps_no_checkpoints_of_passed_tests(request):
    """A training test writes 0.3-1.3 GB and the suite ~20 GB: a CI runner keeping the default
    3 sessions of everything ran out of disk.  Only a failed test's files may stay."""
    assert request.config.getini("tmp_path_retention_policy") == "failed"
    assert int(request.config.getini("tmp_path_retention_count")) <= 1
