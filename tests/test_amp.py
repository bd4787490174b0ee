"""--amp: flag, dtype resolution, the loss scaler's rule, and bfloat16 training on the CPU.

``amp.init`` patches MXNet's operators for the rest of a process and cannot be undone,
so every test that trains with AMP runs in a subprocess: nothing here changes the
operators of the tests that run after it in this pytest session.
"""
import json
import os
import subprocess
import sys
import textwrap

import mxnet as mx
import numpy as np
import pytest

import train
from training import precision
from training.precision import PrecisionError, StepScaler, cpu_bf16, cpu_flags, resolve

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = ["--pretrained", "0", "--batch-size", "2", "--labeled-frac", "0.5", "--no-progress", "--lr", "1e-3",
        "--epochs", "2", "--semi-start", "1", "--t-semi", "0.3"]
needs_bf16 = pytest.mark.skipif(not {"avx512f", "avx512bw"} <= cpu_flags(),
                                reason="bfloat16 training needs at least AVX-512 on the CPU (oneDNN)")


def run(*args, env=None, timeout=300):
    return subprocess.run([sys.executable] + list(args), cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


# ---- flag and resolution (no AMP in this process) ----------------------------------------------
def test_flag_default_values_and_bad_value(capsys):
    assert train.parse_args([]).amp == "off"
    for mode in ("off", "auto", "bf16", "fp16"):
        assert train.parse_args(["--amp", mode]).amp == mode
    with pytest.raises(SystemExit) as exit_:
        train.parse_args(["--amp", "float16"])
    assert exit_.value.code == 2
    assert "argument --amp: invalid choice: 'float16'" in capsys.readouterr().err
    assert "bfloat16 on CPUs" in train.build_parser().format_help()


CPU, GPU = [mx.cpu()], [mx.gpu(0), mx.gpu(1)]  # contexts are names only: no GPU is touched
NATIVE, PLAIN = {"avx512f", "avx512_bf16"}, {"avx2", "avx512f"}


@pytest.mark.parametrize("mode,ctx,flags,dtype", [
    ("off", CPU, NATIVE, None), ("off", GPU, PLAIN, None),
    ("auto", GPU, PLAIN, "float16"), ("fp16", GPU, PLAIN, "float16"),
    ("auto", CPU, NATIVE, "bfloat16"), ("bf16", CPU, NATIVE, "bfloat16"),
    ("auto", CPU, {"amx_bf16"}, "bfloat16"),
])
def test_resolve_without_note(mode, ctx, flags, dtype):
    assert resolve(mode, ctx, flags) == (dtype, None)


def test_resolve_without_bfloat16_instructions_says_so_in_one_line():
    assert resolve("auto", CPU, PLAIN) == (
        None, "--amp auto: this CPU has no bfloat16 instructions (avx512_bf16, amx_bf16); training in float32")
    dtype, note = resolve("bf16", CPU, PLAIN)
    assert dtype == "bfloat16" and note == ("--amp bf16: this CPU has no bfloat16 instructions (avx512_bf16, "
                                            "amx_bf16); bfloat16 runs emulated, slower than float32")


@pytest.mark.parametrize("mode,ctx,message", [
    ("fp16", CPU, "--amp fp16 needs GPUs (--gpus); on a CPU use --amp bf16"),
    ("bf16", GPU, "--amp bf16 is for CPUs (MXNet casts to bfloat16 only there); on GPUs use --amp fp16"),
])
def test_resolve_refuses(mode, ctx, message):
    with pytest.raises(PrecisionError) as err:
        resolve(mode, ctx, NATIVE)
    assert str(err.value) == message


def test_cpu_flags_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx512f amx_tile amx_bf16 avx512_bf16\n\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    flags = cpu_flags(str(info))
    assert {"fpu", "avx512f", "amx_bf16", "avx512_bf16"} <= flags and "avx2" not in flags
    assert cpu_bf16(flags) == ["amx_bf16", "avx512_bf16"]
    assert cpu_bf16({"avx512f", "avx512bw"}) == []
    assert cpu_flags(str(tmp_path / "missing")) == set()


def test_cli_refuses_fp16_on_the_cpu_before_any_work(tiny_data, tmp_path):
    result = run("train.py", *BASE, "--data", tiny_data, "--out", str(tmp_path / "r"), "--amp", "fp16")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --amp fp16 needs GPUs (--gpus); on a CPU use --amp bf16"
    assert not (tmp_path / "r").exists()


def test_step_scaler_follows_mxnets_rule():
    """Start 2^16; an overflow halves the scale from the step after next (MXNet applies the new
    scale one step late); N clean steps in a row double it, capped at 2^24."""
    s = StepScaler()
    s._scale_seq_len = 3
    seen = []
    for overflow in (False, True, False, False, False, False, False, False):
        assert s.record(overflow) is overflow
        seen.append(s.loss_scale)
    # hand-computed: scale used at each step = the 'next' decided one step before
    assert seen == [2.0 ** 16, 2.0 ** 16, 2.0 ** 15, 2.0 ** 15, 2.0 ** 15, 2.0 ** 16, 2.0 ** 16, 2.0 ** 16]
    assert s.has_overflow(params=None) is False      # gluon.Trainer.step's question: train_step has checked
    s._loss_scale = s._next_loss_scale = 2.0 ** 24
    for _ in range(3):
        s.record(False)
    assert s._next_loss_scale == 2.0 ** 24


# ---- bfloat16 training on the CPU, in subprocesses -------------------------------------------------
PROBE = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, ".")
    import mxnet as mx, numpy as np
    import train
    from training import losses
    from training.precision import graph_casts
    from training.trainer import Trainer, TrainingStopped
    t = Trainer(train.parse_args(sys.argv[1:]))
    t.start()
    t.train(stop_at=1)
    # the same epoch at loss scale 1: scaling by a power of 2 is exact, so the unscaled updates are
    # bit-identical (a missing or doubled unscale would make them 2^16 times too large or small)
    one = Trainer(train.parse_args(sys.argv[1:] + ["--out", sys.argv[sys.argv.index("--out") + 1] + "_one"]))
    one.start()
    for trainer in (one.depth_trainer, one.conf_trainer):
        trainer._amp_loss_scaler._loss_scale = trainer._amp_loss_scaler._next_loss_scale = 1.0
    one.train(stop_at=1)
    same_at_scale_1 = all(np.array_equal(a.data().asnumpy(), b.data().asnumpy()) for n, m in
                          ((t.depth_net, one.depth_net), (t.conf_net, one.conf_net))
                          for a, b in zip(n.collect_params().values(), m.collect_params().values()))
    out = {"casts": [graph_casts(t.depth_net), graph_casts(t.conf_net)],
           "params": sorted({np.dtype(p.data().dtype).name for n in (t.depth_net, t.conf_net)
                             for p in n.collect_params().values()}),
           "grads": sorted({np.dtype(p.grad().dtype).name for n in (t.depth_net, t.conf_net)
                            for p in n.collect_params().values() if p.grad_req != "null"}),
           "cache": [np.dtype(t.cache.depth.dtype).name, np.dtype(t.cache.conf.dtype).name],
           "scales": t.precision.loss_scales(), "same_at_scale_1": same_at_scale_1}
    # a finite loss whose scaled gradients overflow float32: 1e34 x 2^16 > 3.4e38
    batch = next(iter(t.loader(t.labeled, [[0, 1]])))
    before = {k: v.data().asnumpy().copy() for k, v in t.depth_net.collect_params().items()}
    sup = losses.supervised_loss
    losses.supervised_loss = lambda F, pred, gt, n: sup(F, pred, gt, n) * 1e34
    total, finite = t.train_step(batch, None, 1, None)
    out["overflow"] = {"finite": finite, "loss_finite": bool(np.isfinite(total["sup"].asscalar())),
                       "unchanged": all(np.array_equal(v.data().asnumpy(), before[k])
                                        for k, v in t.depth_net.collect_params().items())}
    losses.supervised_loss = sup
    for _ in range(2):  # the halved scale applies from the step after next (MXNet's rule)
        out["overflow"]["next"] = t.train_step(batch, None, 1, None)[1]
    out["scales_after"] = t.precision.loss_scales()
    # a whole epoch of overflows with --max-bad-steps 1: loss scaling at work, the run goes on
    losses.supervised_loss = lambda F, pred, gt, n: sup(F, pred, gt, n) * 1e34
    skipped = t.skipped
    t.run_epoch(1)
    out["epoch"] = {"skipped": t.skipped - skipped, "bad_steps": t.bad_steps, "steps": t.steps}
    losses.supervised_loss = lambda F, pred, gt, n: sup(F, pred, gt, n) * float("nan")  # a real failure
    try:
        t.run_epoch(2)
    except TrainingStopped as err:
        out["nan"] = str(err).split(";")[0]
    print("RESULT" + json.dumps(out))
""")


@needs_bf16
def test_bf16_training_casts_inside_keeps_float32_outside_and_skips_an_overflow(tiny_data, tmp_path):
    result = run("-c", PROBE, *BASE, "--data", tiny_data, "--out", str(tmp_path / "r"), "--amp", "bf16",
                 "--max-bad-steps", "1")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.split("RESULT")[1])
    assert min(out["casts"]) > 0                     # AMP really changed both graphs
    assert out["params"] == out["grads"] == ["float32"]   # master weights and their gradients
    assert out["cache"] == ["float32", "float32"]
    assert out["scales"] == [2.0 ** 16, 2.0 ** 16]
    assert out["same_at_scale_1"]
    assert out["overflow"] == {"finite": False, "loss_finite": True, "unchanged": True, "next": True}
    assert out["scales_after"] == [2.0 ** 15, 2.0 ** 15]
    assert out["epoch"]["bad_steps"] == 0 and 1 <= out["epoch"]["skipped"] <= out["epoch"]["steps"] == 4
    assert out["nan"] == "1 non-finite losses in a row at epoch 2, iteration 0"


@needs_bf16
def test_bf16_resume_is_exact_and_config_records_amp(tiny_data, tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    common = BASE + ["--data", tiny_data, "--amp", "bf16"]
    assert run("train.py", *common, "--out", str(straight)).returncode == 0
    assert run("train.py", *common, "--out", str(stopped), "--stop-at", "1").returncode == 0
    cfg = json.loads((stopped / "config.json").read_text())
    assert (cfg["amp"], cfg["amp_dtype"]) == ("bf16", "bfloat16")

    refused = run("train.py", "--resume", str(stopped), "--amp", "off")
    assert refused.returncode == 2
    assert "cannot resume %s with a different --amp (stored: amp=bf16)" % stopped in refused.stderr
    # as if the run had started with --amp auto on a GPU: the dtype it trains in now is reported
    (stopped / "config.json").write_text(json.dumps(dict(cfg, amp_dtype="float16")))
    resumed = run("train.py", "--resume", str(stopped), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "resume: --amp bf16 now trains in bfloat16 (stored: float16)" in resumed.stdout
    assert "resuming %s at epoch 1, iteration 0" % stopped in resumed.stdout

    a, b = (checkpoint_of(run_dir) for run_dir in (stopped, straight))
    for name in ("depth_net.params", "conf_net.params"):
        assert a[name].keys() == b[name].keys()
        for key in a[name]:
            assert a[name][key].dtype == np.float32, key   # checkpoints hold the float32 master copies
            np.testing.assert_array_equal(a[name][key].asnumpy(), b[name][key].asnumpy(), err_msg=key)
    # the loss scalers came back too: 'unskipped' counts every step of both epochs (2 x 8 labeled rows /
    # batch 2), not only the 4 after the resume
    steps = 8
    assert a["state"]["amp"] == b["state"]["amp"] == {"dtype": "bfloat16", "scalers": [
        {"loss_scale": 2.0 ** 16, "next_loss_scale": 2.0 ** 16, "unskipped": steps}] * 2}


def checkpoint_of(run_dir):
    last = run_dir / "checkpoints" / "last"
    out = {name: mx.nd.load(str(last / name)) for name in ("depth_net.params", "conf_net.params")}
    out["state"] = json.loads((last / "state.json").read_text())
    return out


def test_amp_is_initialised_once_per_process(monkeypatch):
    """A second target dtype in one process would be ignored by MXNet: refused instead."""
    monkeypatch.setattr(precision, "_initialised", ["bfloat16"])
    precision.init_amp("bfloat16")  # the same again: nothing to do (and amp.init is not called)
    with pytest.raises(PrecisionError, match="AMP is already set to bfloat16 in this process; float16 needs a new"):
        precision.init_amp("float16")


# ---- bench/amp.py -------------------------------------------------------------------------------
@pytest.mark.parametrize("argv,message", [
    (["--steps", "0"], "--batch, --steps and --repeats must be >= 1"),
    (["--labeled-frac", "1"], "--labeled-frac must be in (0, 1): the semi-supervised step needs unlabeled images"),
    (["--size", "50x40"], "input size 50x40 (width x height) is not a multiple of 16 in both; use e.g. 320x240 or 160x128"),
    (["--amp", "fp16"], "--amp fp16 needs GPUs (--gpus); on a CPU use --amp bf16"),
    (["--json", "/no/such/dir/x.json"], "the folder of --json /no/such/dir/x.json does not exist"),
])
def test_bench_rejects_bad_settings(argv, message, capsys):
    from bench import amp as bench_amp
    assert bench_amp.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: " + message


def test_bench_refuses_a_cpu_without_bfloat16_under_auto(monkeypatch, capsys):
    from bench import amp as bench_amp
    monkeypatch.setattr(precision, "cpu_flags", lambda path=None: set(PLAIN))
    assert bench_amp.main([]) == 2
    assert capsys.readouterr().err.strip() == ("error: nothing to compare: --amp auto: this CPU has no bfloat16 "
                                               "instructions (avx512_bf16, amx_bf16); training in float32")


@needs_bf16
def test_bench_times_both_precisions_side_by_side(tmp_path, capsys):
    """Tiny settings, no timing assertions: every figure is there, the float32 worker is float32."""
    from bench import amp as bench_amp
    out = tmp_path / "amp.json"
    assert bench_amp.main(["--size", "64x48", "--batch", "2", "--steps", "1", "--repeats", "1", "--amp", "bf16",
                           "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    for name in ("float32", "amp"):
        for kind in ("train_step", "bare"):
            assert r["seconds"][name][kind] > 0
        assert r["workers"][name]["param_dtypes"] == ["float32"]
    assert r["amp_over_float32"]["train_step"] == pytest.approx(
        r["seconds"]["amp"]["train_step"] / r["seconds"]["float32"]["train_step"])
    assert r["workers"]["float32"]["graph_casts"] == {"depth_net": 0, "conf_net": 0}
    assert min(r["workers"]["amp"]["graph_casts"].values()) > 0
    assert r["workers"]["float32"]["dtype"] == "float32" and r["workers"]["amp"]["dtype"] == "bfloat16"
    assert r["settings"]["amp_dtype"] == "bfloat16" and r["settings"]["unlabeled_per_step"] == 6
    assert "Trainer.train_step" in capsys.readouterr().out
