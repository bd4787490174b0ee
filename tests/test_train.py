"""Tests of train.py, the command line: one-line errors for a missing data dir and a labeled fraction outside
(0, 1], an unwritable --out, a resume with another --labeled-frac and an --out that already holds a run, and
--help with the paper's defaults.  ``BASE``, ``REPO`` and ``run_cli`` serve the other test modules (the training
loop's own tests: test_trainer.py)."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = ["--pretrained", "0", "--batch-size", "2", "--labeled-frac", "0.5", "--no-progress", "--lr", "1e-3"]


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "train.py"] + list(args), cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("argv,message", [
    (["--data", "/nonexistent/dir"], "data dir /nonexistent/dir does not exist"),
    (["--labeled-frac", "1.5"], "must be in (0, 1]"),
    (["--labeled-frac", "0"], "must be in (0, 1]"),
])
def test_cli_errors(argv, message, tmp_path):
    result = run_cli("--out", str(tmp_path / "r"), "--pretrained", "0", *argv, timeout=120)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_unwritable_out_and_incompatible_resume(tiny_data, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli("--data", tiny_data, "--out", str(blocker / "run"), "--pretrained", "0")
    assert result.returncode == 2 and "cannot write to --out" in result.stderr
    run = tmp_path / "r"
    assert run_cli(*BASE, "--data", tiny_data, "--out", str(run), "--epochs", "1").returncode == 0
    before = (run / "checkpoints" / "last" / "depth_net.params").read_bytes()
    result = run_cli("--resume", str(run), "--labeled-frac", "0.25")
    assert result.returncode == 2
    assert "cannot resume" in result.stderr and "--labeled-frac" in result.stderr
    result = run_cli(*BASE, "--data", tiny_data, "--out", str(run), "--epochs", "1")
    assert result.returncode == 2 and "already holds a run" in result.stderr
    assert (run / "checkpoints" / "last" / "depth_net.params").read_bytes() == before


def test_help_lists_paper_defaults():
    result = run_cli("--help", timeout=60)
    assert result.returncode == 0
    for text in ("--labeled-frac", "--lambda-semi", "§5.1", "default: 0.1", "--resume", "--gpus"):
        assert text in result.stdout
