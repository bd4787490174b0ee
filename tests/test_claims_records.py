"""experiments/claims/records.py: finished claims runs carried without checkpoints, restored only onto the
same backbone and data."""
import hashlib
import json
import os

import h5py
import numpy as np
import pytest

from evaluation import EvaluationError
from experiments.claims.__main__ import main
from experiments.claims.records import carry, h5_sha256, restore

SETTINGS = "task=rotation n=160 size=128x96\n"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w" if isinstance(text, str) else "wb") as f:
        f.write(text)


def h5(path, rgb):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with h5py.File(path, "w") as f:
        f["rgb"] = rgb
        f["depth"] = np.arange(6, dtype=np.float32).reshape(2, 3)


def prepared(out, backbone=b"backbone-bytes", rgb=None):
    """OUT as run.sh leaves it before the arms: settings, data and backbone."""
    rgb = np.zeros((2, 4), np.uint8) if rgb is None else rgb
    write(os.path.join(out, "settings.txt"), SETTINGS)
    write(os.path.join(out, "pretrain", "backbone.params"), backbone)
    for part in ("data", "pretrain_data"):
        for split in ("train", "test"):
            h5(os.path.join(out, part, "prepared", split + ".h5"), rgb)
    return out


def a_run(out, name, evaluated=True):
    d = os.path.join(out, name)
    write(os.path.join(d, "config.json"), '{"seed": 0}')
    write(os.path.join(d, "metrics.jsonl"), '{"epoch": 1}\n')
    write(os.path.join(d, "train.log"), "epoch 1\n")
    write(os.path.join(d, ".lock"), "")
    write(os.path.join(d, "checkpoints", "last", "state.json"), '{"epoch": 40, "iteration": 0}')
    write(os.path.join(d, "checkpoints", "last", "depth_net.params"), b"weights")
    write(os.path.join(d, "checkpoints", "cache-shards", "s0", "0.nd"), b"cache")
    if evaluated:
        for f in ("eval.json", "table1.json", "pseudo_sweep.json"):
            write(os.path.join(d, f), '{"rel": 0.3}')


@pytest.fixture
def out(tmp_path):
    out = prepared(str(tmp_path / "out"))
    a_run(out, "seed0_lambda0")
    a_run(out, "seed0_prefix")
    a_run(out, "seed1_lambda0", evaluated=False)
    write(os.path.join(out, "invocations", "1700000000"), "420\n")
    write(os.path.join(out, "data", "synthetic.json"), '{"n": 160}')
    return out


def files_below(root):
    return sorted(os.path.relpath(os.path.join(r, f), root) for r, _, fs in os.walk(root) for f in fs)


def test_carry_takes_finished_arm_runs_without_checkpoints(out, tmp_path):
    dest = str(tmp_path / "carried")
    assert carry(out, dest) == ["seed0_lambda0"]
    assert files_below(os.path.join(dest, "seed0_lambda0")) == [
        "checkpoints/last/state.json", "config.json", "eval.json", "metrics.jsonl", "pseudo_sweep.json",
        "table1.json", "train.log"]
    assert not os.path.exists(os.path.join(dest, "seed0_prefix"))     # a fork needs its checkpoint
    assert not os.path.exists(os.path.join(dest, "seed1_lambda0"))    # not evaluated yet
    assert open(os.path.join(dest, "invocations", "1700000000")).read() == "420\n"
    assert open(os.path.join(dest, "settings.txt")).read() == SETTINGS
    prints = json.load(open(os.path.join(dest, "fingerprints.json")))
    assert prints["runs"] == ["seed0_lambda0"]
    assert prints["files"]["pretrain/backbone.params"] == hashlib.sha256(b"backbone-bytes").hexdigest()
    assert len(prints["files"]) == 5 and prints["omp_num_threads"] >= 1 and prints["cpu"]


def test_h5_fingerprint_is_of_the_arrays(tmp_path):
    a, b, c = (str(tmp_path / n) for n in ("a.h5", "b.h5", "c.h5"))
    h5(a, np.zeros((2, 4), np.uint8))
    h5(b, np.zeros((2, 4), np.uint8))
    changed = np.zeros((2, 4), np.uint8)
    changed[1, 3] = 1
    h5(c, changed)
    assert h5_sha256(a) == h5_sha256(b) != h5_sha256(c)


def test_restore_onto_the_same_backbone_and_data(out, tmp_path):
    dest = str(tmp_path / "carried")
    carry(out, dest)
    other = prepared(str(tmp_path / "other"))
    a_run(other, "seed3_lambda0")                                      # a run of its own stays as it is
    assert restore(dest, other) == ["seed0_lambda0"]
    run = os.path.join(other, "seed0_lambda0")
    assert open(os.path.join(run, "checkpoints", "last", "state.json")).read() == '{"epoch": 40, "iteration": 0}'
    state_time = os.path.getmtime(os.path.join(run, "checkpoints", "last", "state.json"))
    assert os.path.getmtime(os.path.join(run, "pseudo_sweep.json")) >= state_time   # run.sh: evaluated
    assert open(os.path.join(other, "invocations", "1700000000")).read() == "420\n"
    assert os.path.isfile(os.path.join(other, "seed3_lambda0", "checkpoints", "last", "depth_net.params"))
    assert restore(dest, other) == []                                  # twice: nothing overwritten


def started(root):
    return open(os.path.join(root, "started_at")).read()


def test_the_earliest_started_at_survives_carry_and_restore(out, tmp_path):
    """Each machine's run.sh writes its own started_at before a restore; the plan's first one must stay."""
    dest = str(tmp_path / "carried")
    write(os.path.join(out, "started_at"), "1796332030\n")
    carry(out, dest)
    assert started(dest) == "1796332030\n"
    other = prepared(str(tmp_path / "other"))
    write(os.path.join(other, "started_at"), "1796612182\n")           # today's prep, later
    restore(dest, other)
    assert started(other) == "1796332030\n"
    write(os.path.join(other, "started_at"), "1796612182\n")           # as if restore had not kept it
    carry(other, dest)
    assert started(dest) == "1796332030\n"                              # a later carry does not move it
    write(os.path.join(dest, "started_at"), "1796999999\n")
    carry(other, dest)
    assert started(dest) == "1796612182\n"                              # nor keeps a later one
    write(os.path.join(other, "started_at"), "yesterday\n")
    with pytest.raises(EvaluationError, match="not a time in seconds"):
        carry(other, dest)


@pytest.mark.parametrize("change", ["backbone", "data"])
def test_restore_onto_another_backbone_or_data_is_refused(out, tmp_path, change):
    dest = str(tmp_path / "carried")
    carry(out, dest)
    ones = np.ones((2, 4), np.uint8)
    other = prepared(str(tmp_path / "other"), **({"backbone": b"other"} if change == "backbone" else {"rgb": ones}))
    with pytest.raises(EvaluationError, match="backbone.params" if change == "backbone" else "data/prepared/test.h5"):
        restore(dest, other)
    assert not os.path.exists(os.path.join(other, "seed0_lambda0"))


def test_cli_carry_and_restore(out, tmp_path, capsys):
    dest = str(tmp_path / "carried")
    assert main(["carry", out, dest]) == 0
    assert "carried 1 finished run(s)" in capsys.readouterr().out
    assert main(["restore", dest, str(tmp_path / "nothing_there")]) == 2   # run.sh has not prepared it
    assert "not found: run.sh has not prepared the data" in capsys.readouterr().err
    other = prepared(str(tmp_path / "other"))
    write(os.path.join(other, "settings.txt"), "task=depth\n")
    assert main(["restore", dest, other]) == 2
    assert "other settings" in capsys.readouterr().err
