"""Ctrl-C and SIGTERM during training (training/interrupt.py): a real signal to a real train.py stops it at a
step with `last` saved there, one line says how to continue, and the resumed run equals an uninterrupted one."""
import json
import os
import re
import signal
import subprocess
import sys

import pytest

from test_train import BASE, REPO
from training import interrupt

SCHEDULE = ["--epochs", "4", "--semi-start", "2", "--t-semi", "0.5"]


def train_cmd(data, out, *extra):
    return [sys.executable, "train.py", *BASE, "--data", data, "--out", str(out), *SCHEDULE, *extra]


def params_bytes(directory):
    return {name: open(os.path.join(directory, name), "rb").read() for name in sorted(os.listdir(directory))}


def history(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in f]


@pytest.fixture(scope="module")
def uninterrupted(tiny_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("whole")
    done = subprocess.run(train_cmd(tiny_data, root / "run", "--dump-params", str(root / "params")), cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return root


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_says_how_to_resume_and_the_resume_is_exact(sig, code, tiny_data, tmp_path, uninterrupted):
    run = tmp_path / "run"
    proc = subprocess.Popen(train_cmd(tiny_data, run), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))  # each line as printed
    for line in proc.stdout:  # the first epoch's summary line: training is under way, 3 epochs to go
        if line.startswith("epoch   0 of 0..3"):
            break
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "run finished" not in out
    lines = err.strip().splitlines()
    match = re.fullmatch(r"interrupted \(%s at epoch (\d+), step (\d+)\); continue with python train.py --resume %s"
                         % (sig.name, re.escape(str(run))), lines[-1])
    assert match, err
    epoch, step = int(match.group(1)), int(match.group(2))
    assert 1 <= epoch <= 3
    state = json.loads((run / "checkpoints" / "last" / "state.json").read_text())
    assert (state["epoch"], state["iteration"]) == (epoch, step)  # saved where the line says

    resumed = subprocess.run([sys.executable, "train.py", "--resume", str(run), "--no-progress",
                              "--dump-params", str(tmp_path / "params")], cwd=REPO, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming %s at epoch %d, iteration %d" % (run, epoch, step) in resumed.stdout
    assert params_bytes(tmp_path / "params") == params_bytes(uninterrupted / "params")
    assert history(run) == history(uninterrupted / "run")


def test_a_second_signal_exits_at_once(monkeypatch):
    exits = []
    monkeypatch.setattr(interrupt.os, "_exit", exits.append)
    signals = interrupt.StopSignals()
    signals.handle(signal.SIGTERM, None)
    assert (signals.signum, exits) == (signal.SIGTERM, [])  # the first one only asks
    signals.handle(signal.SIGINT, None)
    assert exits == [130]  # the second does not wait for the step
    assert interrupt.Interrupted(signal.SIGTERM, 3, 7).exit_code == 143
    assert interrupt.Interrupted(signal.SIGINT, 3, 7).exit_code == 130
    assert interrupt.StopSignals.SIGNALS == (signal.SIGINT, signal.SIGTERM)
    assert str(interrupt.Interrupted(signal.SIGINT, 3, 7)) == "SIGINT at epoch 3, step 7"


def test_handlers_are_restored_after_training():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with interrupt.StopSignals() as signals:
        assert signal.getsignal(signal.SIGINT) == signals.handle
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
