"""Tests of training/distributed.py: the plan of which samples each step and each worker take (a pure function
of seed and epoch; with --unlabeled-per-step K, K of a worker's own slots per step and whole passes over the
unlabeled set across epochs), and two workers through MXNet's parameter server (scripts/launch_dist.sh,
--kvstore dist_sync) on 127.0.0.1, which must end with identical parameters, equal to one process trained on
their combined batch, each checkpointing its own part of the pseudo-label cache."""
import json
import math
import os
import signal
import socket
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

import train
from training.distributed import owned_slots, unlabeled_plan
from training.trainer import Trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 240
# frozen BatchNorm: statistics of a batch half would differ from the whole batch's.
# Epoch 0 supervised, epoch 1 fills the cache (forward only: the order of the unlabeled
# images, which differs between 1 and 2 workers, does not reach the parameters).
ARGS = ["--pretrained", "0", "--labeled-frac", "0.5", "--no-progress", "--lr", "1e-2", "--freeze-bn", "1",
        "--epochs", "2", "--semi-start", "2"]


# ---- the plan -------------------------------------------------------------------------------------------------
def flat(batches):
    return [s for b in batches for s in b]


@pytest.mark.parametrize("m,steps,k", [(10, 3, 2), (7, 2, 3), (5, 4, 4), (30, 2, 4)])
def test_each_step_takes_k_slots_and_epochs_continue_through_whole_passes(m, steps, k):
    epochs = 3 * math.ceil(2 * m / (steps * k)) + 1
    sequence = []
    for epoch in range(epochs):
        batches, counts = unlabeled_plan(m, steps, 7, epoch, per_step=k)
        assert [len(b) for b in batches] == [k] * steps and counts == [k] * steps
        sequence += flat(batches)
    # epoch e holds positions [e steps k, (e + 1) steps k) of pass 0, pass 1, ...: each block of m a permutation
    passes = [sequence[i:i + m] for i in range(0, len(sequence) - m + 1, m)]
    assert len(passes) >= 2
    for p in passes:
        assert sorted(p) == list(range(m))
    assert passes[0] != passes[1]  # each pass shuffled anew
    # every slot is visited within ceil(m / (steps k)) epochs, and not within one epoch less
    need = math.ceil(m / (steps * k))
    assert set(sequence[:need * steps * k]) == set(range(m))
    assert len(set(sequence[:(need - 1) * steps * k])) < m


def test_plan_is_a_pure_function_of_seed_and_epoch():
    late = unlabeled_plan(50, 3, 1, 9, per_step=4)
    for epoch in range(9):
        unlabeled_plan(50, 3, 1, epoch, per_step=4)
    assert unlabeled_plan(50, 3, 1, 9, per_step=4) == late
    assert unlabeled_plan(50, 3, 2, 9, per_step=4) != late
    assert unlabeled_plan(50, 3, 1, 8, per_step=4) != late


def test_k_times_steps_equal_to_m_is_the_papers_pairing_and_the_default_is_unchanged():
    m, steps, seed = 12, 4, 3
    for epoch in range(3):
        order = np.random.RandomState([seed, epoch, 1]).permutation(m).tolist()  # the default's epoch order
        default = unlabeled_plan(m, steps, seed, epoch)
        assert default == ([order[i:i + 3] for i in range(0, m, 3)], [3] * 4)
        assert unlabeled_plan(m, steps, seed, epoch, per_step=3) == default
    # default with a remainder: ceil(10 / 4) = 3 per step, the last step short
    order = np.random.RandomState([seed, 0, 1]).permutation(10).tolist()
    assert unlabeled_plan(10, 4, seed, 0) == ([order[0:3], order[3:6], order[6:9], order[9:]], [3, 3, 3, 1])


def test_k_above_m_takes_every_slot_once_per_step():
    batches, counts = unlabeled_plan(3, 2, 0, 5, per_step=8)
    assert [sorted(b) for b in batches] == [[0, 1, 2]] * 2 and counts == [3, 3]


def test_workers_take_k_of_their_own_slots_each():
    m, steps, k, world = 9, 3, 2, 2  # rank 0 owns 5 slots, rank 1 owns 4
    seen = []
    for rank in range(world):
        mine = owned_slots(m, rank, world)
        sequence = []
        for epoch in range(4):
            batches, counts = unlabeled_plan(m, steps, 0, epoch, rank, world, per_step=k)
            assert [len(b) for b in batches] == [k] * steps and counts == [2 * k] * steps
            sequence += flat(batches)
        assert sorted(sequence[:len(mine)]) == list(range(len(mine)))  # local indices, one pass
        seen += mine[sequence].tolist()
    assert set(seen) == set(range(m))


# ---- two workers (dist_sync) ----------------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(argv, timeout=TIMEOUT):
    """Run scripts/launch_dist.sh in its own process group; kill the whole group in any case."""
    env = dict(os.environ, DMLC_PS_ROOT_PORT=str(free_port()), PYTHON=sys.executable)
    proc = subprocess.Popen(["bash", "scripts/launch_dist.sh"] + argv, cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    return proc.returncode, out, err


def load(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(str(path)).items()}


def test_two_workers_train_as_one_process_with_their_combined_batch(tiny_data, tmp_path):
    run, dump = tmp_path / "dist", tmp_path / "dump"
    code, out, err = launch(["2", "1", "--", "train.py"] + ARGS + [
        "--batch-size", "2", "--data", tiny_data, "--out", str(run), "--kvstore", "dist_sync",
        "--dump-params", str(dump)])
    assert code == 0, err[-3000:]
    assert out.count("run finished") == 2

    one = ["--batch-size", "4", "--data", tiny_data, "--out", str(tmp_path / "one")]
    single = Trainer(train.parse_args(ARGS + one))
    single.start()
    history = single.train()
    for net in ("depth_net", "conf_net"):
        rank0, rank1 = load(dump / ("rank0.%s.params" % net)), load(dump / ("rank1.%s.params" % net))
        for key in rank0:
            np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)
        reference = {k: v.data().asnumpy() for k, v in getattr(single, net)._collect_params_with_prefix().items()}
        for key in rank0:
            np.testing.assert_allclose(rank0[key], reference[key], rtol=1e-4, atol=1e-6, err_msg=key)
    # the logged losses are those of the combined batch
    logged = [json.loads(line) for line in open(run / "metrics.jsonl")]
    for mine, theirs in zip(logged, history):
        assert mine["sup"] == pytest.approx(theirs["sup"], rel=1e-4)

    # the checkpoint names one cache shard per worker: the unlabeled slots of its parity
    state = json.load(open(run / "checkpoints" / "last" / "state.json"))
    assert state["cache"]["world"] == 2
    shards = run / "checkpoints" / state["cache"]["shards"]
    assert sorted(os.listdir(shards)) == ["rank0", "rank1"]
    sizes = [len(np.load(shards / r / "written.npy")) for r in ("rank0", "rank1")]
    assert sum(sizes) == len(single.unlabeled) and abs(sizes[0] - sizes[1]) <= 1
    for r in ("rank0", "rank1"):
        np.testing.assert_array_equal(np.load(shards / r / "written.npy"), 1)  # filled in epoch 1


def test_a_failing_worker_stops_the_job(tmp_path):
    code, _, err = launch(["2", "1", "--", "train.py", "--kvstore", "dist_sync", "--pretrained", "0",
                           "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")], timeout=120)
    assert code == 2 and "error: data dir" in err and "stopping the job" in err
