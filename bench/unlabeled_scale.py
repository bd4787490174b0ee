"""Step memory and time against the number of unlabeled images, with ``--unlabeled-per-step K``.

    python bench/unlabeled_scale.py                                 # 10k, 100k, 1M slots, K = 4, 64x48
    python bench/unlabeled_scale.py --sizes 10000 1000000 --per-step 8 --json scale.json

For each size M, a fresh process (``ru_maxrss`` is a lifetime peak) builds a real
``Trainer`` as train.py does (``--cache-on disk --unlabeled-per-step K``, networks from
scratch, ``--pretrained 0``) whose unlabeled set is M virtual images: image i is made
from i on the fly (no files), standing in for ``--unlabeled`` photos.  All training
images are labeled (``--labeled-frac 1``), so the unlabeled set is exactly the M virtual
ones and the pseudo-label cache has M slots in files.  It then runs semi-supervised
steps (``Trainer.train_step``, epochs from 1 on): before each epoch the slots that
epoch visits get cache entries of the epoch before (as a previous visit would have
left them), so every step reads kept pseudo-labels, computes L_semi and writes back.

Reported per size: the median and mean seconds of ``train_step`` (after untimed
warm-up steps; each step timed to completion), the seconds to load a step's batches,
the seconds to build an epoch's plan (``unlabeled_plan``: one shuffled pass of M
slots, the only per-epoch cost that grows with M), the peak resident memory, and the
cache's bytes on disk (sparse files: only written slots take space).  Figures only,
no assertions; other processes on a shared CPU move the seconds by 10-20 %.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from common.threads import set_omp_threads  # noqa: E402

set_omp_threads()  # before mxnet loads (common/threads.py); the measuring processes inherit it
from bench.shared import add_json_arg, check_json_folder, finish, machine  # noqa: E402
from common.cli import OneLineParser  # noqa: E402


def build_parser():
    parser = OneLineParser(prog="python bench/unlabeled_scale.py", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000, 1000000],
                        help="numbers of unlabeled images (cache slots) to measure. default: %(default)s")
    parser.add_argument("--per-step", type=int, default=4,
                        help="--unlabeled-per-step K of the trainer. default: %(default)s")
    parser.add_argument("--batch", type=int, default=4, help="labeled images per step. default: %(default)s")
    parser.add_argument("--size", default="64x48", help="network input WIDTHxHEIGHT. default: %(default)s")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per size. default: %(default)s")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first. default: %(default)s")
    parser.add_argument("--dir", default=None,
                        help="where the data and the disk caches go (removed afterwards). default: a temporary dir")
    add_json_arg(parser)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    return parser


def check_args(args):
    import config
    from symbols import check_input_size
    if min(args.sizes + [args.per_step, args.batch, args.steps]) < 1 or args.warmup < 0:
        raise ValueError("--sizes, --per-step, --batch and --steps must be >= 1, --warmup >= 0")
    try:
        args.size = config.parse_size(args.size)
    except argparse.ArgumentTypeError as err:
        raise ValueError(str(err))
    check_input_size(args.size[1], args.size[0])
    check_json_folder(args.json)
    if args.dir and not os.path.isdir(args.dir):
        raise ValueError("--dir %s is not a directory" % args.dir)


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def build_data(root, size, n_labeled):
    """A prepared dir of ``n_labeled`` synthetic training scenes at ``size`` and one test scene."""
    import numpy as np
    from data.prepare import prepare
    from data.synthetic import generate, write_official
    images, depths = generate(n_labeled + 1, seed=0, height=size[1], width=size[0])
    mat, splits = write_official(os.path.join(root, "raw"), images, depths, np.arange(n_labeled), [n_labeled])
    prep = os.path.join(root, "prepared")
    prepare(mat, splits, prep, seed=0, size=size, copies=1, progress=False)
    return prep


# ---- one size, in its own process ------------------------------------------------------------
class VirtualUnlabeled:
    """``count`` unlabeled images made from their index, passed to the Trainer in place of the --unlabeled
    folder's ``ExtraUnlabeledDataset`` (``training.run_data``)."""

    def __init__(self, count, size):
        self.count, self.size = count, tuple(size)

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        import numpy as np
        image = np.random.RandomState(i).uniform(-2, 2, (3, self.size[1], self.size[0])).astype(np.float32)
        return image, np.int32(i)

    def record(self):
        return {"path": "virtual", "count": self.count}


def measure(count, data, work, args):
    """Figures of one size M = ``count`` (this process only)."""
    import mxnet as mx
    import numpy as np

    import train
    from training.distributed import unlabeled_plan
    from data.dataset import read_prepared
    from training.trainer import Trainer
    opts = train.parse_args(["--pretrained", "0", "--batch-size", str(args.batch), "--labeled-frac", "1",
                             "--unlabeled", "virtual", "--unlabeled-per-step", str(args.per_step),
                             "--cache-on", "disk", "--semi-start", "1", "--epochs", "1000", "--t-semi", "0.5",
                             "--no-progress", "--data", data, "--out", os.path.join(work, "run")])
    baseline = peak_rss_mib()
    tic = time.perf_counter()
    prepared = read_prepared(data)
    t = Trainer(opts, extra_unlabeled=VirtualUnlabeled(count, (prepared.width, prepared.height)))
    t.start()
    build_seconds = time.perf_counter() - tic
    assert t.num_unlabeled == count and t.cache.num_samples == count, (t.num_unlabeled, count)
    q = (t.height // 4, t.width // 4)
    step_times, cpu_times, data_times, plan_times = [], [], [], []
    epoch, total = 1, args.warmup + args.steps
    while len(step_times) < total:
        tic = time.perf_counter()
        plan, counts = unlabeled_plan(t.num_unlabeled, t.steps, opts.seed, epoch, per_step=opts.unlabeled_per_step)
        plan_times.append(time.perf_counter() - tic)
        for ids in plan:  # the entries a visit in the epoch before left
            n = len(ids)
            t.cache.write(mx.nd.array(ids, dtype="int32"), mx.nd.full((n, 1) + q, 2.0), mx.nd.full((n, 1) + q, 0.9),
                          epoch - 1)
        t.cache.flush()
        steps = t.epoch_steps(epoch)  # the trainer's own plan: the same unlabeled batches as ``plan``
        for step in range(t.steps):
            if len(step_times) >= total:
                break
            tic = time.perf_counter()
            _, labeled, unlabeled, step_counts = next(steps)
            data_times.append(time.perf_counter() - tic)
            assert step_counts[1] == counts[step]
            mx.nd.waitall()
            tic, cpu = time.perf_counter(), time.process_time()
            loss, finite = t.train_step(labeled, unlabeled, epoch, "semi", step_counts)
            mx.nd.waitall()
            step_times.append(time.perf_counter() - tic)
            cpu_times.append(time.process_time() - cpu)
            assert finite and float(loss["coverage"].asscalar()) > 0
        epoch += 1
    t.cache.close()
    timed = step_times[args.warmup:]
    return {"unlabeled_slots": count, "unlabeled_per_step": t.unlabeled_batch, "steps_per_epoch": t.steps,
            "epochs_per_pass": -(-count // (t.steps * t.unlabeled_batch)),
            "step_seconds_median": float(np.median(timed)), "step_seconds_mean": float(np.mean(timed)),
            "step_cpu_seconds_median": float(np.median(cpu_times[args.warmup:])),
            "data_seconds_median": float(np.median(data_times[args.warmup:])),
            "plan_seconds_per_epoch": float(np.median(plan_times)), "build_seconds": build_seconds,
            "baseline_rss_mib": baseline, "peak_rss_mib": peak_rss_mib(),
            "cache_file_mib": t.cache.nbytes() / 2 ** 20, "timed_steps": len(timed)}


# ---- the whole run ---------------------------------------------------------------------------
def report(result):
    s = result["settings"]
    print("unlabeled scale: %dx%d, %d labeled + K = %d unlabeled images per step, --cache-on disk, %d timed steps"
          % (s["size"][0], s["size"][1], s["batch"], s["per_step"], s["steps"]))
    print("%12s %10s %10s %10s %9s %12s %13s %13s %10s" % (
        "unlabeled", "step med s", "step mean", "step CPU s", "data s", "plan s/epoch", "baseline MiB",
        "peak RSS MiB", "cache MiB"))
    for r in result["sizes"]:
        print("%12d %10.3f %10.3f %10.3f %9.4f %12.4f %13.0f %13.0f %10.0f" % (
            r["unlabeled_slots"], r["step_seconds_median"], r["step_seconds_mean"], r["step_cpu_seconds_median"],
            r["data_seconds_median"],
            r["plan_seconds_per_epoch"], r["baseline_rss_mib"], r["peak_rss_mib"], r["cache_file_mib"]))


def main(argv=None):
    """Command-line entry point; returns the exit status (2 on bad settings or a failed measurement)."""
    args = build_parser().parse_args(argv)
    if args.child is not None:
        print(json.dumps(measure(args.child, args.data, args.dir, args)))
        return 0
    try:
        check_args(args)
        root = tempfile.mkdtemp(prefix="unlabeled_scale_", dir=args.dir)
    except (ValueError, OSError) as err:
        print("error: %s" % err, file=sys.stderr)
        return 2
    results = []
    try:
        data = build_data(os.path.join(root, "data"), args.size, args.batch * 4)  # 4 labeled steps per epoch
        for count in args.sizes:
            work = os.path.join(root, "m%d" % count)
            os.makedirs(work)
            child = ["--child", str(count), "--data", data, "--dir", work, "--per-step", str(args.per_step),
                     "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup)]
            out = subprocess.run([sys.executable, os.path.abspath(__file__)] + child, capture_output=True, text=True)
            if out.returncode != 0:
                lines = out.stderr.strip().splitlines()
                print("error: the measurement of %d unlabeled images failed: %s"
                      % (count, lines[-1] if lines else "exit status %d" % out.returncode), file=sys.stderr)
                return 2
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            shutil.rmtree(work, ignore_errors=True)
            print("measured %d unlabeled images" % count, file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result = {"settings": {"size": list(args.size), "batch": args.batch, "per_step": args.per_step,
                           "steps": args.steps, "warmup": args.warmup, "cache_on": "disk",
                           "date": time.strftime("%Y-%m-%d"), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                           "machine": machine()},
              "sizes": results}
    return finish(result, report, args.json)


if __name__ == "__main__":
    sys.exit(main())
