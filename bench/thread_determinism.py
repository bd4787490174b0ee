"""Does an MXNet setting make CPU training independent of the thread count, and at what cost?

    python bench/thread_determinism.py                        # 96x64, 4 steps, ~4 min on 2 CPU cores
    python bench/thread_determinism.py --size 160x128 --json runs/bench/threads.json

For each setting it trains the same tiny run (a seed, a synthetic set built on the fly, 2 epochs
with L_semi in the second) twice: with OMP_NUM_THREADS=1 and with OMP_NUM_THREADS=2, each in its
own ``train.py`` process (the variable only counts before MXNet loads).  It then compares the two
runs' networks (``--dump-params``) bit for bit, and times each run against the default setting at
the same thread count.  Settings:

* ``default``: the project's (oneDNN kernels);
* ``MXNET_MKLDNN_ENABLED=0``: MXNet's own CPU kernels instead of oneDNN's;
* ``MXNET_ENFORCE_DETERMINISM=1``: MXNet's switch for deterministic algorithms (mostly cuDNN's);
* both together.

Figures only, no assertions: README "CPU and GPU" states what they showed.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from common.cli import OneLineParser  # noqa: E402

SETTINGS = {"default": {}, "no_onednn": {"MXNET_MKLDNN_ENABLED": "0"},
            "enforce_determinism": {"MXNET_ENFORCE_DETERMINISM": "1"},
            "no_onednn+enforce_determinism": {"MXNET_MKLDNN_ENABLED": "0", "MXNET_ENFORCE_DETERMINISM": "1"}}
THREADS = ("1", "2")


def build_parser():
    parser = OneLineParser(prog="python bench/thread_determinism.py", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="96x64", help="network input WIDTHxHEIGHT. default: %(default)s")
    parser.add_argument("--labeled", type=int, default=4, help="labeled images (2 steps of 2 per epoch). default: %(default)s")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS),
                        help="which settings to measure. default: all")
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="accepted for make bench; nothing to hide")
    return parser


def train(data, run_dir, threads, setting_env):
    """One train.py process; (seconds, its first epoch's L_sup, the parameter files it dumped)."""
    env = dict(os.environ, OMP_NUM_THREADS=threads, **setting_env)
    dump = run_dir + ".params"
    cmd = [sys.executable, os.path.join(REPO, "train.py"), "--data", data, "--out", run_dir, "--pretrained", "0",
           "--batch-size", "2", "--labeled-frac", "0.5", "--epochs", "2", "--semi-start", "1", "--t-semi", "0.5",
           "--seed", "0", "--no-progress", "--dump-params", dump]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError("train.py failed (%s): %s" % (" ".join("%s=%s" % kv for kv in setting_env.items()),
                                                          done.stderr.strip().splitlines()[-1:]))
    first = json.loads(open(os.path.join(run_dir, "metrics.jsonl")).readline())
    return seconds, first["sup"], [os.path.join(dump, "rank0.%s.params" % n) for n in ("depth_net", "conf_net")]


def max_difference(files_a, files_b):
    """The largest absolute difference over every parameter of both networks (0.0: bit for bit equal)."""
    import mxnet as mx
    import numpy as np
    worst = 0.0
    for a, b in zip(files_a, files_b):
        pa, pb = mx.nd.load(a), mx.nd.load(b)
        for key in pa:
            x, y = pa[key].asnumpy(), pb[key].asnumpy()
            if not np.array_equal(x, y):
                worst = max(worst, float(np.max(np.abs(x.astype(np.float64) - y))))
    return worst


def measure(args, root):
    from common.threads import cpu_model
    from config import parse_size
    from bench.train_step import build_data
    data = build_data(root, parse_size(args.size), args.labeled, 0.5)
    out = {"size": args.size, "labeled": args.labeled, "cpu": cpu_model(), "settings": {}}
    for name in args.settings:
        runs = {t: train(data, os.path.join(root, "%s_t%s" % (name, t)), t, SETTINGS[name]) for t in THREADS}
        out["settings"][name] = {"env": SETTINGS[name], "seconds": {t: runs[t][0] for t in THREADS},
                                 "first_epoch_sup": {t: runs[t][1] for t in THREADS},
                                 "max_param_difference_1_vs_2_threads": max_difference(runs["1"][2], runs["2"][2])}
        print("%-30s threads 1 vs 2: %s; %.1f s / %.1f s" % (
            name, "bit for bit equal" if out["settings"][name]["max_param_difference_1_vs_2_threads"] == 0 else
            "parameters differ by up to %.3g" % out["settings"][name]["max_param_difference_1_vs_2_threads"],
            runs["1"][0], runs["2"][0]), flush=True)
    base = out["settings"].get("default")
    if base:
        for s in out["settings"].values():
            s["time_vs_default"] = {t: s["seconds"][t] / base["seconds"][t] for t in THREADS}
    return out


def main(argv=None):
    args = build_parser().parse_args(argv)
    from config import parse_size
    try:
        parse_size(args.size)
    except (ValueError, argparse.ArgumentTypeError) as err:
        print("error: --size: %s" % err, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench_threads_") as root:
        result = measure(args, root)
    for name, s in result["settings"].items():
        print("%-30s time against default: %s" % (name, ", ".join(
            "%s thread(s) %.2fx" % (t, r) for t, r in s.get("time_vs_default", {}).items())))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
