"""Mixed precision (``--amp``) against float32: the real ``Trainer.train_step``, side by side.

    python bench/amp.py [--size 160x128] [--batch 4] [--steps 2] [--labeled-frac 0.25]
                        [--repeats 3] [--amp auto|bf16|fp16] [--gpus 0] [--json out.json]

Builds a prepared set of synthetic scenes at ``--size`` in a temporary directory (as
bench/train_step.py does; ``--pretrained 0``), then starts two worker processes on
it: one trains in float32, the other with ``--amp``.  ``amp.init`` changes every graph
built after it in a process and cannot be undone, hence one process per precision.
Each worker builds a Trainer as train.py does, runs the fill epoch (which builds the
graphs) and loads the batches of the first semi-supervised epoch.  Then the two are
timed in turns, step by step, so that a burst of load from other processes hits both
alike (only one worker computes at any moment):

* ``train_step``: one semi-supervised ``Trainer.train_step`` (forward, both backward
  passes with the loss scaled, overflow check, both optimiser steps), timed until
  every queued MXNet operation has finished;
* ``bare``: a forward + backward of both networks on the same batch shapes (no losses,
  cache, loss scaling or optimiser): what the network arithmetic itself gains.

A figure is the median of ``repeats x steps`` steps after one untimed warm-up step of
each kind.  ``amp_over_float32`` < 1 means mixed precision is faster.  The report also
says which bfloat16 instructions the CPU has, how many AMP casts each worker's graphs
hold (0 for float32: the float32 worker is really float32) and that the parameters of
both stay float32 (the master copies).
"""
import argparse
import multiprocessing
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.threads import set_omp_threads  # noqa: E402

set_omp_threads()  # before mxnet loads (common/threads.py)
import numpy as np  # noqa: E402

import config  # noqa: E402
from bench.shared import BenchError, add_json_arg, add_step_args, check_common, finish  # noqa: E402
from common.cli import OneLineParser  # noqa: E402
from common.threads import cpu_model  # noqa: E402

KINDS = ("train_step", "bare")


def build_parser():
    parser = OneLineParser(prog="python bench/amp.py", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    add_step_args(parser, 3, "timed passes over the steps")
    parser.add_argument("--amp", choices=("auto", "bf16", "fp16"), default="auto",
                        help="the mixed precision to compare with float32 (train.py --amp). default: %(default)s")
    parser.add_argument("--gpus", type=config.parse_gpus, default=[],
                        help="GPU ids (train.py --gpus); empty = CPU. default: CPU")
    add_json_arg(parser)
    return parser


def check_args(args):
    from common.devices import contexts
    from training.precision import resolve
    check_common(args, ("batch", "steps", "repeats"))
    dtype, note = resolve(args.amp, contexts(args.gpus))
    if dtype is None:
        raise BenchError("nothing to compare: %s" % note)
    return dtype, note


# ---- a worker: one Trainer in one precision ---------------------------------------------------
def worker(conn, data, run_dir, args, amp):
    """Serve ``("train_step" | "bare", i)`` with the seconds of that step on batch i; ``None`` ends it."""
    import mxnet as mx
    from bench.shared import new_trainer
    from bench.train_step import bare_forward_backward, semi_batches
    from training.precision import graph_casts
    trainer = new_trainer(data, run_dir, ["--batch-size", str(args.batch), "--labeled-frac", str(args.labeled_frac),
                                          "--epochs", "100", "--log-every", "1000000", "--amp", amp,
                                          "--gpus", ",".join(map(str, args.gpus))])
    trainer.run_epoch(0)  # the fill epoch: builds the graphs, fills the cache
    batches = semi_batches(trainer, 1)
    kinds = {"train_step": lambda labeled, unlabeled: trainer.train_step(labeled, unlabeled, 1, "semi"),
             "bare": lambda labeled, unlabeled: bare_forward_backward(trainer, labeled, unlabeled)}
    for kind in KINDS:  # untimed warm-up of each kind
        kinds[kind](*batches[0])
    mx.nd.waitall()
    conn.send({"steps": len(batches), "unlabeled_per_step": trainer.unlabeled_batch})
    while True:
        job = conn.recv()
        if job is None:
            break
        kind, i = job
        mx.nd.waitall()
        start = time.perf_counter()
        kinds[kind](*batches[i])
        mx.nd.waitall()
        conn.send(time.perf_counter() - start)
    params = [p for net in (trainer.depth_net, trainer.conf_net) for p in net.collect_params().values()]
    conn.send({"dtype": trainer.precision.dtype or "float32",
               "graph_casts": {"depth_net": graph_casts(trainer.depth_net), "conf_net": graph_casts(trainer.conf_net)},
               "param_dtypes": sorted({np.dtype(p.data().dtype).name for p in params}),
               "loss_scales": trainer.precision.loss_scales() if trainer.precision.dtype else None,
               "skipped_steps": trainer.skipped})


def start_worker(context, data, run_dir, args, amp):
    ours, theirs = context.Pipe()
    process = context.Process(target=worker, args=(theirs, data, run_dir, args, amp), daemon=True)
    process.start()
    return process, ours


# ---- the whole measurement -------------------------------------------------------------------------
def measure(args, root, dtype):
    """Every figure of the report, as a dict."""
    import mxnet as mx
    from bench.train_step import build_data
    from training.precision import cpu_bf16
    data = build_data(root, args.size, args.batch * args.steps, args.labeled_frac)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no AMP inherited
    modes = {"float32": "off", "amp": args.amp}
    workers = {name: start_worker(context, data, os.path.join(root, name), args, amp) for name, amp in modes.items()}
    try:
        ready = {name: conn.recv() for name, (_, conn) in workers.items()}
        times = {name: {kind: [] for kind in KINDS} for name in workers}
        for _ in range(args.repeats):
            for i in range(ready["float32"]["steps"]):
                for kind in KINDS:
                    for name, (_, conn) in workers.items():
                        conn.send((kind, i))
                        times[name][kind].append(conn.recv())
        info = {}
        for name, (process, conn) in workers.items():
            conn.send(None)
            info[name] = conn.recv()
            process.join(60)
    finally:
        for process, _ in workers.values():
            if process.is_alive():
                process.terminate()
    seconds = {name: {kind: float(np.median(t)) for kind, t in kinds.items()} for name, kinds in times.items()}
    return {
        "settings": {"size": list(args.size), "batch": args.batch, "steps_per_epoch": ready["float32"]["steps"],
                     "repeats": args.repeats, "labeled_frac": args.labeled_frac,
                     "unlabeled_per_step": ready["float32"]["unlabeled_per_step"], "amp": args.amp,
                     "amp_dtype": dtype, "gpus": args.gpus, "cpu_count": os.cpu_count(),
                     "cpu_bf16": cpu_bf16(), "cpu_model": cpu_model(), "mxnet": mx.__version__,
                     "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "date": time.strftime("%Y-%m-%d")},
        "seconds": seconds,
        "amp_over_float32": {kind: seconds["amp"][kind] / seconds["float32"][kind] for kind in KINDS},
        "workers": info,
    }


def report(r, stream=None):
    """The figures as a readable table (on stdout by default)."""
    stream = stream or sys.stdout
    s, sec, ratio, w = r["settings"], r["seconds"], r["amp_over_float32"], r["workers"]
    print("amp benchmark: %dx%d, %d labeled + %d unlabeled images per step, --amp %s (%s), median of %d steps"
          % (s["size"][0], s["size"][1], s["batch"], s["unlabeled_per_step"], s["amp"], s["amp_dtype"],
             s["repeats"] * s["steps_per_epoch"]), file=stream)
    print("machine: %s, %s CPUs, bfloat16 instructions: %s, OMP_NUM_THREADS=%s, MXNet %s"
          % (s["cpu_model"], s["cpu_count"], ", ".join(s["cpu_bf16"]) or "none", s["omp_num_threads"], s["mxnet"]),
          file=stream)
    print("  %-42s %10s %10s %10s" % ("", "float32", s["amp_dtype"], "ratio"), file=stream)
    for kind, label in (("train_step", "Trainer.train_step"), ("bare", "bare forward + backward of both nets")):
        print("  %-42s %8.3f s %8.3f s %10.3f" % (label, sec["float32"][kind], sec["amp"][kind], ratio[kind]),
              file=stream)
    print("  AMP casts in the graphs (depth, conf): float32 %d, %d; %s %d, %d" % (
        w["float32"]["graph_casts"]["depth_net"], w["float32"]["graph_casts"]["conf_net"], s["amp_dtype"],
        w["amp"]["graph_casts"]["depth_net"], w["amp"]["graph_casts"]["conf_net"]), file=stream)
    print("  parameter dtypes: float32 %s; %s %s; loss scales %s" % (
        ", ".join(w["float32"]["param_dtypes"]), s["amp_dtype"], ", ".join(w["amp"]["param_dtypes"]),
        w["amp"]["loss_scales"]), file=stream)


def main(argv=None):
    """Command-line entry point; returns the exit status (2 on bad settings)."""
    args = build_parser().parse_args(argv)
    try:
        dtype, note = check_args(args)
    except (BenchError, ValueError) as err:
        print("error: %s" % err, file=sys.stderr)
        return 2
    if note:
        print(note, file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench_amp_") as root:
        result = measure(args, root, dtype)
    return finish(result, report, args.json)


if __name__ == "__main__":
    sys.exit(main())
