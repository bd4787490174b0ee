"""Two workers through MXNet's parameter server (scripts/launch_dist.sh) on 127.0.0.1.

They must end with identical parameters, equal to one process trained on their
combined batch, and each must checkpoint its own part of the pseudo-label cache.
"""
import json
import os
import signal
import socket
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

import train
from training.trainer import Trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 240
# frozen BatchNorm: statistics of a batch half would differ from the whole batch's.
# Epoch 0 supervised, epoch 1 fills the cache (forward only: the order of the unlabeled
# images, which differs between 1 and 2 workers, does not reach the parameters).
ARGS = ["--pretrained", "0", "--labeled-frac", "0.5", "--no-progress", "--lr", "1e-2", "--freeze-bn", "1",
        "--epochs", "2", "--semi-start", "2"]


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
