"""Flags checked before anything is written (config.py, train.py): ranges from the paper's meaning, finite and
non-negative numbers, a GPU or a data dir that is not there, one error line in every command line, sizes beyond
the machine's memory, the console scripts and the Makefile's virtualenv rule (a resume under another thread count
or CPU: test_rundir.py)."""
import os
import shutil
import subprocess
import sys

import pytest

import train
from test_rundir import one_error_line, run_cli
from test_train import BASE, REPO


def usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize("flag, value, rule", [
    ("--t-semi", "1.5", "in [0, 1] (a confidence, eq. 5)"),
    ("--t-semi", "-0.1", "in [0, 1] (a confidence, eq. 5)"),
    ("--alpha", "0", "> 0 (eq. 1: exp(-alpha |E - D| / D))"),
    ("--alpha", "-5", "> 0 (eq. 1: exp(-alpha |E - D| / D))"),
    ("--lambda-semi", "-1", ">= 0 (eq. 6: a weight of L_semi)"),
    ("--momentum", "1", "in [0, 1)"),
    ("--wd", "-1e-4", ">= 0"),
    ("--poly-power", "-1", ">= 0"),
    ("--stop-at", "0", ">= 1 (epochs to train before stopping)"),
    ("--stop-at", "-2", ">= 1 (epochs to train before stopping)"),
])
def test_values_outside_the_papers_meaning_are_one_usage_line(flag, value, rule, capsys):
    line = usage_error(BASE + [flag + "=" + value], capsys)  # "--wd -1e-4" would read -1e-4 as a flag
    assert line == "error: %s must be %s, got %s (see --help)" % (flag, rule, float(value) if "." in value
                                                                   or flag != "--stop-at" else int(value))


@pytest.mark.parametrize("flag, value", [("--t-semi", "0"), ("--t-semi", "1"), ("--lambda-semi", "0"),
                                         ("--momentum", "0"), ("--wd", "0"), ("--stop-at", "100")])
def test_the_edges_of_each_range_are_accepted(flag, value):
    assert str(getattr(train.parse_args(BASE + [flag, value]), flag[2:].replace("-", "_"))) in (value, value + ".0")


@pytest.mark.parametrize("argv, message", [
    (["--lr", "nan"], "--lr must be a finite number"),
    (["--conf-lr", "inf"], "--conf-lr must be a finite number"),
    (["--lr", "-1"], "--lr and --conf-lr must be >= 0"),
    (["--log-every", "0"], "--log-every and --max-bad-steps must be >= 1"),
    (["--save-every", "-1"], "--save-every and --num-workers must be >= 0"),
])
def test_bad_flags_are_refused_before_anything(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        train.parse_args(["--out", str(tmp_path / "r")] + argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_stop_at_beyond_epochs(capsys):
    assert usage_error(BASE + ["--epochs", "3", "--stop-at", "4"], capsys) == \
        "error: --stop-at 4 is beyond --epochs 3 (see --help)"
    assert train.parse_args(BASE + ["--epochs", "3", "--stop-at", "3"]).stop_at == 3


@pytest.mark.parametrize("command", [
    ["train.py", "--no-such-flag"],
    ["train.py", "--epochs", "many"],
    ["-m", "data.prepare", "--no-such-flag"],
    ["-m", "data.synthetic", "--no-such-flag"],
    ["-m", "training.save_backbone", "--no-such-flag"],
    ["-m", "evaluation.report", "--no-such-flag"],
    ["bench/cache_memory.py", "--no-such-flag"],
    ["evaluate.py", "--no-such-flag"],
    ["predict.py", "--no-such-flag"],
])
def test_every_command_line_gives_one_error_line_and_exit_2(command):
    done = subprocess.run([sys.executable] + command, cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "usage:" not in done.stdout + done.stderr


def test_missing_gpu_is_one_line_and_leaves_no_run_dir(tiny_data, tmp_path):
    line = one_error_line(run_cli("--out", tmp_path / "r", "--data", tiny_data, "--gpus", "0", *BASE))
    assert "--gpus 0: this machine's MXNet sees no GPU" in line
    line = one_error_line(run_cli("--out", tmp_path / "r", "--data", tmp_path / "nowhere", *BASE))
    assert "does not exist" in line
    assert not (tmp_path / "r").exists()  # a failed start leaves no empty run directory


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_never_recreates_an_existing_virtualenv(tmp_path):
    for name in ("Makefile", "setup.py"):
        shutil.copy(os.path.join(REPO, name), tmp_path / name)

    def dry_run():
        return subprocess.run(["make", "-n", "venv"], cwd=tmp_path, capture_output=True, text=True).stdout

    assert "-m venv .venv" in dry_run()  # a fresh clone: create it
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").write_text("")
    os.utime(tmp_path / "setup.py", (1_000_000, 1_000_000))
    (tmp_path / ".venv" / ".installed").write_text("")
    assert "pip install" not in dry_run()  # installed, setup.py older: nothing to do
    os.utime(tmp_path / "setup.py")  # setup.py changed (a pull): install into it, never re-create it
    out = dry_run()
    assert "pip install" in out and "-m venv" not in out
    os.utime(tmp_path / ".venv" / "bin" / "python", (1_000, 1_000))  # an old interpreter: still kept
    assert "-m venv" not in dry_run()


def test_batch_size_beyond_the_labeled_rows_is_refused_before_anything_is_written(tiny_data, tmp_path, capsys):
    run = tmp_path / "r"
    # tiny_data: 8 training sources x 2 copies; --labeled-frac 0.5 keeps 4 sources = 8 rows
    assert train.main(BASE + ["--data", tiny_data, "--out", str(run), "--batch-size", "1000000"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --batch-size 1000000 is larger than the 8 labeled training "
                                               "rows of this split (--data %s, --labeled-frac 0.5)" % tiny_data)
    assert not run.exists()


def test_the_demo_preset_does_not_default_to_the_paper_runs_name():
    assert train.parse_args(["--preset", "demo"]).out == os.path.join("runs", "demo_frac0.25_lambda0.1_seed0")
    assert train.parse_args([]).out == os.path.join("runs", "frac0.25_lambda0.1_seed0")


def test_every_console_script_runs_its_command_line():
    import importlib
    import re
    text = open(os.path.join(REPO, "setup.py")).read()
    scripts = dict(re.findall(r'"(semidepth-[a-z]+)=([a-z_.]+:main)"', text))
    assert set(scripts) == {"semidepth-train", "semidepth-evaluate", "semidepth-predict", "semidepth-export",
                            "semidepth-prepare", "semidepth-report"}
    readme = open(os.path.join(REPO, "README.md")).read()
    for name, target in scripts.items():
        assert "`%s`" % name in readme, name  # documented
        module, function = target.split(":")
        with pytest.raises(SystemExit) as exit_info:
            getattr(importlib.import_module(module), function)(["--help"])
        assert exit_info.value.code == 0, name


def test_sizes_beyond_the_machines_memory_are_one_line(tmp_path):
    from common import memory
    gib = memory.physical_memory() / 2 ** 30
    done = subprocess.run([sys.executable, "-m", "data.prepare", "--mat", str(tmp_path / "x.mat"), "--splits",
                           str(tmp_path / "s.mat"), "--out", str(tmp_path / "out"), "--size", "64000x48000"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    # 64000 x 48000 pixels x 64 bytes = 183.1 GiB
    assert (done.returncode, done.stderr.strip()) == (2, (
        "error: preparing the data at 64000x48000 needs about 183 GB of memory (an estimate, common/memory.py); "
        "this machine has %.0f GB" % gib))
    assert not (tmp_path / "out").exists()


def test_check_fits_by_hand(monkeypatch):
    from common import memory
    monkeypatch.setattr(memory, "physical_memory", lambda: 10 * 2 ** 30)  # 10 GiB
    memory.check_fits("x", (1000, 1000), 2048, ValueError, images=5)  # 9.5 GiB: fits
    with pytest.raises(ValueError, match=r"^x at 1000x1000 needs about 11 GB of memory .* has 10 GB$"):
        memory.check_fits("x", (1000, 1000), 2048, ValueError, images=6)  # 11.4 GiB


