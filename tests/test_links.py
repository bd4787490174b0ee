"""A run or output directory from someone else never makes the project write outside it: a symbolic link where
the project writes a file of its own is refused in one line naming it, and its target is left as it was."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import train
from common.files import LinkError, write_json_atomic, write_text_atomic
from test_train import BASE, REPO
from training import checkpoint
from rundir import layout
from rundir.lock import RunLock
from rundir.state import TrainingPoint
from training.disk_cache import DiskPseudoLabelCache

SECRET = "export PATH=$HOME/bin:$PATH\n"


@pytest.fixture
def outside(tmp_path):
    """A file outside every run directory, as ~/.bashrc would be."""
    path = tmp_path / "outside" / "bashrc"
    path.parent.mkdir()
    path.write_text(SECRET)
    return path


def link_message(path):
    return ("%s is a symbolic link; the project writes only its own files there, never through a link "
            "(remove the link)" % path)


def test_lock_file_linked_outside(tmp_path, outside):
    run = tmp_path / "run"
    run.mkdir()
    os.symlink(outside, run / ".lock")
    with pytest.raises(layout.RunError) as err:
        RunLock(str(run))
    assert str(err.value) == link_message(run / ".lock")
    assert outside.read_text() == SECRET


def test_atomic_writes_never_write_through_a_link(tmp_path, outside):
    run = tmp_path / "run"
    run.mkdir()
    os.symlink(outside, run / "eval.json.tmp")
    with pytest.raises(LinkError) as err:
        write_json_atomic(str(run / "eval.json"), {"rel": 0.1})
    assert str(err.value) == link_message(run / "eval.json.tmp")
    os.remove(run / "eval.json.tmp")
    os.symlink(outside, run / "metrics.jsonl")  # the final name: the rename replaces the link itself
    write_text_atomic(str(run / "metrics.jsonl"), "{}\n")
    assert not os.path.islink(run / "metrics.jsonl") and (run / "metrics.jsonl").read_text() == "{}\n"
    assert outside.read_text() == SECRET


@pytest.mark.parametrize("linked", ["cache", "cache/rank0", "cache/rank0/depth.npy"])
def test_disk_cache_linked_outside(linked, tmp_path, outside):
    run = tmp_path / "run"
    (run / "cache" / "rank0").mkdir(parents=True)
    target = outside if linked.endswith(".npy") else outside.parent
    link = run / linked
    if link.is_dir():
        shutil.rmtree(link)
    os.symlink(target, link)
    with pytest.raises(LinkError) as err:
        DiskPseudoLabelCache(str(run / "cache" / "rank0"), 4, 3, 5)
    assert str(err.value) == link_message(link)
    assert outside.read_text() == SECRET and os.listdir(outside.parent) == ["bashrc"]


def test_checkpoints_linked_outside(tmp_path, outside):
    run = tmp_path / "run"
    run.mkdir()
    os.symlink(outside.parent, run / "checkpoints")
    with pytest.raises(LinkError) as err:  # refused before any network or optimiser is touched
        checkpoint.save(str(run), "last", None, None, None, None, {}, TrainingPoint())
    assert str(err.value) == link_message(run / "checkpoints")
    assert os.listdir(outside.parent) == ["bashrc"]


def test_the_run_directory_itself_may_be_a_link(tmp_path):
    real = tmp_path / "disk" / "run"
    real.mkdir(parents=True)
    os.symlink(real, tmp_path / "run")
    cache = DiskPseudoLabelCache(str(tmp_path / "run" / "cache" / "rank0"), 4, 3, 5)
    cache.close()
    assert np.load(real / "cache" / "rank0" / "depth.npy").shape == (4, 1, 3, 5)


def test_train_resume_refuses_a_linked_lock(tiny_data, tmp_path, outside):
    run = tmp_path / "run"
    assert train.main(BASE + ["--data", tiny_data, "--out", str(run), "--epochs", "2", "--stop-at", "1"]) == 0
    if os.path.lexists(run / ".lock"):  # a finished training may leave its lock file
        os.remove(run / ".lock")
    os.symlink(outside, run / ".lock")
    state = (run / "checkpoints" / "last" / "state.json").read_text()
    done = subprocess.run([sys.executable, "train.py", "--resume", str(run), "--no-progress"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert (done.returncode, done.stderr.strip()) == (2, "error: " + link_message(run / ".lock"))
    assert outside.read_text() == SECRET
    assert (run / "checkpoints" / "last" / "state.json").read_text() == state
    assert json.loads((run / "config.json").read_text())["epochs"] == 2
