"""Tests of training/checkpoint.py and training/optim_states.py: a checkpoint holds no pickle (the optimisers'
states as arrays plus a JSON record, checked against the run's flags and shapes on resume; a pickled checkpoint of
older code refused, or converted once trusted), ``best`` is the history's best after a stop and a resume
(``repair_best``), a crash at any stage of a save (temporary directory, swap) resumes to the numbers of the run no
crash interrupted, and cache shards are pruned only when no checkpoint names them.  Crashes are made deterministic
by the checkpoint test hook: with $DEPTH_CRASH_AFTER=<stage>[#n] the training process ends with ``os._exit`` (as
under ``kill -9``) the n-th time a save reaches <stage> (training/checkpoint.py)."""
import json
import os
import pickle

import mxnet as mx
import numpy as np
import pytest

import train
from common.crash import CRASH_ENV
from rundir import layout
from rundir.resume import resume_options
from test_rundir import one_error_line, run_cli
from test_train import BASE
from test_trainer import options
from training.cache import PseudoLabelCache
from training.checkpoint import CacheSnapshots
from training.trainer import Trainer

CRASH_ARGS = ["--epochs", "2", "--semi-start", "1", "--t-semi", "0.5", "--val-frac", "0.25"]


def load_params(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(str(path)).items()}


def assert_same_files(a, b, name):
    pa, pb = load_params(os.path.join(a, name)), load_params(os.path.join(b, name))
    assert pa.keys() == pb.keys()
    for key in pa:
        np.testing.assert_array_equal(pa[key], pb[key], err_msg=key)


def metrics_without_seconds(run):
    lines = [json.loads(x) for x in open(os.path.join(run, "metrics.jsonl"))]
    for m in lines:
        m.pop("seconds")
    return lines


class WritesMarker:
    """Unpickling this creates a file: what a crafted .states file could do."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


# ---- no pickles: the optimisers' states (training/optim_states.py) ---------------------------------------------------

def test_checkpoint_holds_no_pickle(one_epoch):
    last = os.path.join(one_epoch, "checkpoints", "last")
    assert sorted(os.listdir(last)) == sorted(layout.FILES)
    for name in os.listdir(last):
        with open(os.path.join(last, name), "rb") as f:
            assert f.read(1) != b"\x80", name  # every pickle protocol >= 2 starts with PROTO 0x80
    state = json.load(open(os.path.join(last, "state.json")))
    depth = state["optimizers"]["depth"]
    assert depth["hyper"]["optimizer"] == "sgd" and depth["hyper"]["momentum"] == 0.9
    assert depth["num_update"] == 4  # one epoch: 4 labeled sources x 2 copies / batch 2 = 4 steps
    assert [d for d, _ in depth["update_counts"]] == [0]


def make_legacy(run, marker=None, trainers=None):
    """Turn checkpoints/last into the pickled layout: real states of ``trainers``, or a crafted pickle."""
    last = os.path.join(run, "checkpoints", "last")
    for name in ("depth", "conf"):
        os.remove(os.path.join(last, name + "_trainer.nd"))
        path = os.path.join(last, name + "_trainer.states")
        if trainers:
            getattr(trainers, name + "_trainer").save_states(path)
        else:
            with open(path, "wb") as f:
                pickle.dump(WritesMarker(str(marker)), f)
    state = json.load(open(os.path.join(last, "state.json")))
    state.pop("optimizers")
    json.dump(state, open(os.path.join(last, "state.json"), "w"))


def test_crafted_pickle_does_not_run_on_resume(run_copy, tmp_path):
    marker = tmp_path / "marker"
    with open(tmp_path / "probe.states", "wb") as f:  # the crafted file does what it says when unpickled
        pickle.dump(WritesMarker(str(marker)), f)
    pickle.load(open(tmp_path / "probe.states", "rb")).close()
    assert marker.exists()
    marker.unlink()
    make_legacy(str(run_copy), marker)
    before = sorted(os.listdir(run_copy / "checkpoints" / "last"))
    line = one_error_line(run_cli("--resume", run_copy))
    assert "pickles" in line and "--trust-pickled-states" in line and "last" in line
    assert not marker.exists()
    assert sorted(os.listdir(run_copy / "checkpoints" / "last")) == before


def test_a_stray_states_file_beside_a_checkpoint_is_never_read(run_copy, tiny_data, tmp_path):
    marker = tmp_path / "marker"
    for name in ("depth_trainer.states", "conf_trainer.states"):
        with open(run_copy / "checkpoints" / "last" / name, "wb") as f:
            pickle.dump(WritesMarker(str(marker)), f)
    t = Trainer(resume_options(train.parse_args(["--resume", str(run_copy)]), train.build_parser())[0])
    assert t.resume().epoch == 1
    assert not marker.exists()


def test_trusted_pickled_checkpoint_converts_and_resumes_exactly(tiny_data, tmp_path):
    args = ("--epochs", "2", "--semi-start", "1", "--t-semi", "0.5")
    straight = Trainer(options(tiny_data, tmp_path / "s", *args))
    straight.start()
    straight.train()
    first = Trainer(options(tiny_data, tmp_path / "r", *args))
    first.start()
    first.train(stop_at=1)
    make_legacy(str(tmp_path / "r"), trainers=first)  # what the code before this format wrote
    with pytest.raises(layout.RunError, match="pickles"):
        Trainer(options(tiny_data, tmp_path / "r", *args)).resume()
    resumed = Trainer(options(tiny_data, tmp_path / "r", *(args + ("--trust-pickled-states",))))
    resumed.resume()
    last = tmp_path / "r" / "checkpoints" / "last"
    assert sorted(os.listdir(last)) == sorted(layout.FILES)  # converted at once
    resumed.train()
    for name in ("depth_net.params", "conf_net.params"):
        assert_same_files(str(tmp_path / "s" / "checkpoints" / "last"), str(last), name)


@pytest.mark.parametrize("key, value, message", [
    ("momentum", 0.5, "differs from the run's flags in momentum"),
    ("num_update", "x", "malformed optimiser record"),
])
def test_optimiser_record_is_checked(run_copy, key, value, message):
    path = run_copy / "checkpoints" / "last" / "state.json"
    state = json.loads(path.read_text())
    record = state["optimizers"]["depth"]
    (record["hyper"] if key in record["hyper"] else record)[key] = value
    path.write_text(json.dumps(state))
    t = Trainer(resume_options(train.parse_args(["--resume", str(run_copy)]), train.build_parser())[0])
    with pytest.raises(layout.RunError, match=message):
        t.resume()


def test_optimiser_state_of_the_wrong_shape_is_refused(run_copy):
    last = run_copy / "checkpoints" / "last"
    arrays = mx.nd.load(str(last / "conf_trainer.nd"))
    key = sorted(arrays)[0]
    arrays[key] = mx.nd.zeros((3,))
    mx.nd.save(str(last / "conf_trainer.nd"), arrays)
    t = Trainer(resume_options(train.parse_args(["--resume", str(run_copy)]), train.build_parser())[0])
    with pytest.raises(layout.RunError, match="has shape"):
        t.resume()


# ---- best and metrics from the history, crashes at any save stage ----------------------------------------------------

def test_best_after_stop_and_resume_is_the_history_s_best(tiny_data, tmp_path):
    """Validation rel 0.5, 0.3 | stop | 0.4: best is epoch 2 (the old code's stale best_val picked 3)."""
    args = ("--epochs", "3", "--semi-start", "3", "--val-frac", "0.25")
    first = Trainer(options(tiny_data, tmp_path / "r", *args))
    scores = iter([0.5, 0.3])
    first.validate = lambda: next(scores)
    first.start()
    first.train(stop_at=2)
    resumed = Trainer(options(tiny_data, tmp_path / "r", *args))
    resumed.validate = lambda: 0.4
    resumed.resume()
    resumed.train()
    best = json.load(open(tmp_path / "r" / "checkpoints" / "best" / "state.json"))
    assert (best["epoch"], best["iteration"]) == (2, 0)
    assert [m["val_rel"] for m in metrics_without_seconds(str(tmp_path / "r"))] == [0.5, 0.3, 0.4]


@pytest.fixture(scope="module")
def straight_cli(tiny_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("straight") / "run"
    result = run_cli("--out", run, "--data", tiny_data, *(BASE + CRASH_ARGS))
    assert result.returncode == 0, result.stderr
    return str(run)


@pytest.mark.parametrize("stage", ["last:tmp", "best:tmp", "last#2", "last:swap#2"])
def test_crash_at_any_save_stage_then_resume_equals_uninterrupted(stage, straight_cli, tiny_data, tmp_path):
    run = tmp_path / "run"
    crashed = run_cli("--out", run, "--data", tiny_data, *(BASE + CRASH_ARGS), env={CRASH_ENV: stage})
    assert crashed.returncode == 137, crashed.stderr
    assert os.path.isfile(run / "config.json")
    if stage == "last:tmp":  # killed in the very first checkpoint write: still a run, resumable
        assert not os.path.isdir(run / "checkpoints" / "last")
        line = one_error_line(run_cli("--out", run, "--data", tiny_data, *(BASE + CRASH_ARGS)))
        assert "already holds a run" in line and "--resume" in line
    resumed = run_cli("--resume", run)
    assert resumed.returncode == 0, resumed.stderr
    assert metrics_without_seconds(str(run)) == metrics_without_seconds(straight_cli)
    for tag in ("last", "best"):
        ours = json.load(open(run / "checkpoints" / tag / "state.json"))
        theirs = json.load(open(os.path.join(straight_cli, "checkpoints", tag, "state.json")))
        assert (ours["epoch"], ours["iteration"]) == (theirs["epoch"], theirs["iteration"]), tag
        assert_same_files(str(run / "checkpoints" / tag), os.path.join(straight_cli, "checkpoints", tag),
                          "depth_net.params")
    assert sorted(os.listdir(run / "checkpoints")) == ["best", "last"]  # no .tmp-* or .old-* left
    assert not [n for n in os.listdir(run) if ".tmp" in n]


def test_resumed_epoch_seconds_include_the_time_before_the_crash(tiny_data, tmp_path):
    run = tmp_path / "run"
    args = BASE + ["--data", tiny_data, "--epochs", "1", "--save-every", "1"]
    assert run_cli("--out", run, *args, env={CRASH_ENV: "last#3"}).returncode == 137
    before = json.load(open(run / "checkpoints" / "last" / "state.json"))
    assert before["iteration"] == 3 and before["partial"]["seconds"] > 0
    assert run_cli("--resume", run).returncode == 0
    epoch = json.loads(open(run / "metrics.jsonl").readline())
    assert epoch["seconds"] >= round(before["partial"]["seconds"], 2)


# ---- cache shards beside the checkpoints (CacheSnapshots) ------------------------------------------------------------

def test_shards_are_pruned_only_when_no_checkpoint_names_them(tmp_path):
    snaps = CacheSnapshots(str(tmp_path))
    cache = PseudoLabelCache(2, 1, 1)
    entries = [snaps.write(cache, epoch, 0) for epoch in (1, 2, 3, 4)]
    snaps.prune({entries[0]["shards"], entries[2]["shards"]}, before=CacheSnapshots.point(3, 0))
    assert sorted(os.listdir(snaps.root)) == ["e00001-i00000000", "e00003-i00000000", "e00004-i00000000"]
    with pytest.raises(layout.RunError, match="resume with 1 worker"):
        CacheSnapshots(str(tmp_path), world=2).load(cache, entries[0], str(tmp_path / "checkpoints"))
