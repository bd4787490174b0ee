"""--unlabeled-per-step K: the "earlier" cache rule, training and an exact mid-epoch resume with a bounded
unlabeled batch, the flag's checks (its plan, K slots per step and passes over the set across epochs:
test_distributed.py)."""
import json

import mxnet as mx
import numpy as np
import pytest

import train
from common import crash
from training.cache import PseudoLabelCache
from rundir.layout import RunError
from rundir.resume import resume_options
from training.disk_cache import DiskPseudoLabelCache
from training.distributed import unlabeled_plan
from training.trainer import Trainer

from test_trainer import assert_same_params  # tests/ is on sys.path (no __init__.py)

BASE = ["--pretrained", "0", "--batch-size", "2", "--labeled-frac", "0.5", "--no-progress", "--lr", "1e-3",
        "--semi-start", "1", "--t-semi", "0"]


def options(data, out, *extra):
    return train.parse_args(BASE + ["--data", data, "--out", str(out)] + list(extra))


# ---- the cache rule ---------------------------------------------------------------------------
def caches(tmp_path, rule):
    return [PseudoLabelCache(5, 1, 2, rule=rule), DiskPseudoLabelCache(str(tmp_path / rule), 5, 1, 2, rule=rule),
            DiskPseudoLabelCache(str(tmp_path / (rule + "16")), 5, 1, 2, "float16", rule=rule)]


def fill(cache):
    """Slot 0 written in epoch 1, 1 in 3, 2 in 4, 3 never, 4 in 0; slot 1's right pixel below T = 0.9."""
    for slot, epoch in ((0, 1), (1, 3), (2, 4), (4, 0)):
        conf = mx.nd.array([[[[0.95, 0.5 if slot == 1 else 0.95]]]])
        cache.write(mx.nd.array([slot], dtype="int32"), mx.nd.full((1, 1, 1, 2), slot + 1.0), conf, epoch)
    cache.flush()


@pytest.mark.parametrize("kind", [0, 1, 2], ids=["memory", "disk", "disk-float16"])
def test_earlier_rule_uses_any_earlier_epoch_and_reports_ages(tmp_path, kind):
    cache = caches(tmp_path, "earlier")[kind]
    fill(cache)
    depth, mask, age = (a.asnumpy() for a in cache.read(mx.nd.array([0, 1, 2, 3, 4]), 4, 0.9, ages=True))
    np.testing.assert_array_equal(mask[:, 0, 0], [[1, 1], [1, 0], [0, 0], [0, 0], [1, 1]])  # 2: this epoch; 3: never
    np.testing.assert_array_equal(age.ravel()[[0, 1, 4]], [3, 1, 4])
    np.testing.assert_array_equal(depth[[0, 1, 4], 0, 0, 0], [1, 2, 5])
    _, mask = cache.read(mx.nd.array([2]), 5, 0.9)
    assert mask.asnumpy().sum() == 2  # written in 4, used in 5
    _, mask = cache.read(mx.nd.array([0, 1, 2, 4]), 0, 0.9)
    assert mask.asnumpy().sum() == 0  # nothing is older than epoch 0


@pytest.mark.parametrize("kind", [0, 1, 2], ids=["memory", "disk", "disk-float16"])
def test_previous_rule_still_masks_everything_but_epoch_minus_one(tmp_path, kind):
    cache = caches(tmp_path, "previous")[kind]
    fill(cache)
    _, mask, age = (a.asnumpy() for a in cache.read(mx.nd.array([0, 1, 2, 3, 4]), 4, 0.9, ages=True))
    np.testing.assert_array_equal(mask[:, 0, 0], [[0, 0], [1, 0], [0, 0], [0, 0], [0, 0]])  # only slot 1 (epoch 3)
    assert age.ravel()[1] == 1
    _, mask = cache.read(mx.nd.array([0, 1, 2, 3, 4]), 2, 0.9)
    np.testing.assert_array_equal(mask.asnumpy()[:, 0, 0, 0], [1, 0, 0, 0, 0])


def test_unknown_rule_is_refused(tmp_path):
    with pytest.raises(ValueError, match="cache rule must be one of previous, earlier, got 'older'"):
        PseudoLabelCache(2, 1, 1, rule="older")
    with pytest.raises(ValueError, match="cache rule must be one of"):
        DiskPseudoLabelCache(str(tmp_path / "d"), 2, 1, 1, rule="older")


# ---- training ---------------------------------------------------------------------------------
def test_k_equal_to_the_papers_batch_trains_exactly_as_the_default(tiny_data, tmp_path):
    """8 unlabeled images, 4 steps: K = 2 visits them as the paper's epoch does, and every entry
    read is one epoch old, so both rules keep the same pixels."""
    paper = Trainer(options(tiny_data, tmp_path / "paper", "--epochs", "3"))
    paper.start()
    bounded = Trainer(options(tiny_data, tmp_path / "k2", "--epochs", "3", "--unlabeled-per-step", "2"))
    bounded.start()
    assert (paper.unlabeled_batch, paper.cache.rule, bounded.cache.rule) == (2, "previous", "earlier")
    h1, h2 = paper.train(), bounded.train()
    assert_same_params(paper.depth_net, bounded.depth_net)
    assert [m["pseudo_label_age"] for m in h2] == [None, 1.0, 1.0]
    assert all("pseudo_label_age" not in m for m in h1)
    assert [m["semi"] for m in h1] == [m["semi"] for m in h2]


def expected_ages(num_slots, steps, k, epochs, semi_start):
    """Mean age of the entries L_semi uses per epoch (T = 0 keeps every pixel), simulated on the plan."""
    written, means = [-1] * num_slots, []
    for epoch in range(epochs):
        ages = []
        for batch in unlabeled_plan(num_slots, steps, 0, epoch, per_step=k)[0] if epoch >= semi_start - 1 else []:
            if epoch >= semi_start:
                ages += [epoch - written[s] for s in batch if 0 <= written[s] < epoch]
            for s in batch:
                written[s] = epoch
        means.append(float(np.mean(ages)) if ages else None)
    return means, written


class Stop(Exception):
    pass


def test_k_set_resumes_mid_epoch_exactly_and_records_the_age(tiny_data, tmp_path, monkeypatch):
    # K = 1 of 8 unlabeled images, 4 steps: the fill epoch writes 4 slots, epoch 1 reads the 4 others
    # (none usable), epoch 2 reads slots written in epoch 0 or 1
    args = ("--epochs", "3", "--unlabeled-per-step", "1", "--save-every", "1")
    straight = Trainer(options(tiny_data, tmp_path / "s", *args))
    straight.start()
    history = straight.train()
    ages, written = expected_ages(8, 4, 1, 3, 1)
    assert ages[1] is None and ages[2] is not None
    assert [m["pseudo_label_age"] for m in history] == [None, None, pytest.approx(ages[2], rel=1e-6)]
    assert history[1]["mask_coverage_pct"] == 0 and history[2]["mask_coverage_pct"] > 0
    assert [m["unlabeled_per_step"] for m in history] == [1, 1, 1]
    np.testing.assert_array_equal(straight.cache.to_numpy()["written"], written)

    def stop_at(point):
        if point == "step:2:2":
            raise Stop
    monkeypatch.setattr(crash, "crash_point", stop_at)
    opts = options(tiny_data, tmp_path / "r", *args, "--cache-on", "disk")
    first = Trainer(opts)
    first.start()
    with pytest.raises(Stop):
        first.train()
    resumed = Trainer(opts)
    assert resumed.resume().iteration == 2
    again = resumed.train()
    assert_same_params(straight.depth_net, resumed.depth_net)
    assert_same_params(straight.conf_net, resumed.conf_net)
    for key, value in straight.cache.to_numpy().items():
        np.testing.assert_array_equal(resumed.cache.to_numpy()[key], value, err_msg=key)
    assert again[2]["pseudo_label_age"] == pytest.approx(history[2]["pseudo_label_age"], rel=1e-6)
    cfg = json.load(open(tmp_path / "r" / "config.json"))
    assert (cfg["unlabeled_per_step"], cfg["unlabeled_batch"]) == (1, 1)


# ---- flags ------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["0", "-3"])
def test_k_below_one_is_refused(value, capsys):
    with pytest.raises(SystemExit) as stop:
        train.parse_args(["--unlabeled-per-step", value])
    assert stop.value.code == 2
    assert "error: --unlabeled-per-step must be >= 1, got %s" % value in capsys.readouterr().err


def test_resume_with_another_k_is_refused(tmp_path):
    stored = train.parse_args(["--out", str(tmp_path), "--unlabeled-per-step", "3"])
    json.dump(vars(stored), open(tmp_path / "config.json", "w"))
    merged, notes = resume_options(train.parse_args(["--resume", str(tmp_path)]), train.build_parser())
    assert merged.unlabeled_per_step == 3 and notes == []
    with pytest.raises(RunError, match=r"with a different --unlabeled-per-step \(stored: unlabeled_per_step=3\)"):
        resume_options(train.parse_args(["--resume", str(tmp_path), "--unlabeled-per-step", "2"]),
                       train.build_parser())
    # a run from before the flag used the paper's pairing: setting K now changes it
    old = vars(stored)
    old.pop("unlabeled_per_step")
    json.dump(old, open(tmp_path / "config.json", "w"))
    with pytest.raises(RunError, match=r"stored: unlabeled_per_step=None"):
        resume_options(train.parse_args(["--resume", str(tmp_path), "--unlabeled-per-step", "2"]),
                       train.build_parser())
    merged, _ = resume_options(train.parse_args(["--resume", str(tmp_path)]), train.build_parser())
    assert merged.unlabeled_per_step is None
