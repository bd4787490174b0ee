"""Tests of training/trainer.py, the joint training loop on tiny synthetic data: the schedule (fill, then semi)
and the cache epochs, lambda = 0 as supervised training on the labeled images alone, the unlabeled images' depth
never read, an exact resume after an epoch and after a SIGKILL mid-epoch, two CPU contexts as one, --alpha in
L_conf, non-finite steps skipped and then a stop, and one step in all at the base learning rate (the poly
schedule of training/optimisers.py).  ``options``, ``new_trainer`` and ``assert_same_params`` serve other test
modules too."""
import json
import os
import shutil
import subprocess
import sys

import h5py
import mxnet as mx
import numpy as np
import pytest

import train
from common.crash import CRASH_ENV
from rundir import layout
from test_train import BASE, REPO, run_cli
from training import losses
from training.trainer import Trainer, TrainingStopped


def options(data, out, *extra):
    return train.parse_args(BASE + ["--data", data, "--out", str(out)] + list(extra))


def params_of(net):
    return {k: v.data().asnumpy() for k, v in net._collect_params_with_prefix().items()}


def assert_same_params(a, b):
    pa, pb = params_of(a), params_of(b)
    assert pa.keys() == pb.keys()
    for key in pa:
        np.testing.assert_array_equal(pa[key], pb[key], err_msg=key)


def new_trainer(opts, ctx=None):
    t = Trainer(opts, ctx=ctx)
    t.start()
    return t


def test_schedule_fill_then_semi_and_cache_epochs(tiny_data, tmp_path):
    opts = options(tiny_data, tmp_path / "r", "--epochs", "3", "--semi-start", "1", "--t-semi", "0", "--track-test")
    t = new_trainer(opts)
    calls = []
    t.depth_net.register_forward_hook(lambda block, inp, out: calls.append(inp[0].shape[0]))
    history = t.train(stop_at=1)
    assert history[0]["phase"] == "fill" and history[0]["semi"] is None
    # the fill epoch wrote every slot, in epoch 0
    np.testing.assert_array_equal(t.cache.written.asnumpy(), 0)
    # one depth forward per step covering labeled + unlabeled rows: no extra inference pass
    train_calls, test_calls = calls[:t.steps], calls[t.steps:]
    assert sum(train_calls) == len(t.labeled) + len(t.unlabeled)
    assert sum(test_calls) == len(t.test)  # --track-test: one pass over the test images
    history = t.train()
    assert [m["phase"] for m in history] == ["fill", "semi", "semi"]
    assert history[1]["mask_coverage_pct"] == pytest.approx(100.0)  # T = 0 keeps every pixel
    assert history[1]["semi"] > 0
    np.testing.assert_array_equal(t.cache.written.asnumpy(), 2)
    lines = [json.loads(x) for x in open(os.path.join(opts.out, "metrics.jsonl"))]
    assert [m["epoch"] for m in lines] == [0, 1, 2]
    for key in ("sup", "semi", "conf", "mask_coverage_pct", "lr", "seconds"):
        assert key in lines[-1]
    assert set(lines[-1]["test"]) >= {"rel", "log10", "rms", "d1", "d2", "d3"} and lines[-1]["test"]["rel"] > 0
    assert os.path.getsize(os.path.join(opts.out, "curves.png")) > 1000
    cfg = json.load(open(os.path.join(opts.out, "config.json")))
    assert cfg["versions"]["mxnet"] == mx.__version__ and cfg["labeled_frac"] == 0.5
    split = json.load(open(os.path.join(opts.out, "split.json")))
    assert not set(split["labeled"]) & set(split["unlabeled"])
    assert len(split["unlabeled_rows"]) == len(t.unlabeled) == 8


def test_lambda_zero_is_supervised_training_on_the_labeled_images(tiny_data, tmp_path):
    """lambda = 0 on all the data == training on a data set holding only the labeled images."""
    a = new_trainer(options(tiny_data, tmp_path / "a", "--epochs", "2", "--semi-start", "1", "--lambda-semi", "0"))
    a.train()
    labeled_only = tmp_path / "labeled_only"
    shutil.copytree(tiny_data, labeled_only)
    rows = a.split["labeled_rows"]
    with h5py.File(os.path.join(tiny_data, "train.h5"), "r") as src, \
            h5py.File(labeled_only / "train.h5", "w") as dst:
        for name in ("images", "depths", "source"):
            dst[name] = src[name][rows]
        dst.attrs.update(src.attrs)
    b = new_trainer(options(str(labeled_only), tmp_path / "b", "--epochs", "2", "--semi-start", "1",
                            "--lambda-semi", "0", "--labeled-frac", "1"))
    b.train()
    assert_same_params(a.depth_net, b.depth_net)
    assert_same_params(a.conf_net, b.conf_net)


def test_unlabeled_depth_is_never_read(tiny_data, tmp_path):
    """Replacing the unlabeled images' depth by NaN changes nothing (lambda = 0.1, semi on)."""
    args = ("--epochs", "2", "--semi-start", "1", "--t-semi", "0")
    a = new_trainer(options(tiny_data, tmp_path / "a", *args))
    a.train()
    blind = tmp_path / "blind"
    shutil.copytree(tiny_data, blind)
    with h5py.File(blind / "train.h5", "r+") as f:
        for row in a.split["unlabeled_rows"]:
            f["depths"][row] = np.nan
    b = new_trainer(options(str(blind), tmp_path / "b", *args))
    b.train()
    assert_same_params(a.depth_net, b.depth_net)
    # and the semi-supervised loss did change the result
    c = new_trainer(options(tiny_data, tmp_path / "c", "--epochs", "2", "--semi-start", "1", "--lambda-semi", "0"))
    c.train()
    assert not np.array_equal(params_of(a.depth_net)["head.weight"], params_of(c.depth_net)["head.weight"])


def test_resume_after_one_epoch_is_exact(tiny_data, tmp_path):
    args = ("--epochs", "2", "--semi-start", "1", "--t-semi", "0.5")
    straight = new_trainer(options(tiny_data, tmp_path / "s", *args))
    straight.train()
    first = new_trainer(options(tiny_data, tmp_path / "r", *args))
    first.train(stop_at=1)
    resumed = Trainer(options(tiny_data, tmp_path / "r", *args))
    resumed.resume()
    assert resumed.epoch == 1
    resumed.train()
    assert_same_params(straight.depth_net, resumed.depth_net)
    assert_same_params(straight.conf_net, resumed.conf_net)
    for key in ("depth", "conf", "written"):
        np.testing.assert_array_equal(getattr(straight.cache, key).asnumpy(), getattr(resumed.cache, key).asnumpy())


def test_two_cpu_contexts_give_the_same_losses_as_one(tiny_data, tmp_path):
    # frozen BatchNorm: batch statistics would differ between a batch and its halves
    args = ("--epochs", "2", "--semi-start", "1", "--t-semi", "0", "--freeze-bn", "1")
    one = new_trainer(options(tiny_data, tmp_path / "one", *args), ctx=[mx.cpu(0)])
    two = new_trainer(options(tiny_data, tmp_path / "two", *args), ctx=[mx.cpu(0), mx.cpu(1)])
    h1, h2 = one.train(), two.train()
    for m1, m2 in zip(h1, h2):
        for key in ("sup", "conf", "semi", "mask_coverage_pct"):
            if m1[key] is not None:
                assert m2[key] == pytest.approx(m1[key], rel=1e-4), key
    p1, p2 = params_of(one.depth_net), params_of(two.depth_net)
    np.testing.assert_allclose(p2["head.weight"], p1["head.weight"], rtol=1e-3, atol=1e-6)


def test_alpha_is_the_alpha_of_the_confidence_target(tiny_data, tmp_path):
    """--alpha reaches L_conf: the trainer's loss is eq. 2 against exp(-alpha |E - D| / D) computed here."""
    seen = []
    for alpha in ("1", "20"):
        t = new_trainer(options(tiny_data, tmp_path / ("alpha" + alpha), "--alpha", alpha))
        assert json.load(open(os.path.join(t.run_dir, "config.json")))["alpha"] == float(alpha)
        image, depth = next(iter(t.loader(t.labeled, [[0, 1]])))
        conf_loss = t.compute_losses((image, depth), None, 0, None)[0]["conf"].asscalar()
        pred = t.depth_net(image)
        conf = t.conf_net(image, pred).asnumpy()
        e, d = pred.asnumpy().astype(np.float64), depth.asnumpy().astype(np.float64)
        assert e.shape == d.shape == conf.shape
        valid = d > 0                                         # NaN compares False
        d = np.where(valid, d, 1.0)
        target = np.exp(-float(alpha) * np.abs(e - d) / d)
        assert conf_loss == pytest.approx(np.sum(np.abs(conf - target) * valid) / d.size, rel=1e-4)
        seen.append(conf_loss)
    assert abs(seen[0] - seen[1]) > 1e-3                       # the same nets, another alpha


def test_non_finite_steps_are_skipped_then_training_stops(tiny_data, tmp_path, monkeypatch):
    t = new_trainer(options(tiny_data, tmp_path / "r", "--epochs", "3", "--max-bad-steps", "3"))
    t.train(stop_at=1)
    saved = params_of(t.depth_net)
    monkeypatch.setattr(losses, "supervised_loss", lambda F, pred, gt, n: (pred * float("nan")).sum() / n)
    with pytest.raises(TrainingStopped, match="3 non-finite losses in a row"):
        t.train()
    for key, value in params_of(t.depth_net).items():  # no skipped step touched the weights
        np.testing.assert_array_equal(value, saved[key])
    state, _ = layout.load_state(layout.checkpoint_dir(str(tmp_path / "r"), "last"))
    assert state.epoch == 1


def test_sigkill_mid_epoch_then_resume_completes_exactly(tiny_data, tmp_path):
    """Killed right after the checkpoint of epoch 1, iteration 2 (of 4), by the test hook (common/crash.py)."""
    args = BASE + ["--data", tiny_data, "--epochs", "2", "--semi-start", "1", "--save-every", "1"]
    run = tmp_path / "killed"
    killed = subprocess.run([sys.executable, "train.py", "--out", str(run)] + args, cwd=REPO, capture_output=True,
                            text=True, timeout=300, env=dict(os.environ, **{CRASH_ENV: "step:1:2"}))
    assert killed.returncode == 137, killed.stderr  # os._exit: no cleanup, as under kill -9
    state = json.loads((run / "checkpoints" / "last" / "state.json").read_text())
    assert (state["epoch"], state["iteration"]) == (1, 2)
    assert len(open(run / "metrics.jsonl").readlines()) == 1      # only epoch 0 finished
    result = run_cli("--resume", str(run), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "resuming %s at epoch 1, iteration 2" % run in result.stdout
    straight = tmp_path / "straight"
    assert run_cli("--out", str(straight), *args[:-2]).returncode == 0
    a = mx.nd.load(str(run / "checkpoints" / "last" / "depth_net.params"))
    b = mx.nd.load(str(straight / "checkpoints" / "last" / "depth_net.params"))
    for key in b:
        np.testing.assert_array_equal(a[key].asnumpy(), b[key].asnumpy(), err_msg=key)
    assert not [p for p in os.listdir(run / "checkpoints") if p.startswith(".")]
    lines = [json.loads(x) for x in open(run / "metrics.jsonl")]
    assert [m["epoch"] for m in lines] == [0, 1]
    # epoch 1's means include the two iterations before the kill (carried in the checkpoint)
    want = [json.loads(x) for x in open(straight / "metrics.jsonl")][1]
    for key in ("sup", "conf", "semi"):
        assert lines[1][key] == pytest.approx(want[key], rel=1e-5), key


def test_one_step_in_all_trains_at_the_base_learning_rate(tiny_data, tmp_path):
    """--epochs 1 with a single step per epoch: the poly schedule's 1 - T / (N - 1) had N - 1 = 0."""
    t = Trainer(options(tiny_data, tmp_path / "r", "--epochs", "1", "--batch-size", "8", "--semi-start", "1"))
    t.start()
    assert t.steps == 1
    before = t.depth_net.head.weight.data().asnumpy()
    history = t.train()
    assert history[0]["lr"] == 1e-3
    assert not np.array_equal(t.depth_net.head.weight.data().asnumpy(), before)
