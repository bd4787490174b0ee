"""Paths in config.json: stored absolute (a run works from any directory), --data also relative to the run
(a run moved with its data), and a missing data directory answered with the flag that fixes it."""
import json
import os
import shutil
import subprocess
import sys

import pytest

import train
from rundir.resume import resume_options
from test_train import BASE, REPO


@pytest.fixture(scope="module")
def project(tiny_data, tmp_path_factory):
    """root/data (a copy of tiny_data) and root/runs/r trained with the relative --data data."""
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(tiny_data, root / "data")
    here = os.getcwd()
    os.chdir(root)
    try:
        assert train.main(BASE + ["--data", "data", "--out", os.path.join("runs", "r"), "--epochs", "1"]) == 0
    finally:
        os.chdir(here)
    return root


def evaluate_from(cwd, *args):
    return subprocess.run([sys.executable, os.path.join(REPO, "evaluate.py"), "--no-progress", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_config_stores_data_absolute_and_relative_to_the_run(project):
    cfg = json.loads((project / "runs" / "r" / "config.json").read_text())
    assert cfg["data"] == str(project / "data")
    assert cfg["data_relative_to_run"] == os.path.join("..", "..", "data")


def test_evaluate_from_another_directory(project, tmp_path):
    done = evaluate_from(tmp_path, "--run", str(project / "runs" / "r"))
    assert done.returncode == 0, done.stderr
    assert json.loads((project / "runs" / "r" / "eval.json").read_text())["data"] == str(project / "data")


def test_a_run_moved_with_its_data_still_finds_it(project, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.copytree(project / "data", moved / "data")
    shutil.copytree(project / "runs", moved / "runs")
    shutil.move(str(project / "data"), str(tmp_path / "hidden"))  # the stored absolute path is gone
    try:
        done = evaluate_from(tmp_path, "--run", str(moved / "runs" / "r"))
        assert done.returncode == 0, done.stderr
        assert json.loads((moved / "runs" / "r" / "eval.json").read_text())["data"] == str(moved / "data")
        shutil.rmtree(moved / "data")
        done = evaluate_from(tmp_path, "--run", str(moved / "runs" / "r"))
        assert (done.returncode, done.stderr.strip()) == (2, (
            "error: %s has no test.h5: it is the --data of %s/config.json; pass --data DIR (the prepared directory "
            "with test.h5) if the data has moved" % (project / "data", moved / "runs" / "r")))
    finally:
        shutil.move(str(tmp_path / "hidden"), str(project / "data"))


def test_resume_and_fork_accept_the_same_data_given_relative(project):
    here = os.getcwd()
    os.chdir(project)
    try:
        args = train.parse_args(["--resume", os.path.join("runs", "r"), "--data", "data"])
        merged, notes = resume_options(args, train.build_parser())
        assert merged.data == str(project / "data") and notes == []
    finally:
        os.chdir(here)
