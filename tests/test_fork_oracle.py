"""train.py --fork-from (a lambda > 0 run continued from its lambda = 0 twin) and --pseudo-labels oracle."""
import json
import os
import shutil

import cv2
import h5py
import numpy as np
import pytest

import train
from data.dataset import LabeledDataset
from test_train import BASE, run_cli
from test_trainer import assert_same_params, new_trainer, options

SCHEDULE = ("--epochs", "3", "--semi-start", "2", "--t-semi", "0.5")


def cli(data, out, *extra):
    return run_cli(*BASE, "--data", data, "--out", str(out), *SCHEDULE, *extra)


def without_seconds(history):
    return [{k: v for k, v in m.items() if k != "seconds"} for m in history]


def test_fork_equals_training_from_scratch(tiny_data, tmp_path):
    """lambda = 0.1 from scratch == lambda = 0 stopped at semi_start - 1, forked, lambda = 0.1 to the end."""
    scratch = new_trainer(options(tiny_data, tmp_path / "scratch", *SCHEDULE))
    scratch.train()
    source = new_trainer(options(tiny_data, tmp_path / "l0", *SCHEDULE, "--lambda-semi", "0"))
    source.train(stop_at=1)
    fork = new_trainer(options(tiny_data, tmp_path / "fork", *SCHEDULE, "--fork-from", str(tmp_path / "l0")))
    state = fork.fork(str(tmp_path / "l0"))
    assert (state.epoch, fork.epoch) == (1, 1)
    history = fork.train()
    assert [m["phase"] for m in history] == ["supervised", "fill", "semi"]
    assert without_seconds(history) == without_seconds(scratch.history)
    assert_same_params(scratch.depth_net, fork.depth_net)
    assert_same_params(scratch.conf_net, fork.conf_net)
    for key in ("depth", "conf", "written"):
        np.testing.assert_array_equal(getattr(scratch.cache, key).asnumpy(), getattr(fork.cache, key).asnumpy())


def test_fork_cli_records_its_source_and_resumes(tiny_data, tmp_path):
    assert cli(tiny_data, tmp_path / "l0", "--lambda-semi", "0", "--stop-at", "1").returncode == 0
    proc = cli(tiny_data, tmp_path / "f", "--fork-from", str(tmp_path / "l0"), "--stop-at", "2")
    assert proc.returncode == 0, proc.stderr
    assert "forked from %s at epoch 1" % (tmp_path / "l0") in proc.stdout
    cfg = json.load(open(tmp_path / "f" / "config.json"))
    assert cfg["fork_from"] == str(tmp_path / "l0") and cfg["lambda_semi"] == 0.1
    lines = [json.loads(x) for x in open(tmp_path / "f" / "metrics.jsonl")]
    assert [m["phase"] for m in lines] == ["supervised", "fill"]  # epoch 0 came from the source
    proc = run_cli("--resume", str(tmp_path / "f"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "resuming %s at epoch 2" % (tmp_path / "f") in proc.stdout
    # the source is untouched by its fork and still continues
    assert json.load(open(tmp_path / "l0" / "checkpoints" / "last" / "state.json"))["epoch"] == 1


@pytest.mark.parametrize("source_flags,fork_flags,message", [
    (("--stop-at", "2"), (), "its last checkpoint is at epoch 2, iteration 0; a fork needs one at the end of an "
                             "epoch <= 1 (semi_start - 1; train it with --stop-at 1)"),
    (("--stop-at", "1"), ("--lr", "2e-3"), "it differs in --lr (stored: lr=0.001)"),
    (("--stop-at", "1"), ("--seed", "1"), "it differs in --seed (stored: seed=0)"),
])
def test_fork_refuses_a_source_that_is_not_this_runs_past(tiny_data, tmp_path, source_flags, fork_flags, message):
    assert cli(tiny_data, tmp_path / "l0", "--lambda-semi", "0", *source_flags).returncode == 0
    proc = cli(tiny_data, tmp_path / "f", "--fork-from", str(tmp_path / "l0"), *fork_flags)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot fork from") and message in lines[0], proc.stderr
    assert not (tmp_path / "f").exists()  # nothing written


def test_fork_with_resume_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit):
        train.parse_args(["--resume", str(tmp_path), "--fork-from", str(tmp_path)])


def test_oracle_caches_ground_truth_under_the_models_mask(tiny_data, tmp_path):
    """--pseudo-labels oracle: after the fill epoch the cache holds the unlabeled rows' training target
    (the prediction where the ground truth is invalid) and exactly the model arm's confidence."""
    data = tmp_path / "holes"
    shutil.copytree(tiny_data, data)
    with h5py.File(data / "train.h5", "r+") as f:  # an invalid block in every row
        depths = f["depths"][:]
        depths[:, :16, :16] = np.nan
        f["depths"][:] = depths
    model = new_trainer(options(str(data), tmp_path / "model2", *SCHEDULE, "--semi-start", "1"))
    oracle = new_trainer(options(str(data), tmp_path / "oracle", *SCHEDULE, "--semi-start", "1",
                                 "--pseudo-labels", "oracle"))
    model.train(stop_at=1)
    oracle.train(stop_at=1)
    np.testing.assert_array_equal(oracle.cache.conf.asnumpy(), model.cache.conf.asnumpy())  # the same mask
    np.testing.assert_array_equal(oracle.cache.written.asnumpy(), 0)
    rows = oracle.split["unlabeled_rows"]
    targets = LabeledDataset(str(data / "train.h5"), rows)  # what L_sup would use for these rows
    cached, predicted = oracle.cache.depth.asnumpy()[:, 0], model.cache.depth.asnumpy()[:, 0]
    for slot in range(len(rows)):
        gt = targets[slot][1][0]
        valid = gt > 0
        np.testing.assert_array_equal(cached[slot][valid], gt[valid])
        np.testing.assert_array_equal(cached[slot][~valid], predicted[slot][~valid])
    assert (~(targets[0][1][0] > 0)).sum() >= 16  # the hole reached the 1/4-resolution target
    assert not np.array_equal(cached, predicted)
    cfg = json.load(open(tmp_path / "oracle" / "config.json"))
    assert cfg["pseudo_labels"] == "oracle"
    assert json.load(open(tmp_path / "model2" / "config.json"))["pseudo_labels"] == "model"


def test_oracle_is_refused_for_images_without_ground_truth(tiny_data, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), np.full((48, 64, 3), 128, np.uint8))
    proc = cli(tiny_data, tmp_path / "r", "--pseudo-labels", "oracle", "--unlabeled", str(photos))
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: --pseudo-labels oracle needs the ground truth of every unlabeled image; "
                                   "the --unlabeled images have none"), proc.stderr
    assert not os.path.exists(tmp_path / "r" / "config.json")


def test_keep_share_keeps_that_share_of_every_semi_step_and_forks(tiny_data, tmp_path):
    """--keep-share 0.25 (not the paper's): a quarter of the unlabeled pixels in the semi epoch, whatever C is;
    recorded in config.json, and an arm that may continue a lambda = 0 run (--fork-from)."""
    assert cli(tiny_data, tmp_path / "l0", "--lambda-semi", "0", "--stop-at", "1").returncode == 0
    proc = cli(tiny_data, tmp_path / "share", "--fork-from", str(tmp_path / "l0"), "--keep-share", "0.25",
               "--t-semi", "1")  # T = 1 alone would keep (almost) nothing
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in open(tmp_path / "share" / "metrics.jsonl")]
    assert [m["phase"] for m in lines] == ["supervised", "fill", "semi"]  # epoch 0 from the source
    assert abs(lines[2]["mask_coverage_pct"] - 25.0) < 0.5, lines[2]
    assert json.load(open(tmp_path / "share" / "config.json"))["keep_share"] == 0.25


@pytest.mark.parametrize("value", ["0", "1.5", "nan"])
def test_keep_share_outside_0_1_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--keep-share", value])
    assert "--keep-share must be in (0, 1] (a share of pixels), got" in capsys.readouterr().err
