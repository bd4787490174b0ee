"""Peak memory of the pseudo-label cache against the number of unlabeled samples.

    python bench/cache_memory.py                       # 10k and 100k slots on disk, 10k in memory
    python bench/cache_memory.py --samples 1000 200000 --dtype float16 --dir /scratch

Each measurement runs in a fresh process (``ru_maxrss`` is a lifetime peak): it
creates a cache of N slots at 80x60 (the network output for 320x240 inputs), writes
every slot in random batches as a training epoch does (``write`` + ``flush``), then
reads every slot back with the epoch-(e + 1) mask (``read``), and reports its peak
resident set size.  ``--cache-on disk`` should stay flat in N (only one batch is ever
in memory; the file lives in the page cache, which is not RSS); ``memory`` grows by
2 x N x 80 x 60 x 4 bytes.  Figures only, no assertions.
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
from common.cli import OneLineParser  # noqa: E402


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def measure(mode, samples, width, height, batch, dtype, directory):
    """One measurement in this process; returns its figures as a dict."""
    from common.threads import set_omp_threads
    set_omp_threads()  # before mxnet loads (common/threads.py)
    import mxnet as mx
    import numpy as np
    from tqdm import tqdm

    from training.cache import PseudoLabelCache
    from training.disk_cache import DiskPseudoLabelCache
    baseline = peak_rss_mb()
    shape = (samples, height, width)
    cache = DiskPseudoLabelCache(directory, *shape, dtype=dtype) if mode == "disk" else \
        PseudoLabelCache(*shape, dtype=dtype)
    depth = mx.nd.ones((batch, 1, height, width)) * 3.0
    conf = mx.nd.ones((batch, 1, height, width)) * 0.95
    order = np.random.RandomState(0).permutation(samples)
    batches = [order[i:i + batch] for i in range(0, samples, batch)]
    tic = time.time()
    for ids in tqdm(batches, desc="%s %d write" % (mode, samples), leave=False):
        cache.write(mx.nd.array(ids, dtype="int32"), depth[:len(ids)], conf[:len(ids)], epoch=0)
        cache.flush()
    mx.nd.waitall()
    written = time.time() - tic
    tic, kept = time.time(), 0.0
    for ids in tqdm(batches, desc="%s %d read" % (mode, samples), leave=False):
        _, mask = cache.read(mx.nd.array(ids, dtype="int32"), epoch=1, threshold=0.9)
        kept += float(mask.mean().asscalar()) * len(ids)
    read = time.time() - tic
    return {"mode": mode, "samples": samples, "dtype": dtype, "cache_mb": cache.nbytes() / 2 ** 20,
            "baseline_rss_mb": baseline, "peak_rss_mb": peak_rss_mb(), "write_s": written, "read_s": read,
            "mask_ok": abs(kept / samples - 1.0) < 1e-6}


def build_parser():
    parser = OneLineParser(prog="python bench/cache_memory.py", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, nargs="+", default=[10000, 100000],
                        help="cache sizes to measure on disk. default: %(default)s")
    parser.add_argument("--memory-samples", type=int, nargs="*", default=[10000],
                        help="cache sizes to measure in memory, for comparison. default: %(default)s")
    parser.add_argument("--width", type=int, default=80, help="slot width. default: %(default)s")
    parser.add_argument("--height", type=int, default=60, help="slot height. default: %(default)s")
    parser.add_argument("--batch", type=int, default=64, help="slots per write / read. default: %(default)s")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                        help="storage type. default: %(default)s")
    parser.add_argument("--dir", default=None,
                        help="where the disk caches are created (removed afterwards). default: a temporary dir")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.child:  # one measurement: "mode,samples,directory"
        mode, samples, directory = args.child.split(",", 2)
        print(json.dumps(measure(mode, int(samples), args.width, args.height, args.batch, args.dtype, directory)))
        return 0
    if min(args.samples + args.memory_samples + [args.width, args.height, args.batch]) < 1:
        print("error: --samples, --width, --height and --batch must be positive", file=sys.stderr)
        return 2
    try:
        root = tempfile.mkdtemp(prefix="cache_memory_", dir=args.dir)
    except OSError as err:
        print("error: cannot create a directory in %s (%s)" % (args.dir, err.strerror), file=sys.stderr)
        return 2
    runs = [("disk", n) for n in args.samples] + [("memory", n) for n in args.memory_samples]
    results = []
    try:
        for mode, n in runs:
            child = ["--child", "%s,%d,%s" % (mode, n, os.path.join(root, "%s%d" % (mode, n))),
                     "--width", str(args.width), "--height", str(args.height), "--batch", str(args.batch),
                     "--dtype", args.dtype]
            out = subprocess.run([sys.executable, os.path.abspath(__file__)] + child, capture_output=True,
                                 text=True)
            if out.returncode != 0:
                print("error: the %s measurement of %d samples failed: %s" % (mode, n, out.stderr.strip()[-500:]),
                      file=sys.stderr)
                return 2
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            shutil.rmtree(os.path.join(root, "%s%d" % (mode, n)), ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("pseudo-label cache, %dx%d %s slots, batches of %d (write all, then read all)"
          % (args.width, args.height, args.dtype, args.batch))
    print("%-7s %9s %10s %14s %13s %9s %8s" % ("mode", "samples", "cache MB", "baseline RSS", "peak RSS MB",
                                              "write s", "read s"))
    for r in results:
        print("%-7s %9d %10.0f %14.0f %13.0f %9.1f %8.1f%s" % (
            r["mode"], r["samples"], r["cache_mb"], r["baseline_rss_mb"], r["peak_rss_mb"], r["write_s"],
            r["read_s"], "" if r["mask_ok"] else "  (mask wrong!)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
