"""Every benchmark in one run, and one JSON with the figures that say where the machine goes.

    python bench/all.py                       # all of them, ~15-20 min on 2 idle CPU cores (estimated)
    python bench/all.py --only step_160x128_q amp --out runs/bench

Runs each benchmark of ``BENCHES`` in its own process, one after the other (never two
at once: they would time each other), writes its full JSON to ``<out>/<name>.json``,
then ``<out>/summary.json`` with the headline figures of all of them and the machine
they came from, and prints them as a table:

* ``step_overhead_ratio``: ``Trainer.train_step`` / a bare MXNet step (forward,
  backward, SGD + Adam) at 160x128 and 320x240, batch 4, 1/4 and 1/2 labeled
  (``bench/train_step.py``; target <= 1.03), and ``epoch_ratio_per_image``;
* the AMP / float32 step time (``bench/amp.py``);
* evaluate.py and predict.py images/s against the training forward
  (``bench/inference.py``; target >= 2);
* step time and peak memory from 10k to 1M unlabeled images with
  ``--unlabeled-per-step`` (``bench/unlabeled_scale.py``).

The thread count every benchmark ran with (``common/threads.py``, or your
``OMP_NUM_THREADS``) is recorded.  Run it on an otherwise idle machine.
"""
import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from bench import shared  # noqa: E402
from bench.shared import BenchError  # noqa: E402
from common.cli import OneLineParser  # noqa: E402
from common.threads import set_omp_threads  # noqa: E402

# 4 steps x 3 repeats: 12 paired rounds per ratio (bench/train_step.py paired_ratio)
STEP = ["bench/train_step.py", "--batch", "4", "--steps", "4", "--repeats", "3"]
# name: command (relative to the repository); the JSON path is appended as --json
BENCHES = {
    "step_160x128_q": STEP + ["--size", "160x128", "--labeled-frac", "0.25"],
    "step_160x128_h": STEP + ["--size", "160x128", "--labeled-frac", "0.5", "--no-imperative"],
    "step_320x240_q": STEP + ["--size", "320x240", "--labeled-frac", "0.25", "--no-imperative"],
    "step_320x240_h": STEP + ["--size", "320x240", "--labeled-frac", "0.5", "--no-imperative"],
    "step_128x96_q": STEP + ["--size", "128x96", "--labeled-frac", "0.25", "--no-imperative"],  # the claims' shape
    "amp": ["bench/amp.py", "--size", "160x128"],
    "inference_160x128": ["bench/inference.py", "--size", "160x128"],
    "inference_320x240": ["bench/inference.py", "--size", "320x240"],
    "unlabeled_scale": ["bench/unlabeled_scale.py"],
}


def build_parser():
    parser = OneLineParser(prog="python bench/all.py", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench", help="folder for the JSON files. default: %(default)s")
    parser.add_argument("--only", nargs="+", metavar="NAME", default=None,
                        help="run only these benchmarks (of: %s); the summary covers what is in --out"
                             % ", ".join(BENCHES))
    return parser


def run_bench(name, out_dir):
    """One benchmark in its own process; its JSON path."""
    path = os.path.join(out_dir, name + ".json")
    command = [sys.executable] + BENCHES[name] + ["--json", path]
    print("== %s: %s" % (name, " ".join(command[1:])), flush=True)
    tic = time.time()
    done = subprocess.run(command, cwd=REPO)
    if done.returncode != 0:
        raise BenchError("%s failed with exit status %d" % (name, done.returncode))
    print("== %s: %.0f s" % (name, time.time() - tic), flush=True)
    return path


def machine():
    return dict(shared.machine(), omp_num_threads=os.environ.get("OMP_NUM_THREADS"), date=time.strftime("%Y-%m-%d"))


def summarise(results):
    """The headline figures of the benchmarks' JSONs (``{name: parsed JSON}``, any subset)."""
    out = {"step": {}, "amp": None, "inference": {}, "unlabeled_scale": None}
    for name, r in sorted(results.items()):
        if name.startswith("step_"):
            s = r["settings"]
            out["step"]["%dx%d labeled %g" % (s["size"][0], s["size"][1], s["labeled_frac"])] = {
                "train_step_seconds": r["train_step_seconds"]["hybridized"], "bare_step_seconds": r["bare_step_seconds"],
                "step_overhead_ratio": r["step_overhead_ratio"], "epoch_ratio_per_image": r["epoch_ratio_per_image"],
                # the plain script's step (bench/plain_step.py); None in results from before it was measured
                "plain_script_step_seconds": r.get("plain_script_step_seconds"),
                "train_step_over_plain_script": r.get("train_step_over_plain_script"),
                # quartiles of the rounds' paired ratios; None in results from before they were kept
                "train_step_over_plain_script_iqr": r.get("train_step_over_plain_script_iqr"),
                "labeled_per_step": s["batch"], "unlabeled_per_step": s["unlabeled_per_step"],
                "omp_num_threads": s["omp_num_threads"]}
        elif name.startswith("inference_"):
            s = r["settings"]
            out["inference"]["%dx%d" % tuple(s["size"])] = {
                "training_forward_images_per_s": r["training_forward_images_per_s"],
                "evaluate_images_per_s": r["images_per_s"]["evaluate"],
                "predict_images_per_s": r["images_per_s"]["predict"],
                "evaluate_over_training_forward": r["evaluate_over_training_forward"],
                "predict_over_training_forward": r["predict_over_training_forward"],
                # --int8 (None without oneDNN)
                "evaluate_int8_over_training_forward": r.get("evaluate_int8_over_training_forward"),
                "predict_int8_over_training_forward": r.get("predict_int8_over_training_forward"),
                "omp_num_threads": s["omp_num_threads"]}
        elif name == "amp":
            out["amp"] = {"dtype": r["settings"]["amp_dtype"], "amp_over_float32": r["amp_over_float32"],
                          "omp_num_threads": r["settings"]["omp_num_threads"]}
        elif name == "unlabeled_scale":
            out["unlabeled_scale"] = [{k: x[k] for k in ("unlabeled_slots", "step_seconds_median", "peak_rss_mib")}
                                      for x in r["sizes"]]
    return out


def report(summary, stream=None):
    stream = stream or sys.stdout
    w = lambda text="": print(text, file=stream)  # noqa: E731
    m = summary["machine"]
    w("%s, %s CPUs, OMP_NUM_THREADS=%s, %s" % (m["cpu"], m["cpu_count"], m["omp_num_threads"], m["date"]))
    for key, r in summary["step"].items():
        plain = "" if r.get("train_step_over_plain_script") is None else \
            "; / plain script %6.3f s = %.3f (target <= 1.03)%s" % (
                r["plain_script_step_seconds"], r["train_step_over_plain_script"],
                (" " + shared.quartiles(r, "train_step_over_plain_script")).rstrip())
        w("train step %-22s %6.3f s / bare %6.3f s = %.3f (target <= 1.03)%s; per image semi / sup %.3f"
          % (key, r["train_step_seconds"], r["bare_step_seconds"], r["step_overhead_ratio"], plain,
             r["epoch_ratio_per_image"]))
    if summary["amp"]:
        a = summary["amp"]
        w("amp (%s) / float32: %s" % (a["dtype"], ", ".join("%s %.3f" % kv for kv in sorted(a["amp_over_float32"].items()))))
    for key, r in summary["inference"].items():
        int8 = ""
        if r.get("evaluate_int8_over_training_forward") is not None:
            int8 = "; INT8 evaluate %.2f x, predict %.2f x" % (r["evaluate_int8_over_training_forward"],
                                                             r["predict_int8_over_training_forward"])
        w("inference %-8s evaluate %.2f x, predict %.2f x the training forward%s (target >= 2)"
          % (key, r["evaluate_over_training_forward"], r["predict_over_training_forward"], int8))
    for r in summary["unlabeled_scale"] or []:
        w("unlabeled %8d: step %.3f s, peak RSS %.0f MiB" % (r["unlabeled_slots"], r["step_seconds_median"],
                                                            r["peak_rss_mib"]))


def main(argv=None):
    args = build_parser().parse_args(argv)
    unknown = sorted(set(args.only or ()) - set(BENCHES))
    if unknown:
        print("error: no benchmark named %s (there are: %s)" % (", ".join(unknown), ", ".join(BENCHES)),
              file=sys.stderr)
        return 2
    set_omp_threads()  # the benchmarks inherit it, and the summary records it
    os.makedirs(args.out, exist_ok=True)
    try:
        for name in args.only or BENCHES:
            run_bench(name, args.out)
    except BenchError as err:
        print("error: %s" % err, file=sys.stderr)
        return 1
    results = {}
    for name in BENCHES:
        path = os.path.join(args.out, name + ".json")
        if os.path.isfile(path):
            with open(path) as f:
                results[name] = json.load(f)
    summary = dict(summarise(results), machine=machine())
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    report(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
