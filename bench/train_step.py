"""Where the time of one training step goes, on a synthetic set built on the fly.

    python bench/train_step.py [--size 160x128] [--batch 4] [--steps 2] [--labeled-frac 0.25]
                               [--repeats 2] [--json out.json]

Builds a prepared set of synthetic scenes at ``--size`` in a temporary directory
(``steps x batch`` labeled images, the rest unlabeled at ``--labeled-frac``), then
measures in one run, on the same data and networks of the same kind (``--pretrained 0``):

* one semi-supervised step split into data loading, depth net forward / backward,
  confidence net forward / backward, pseudo-label cache read + write, losses and
  glue, optimiser steps.  The step is ``Trainer.train_step`` itself: the networks'
  forward hooks and the trainer's ``clock`` (``Trainer.phase``, nothing when unset)
  mark the phases, and what is left of the step is "losses and glue".  The clock
  calls ``mx.nd.waitall()`` around every phase (MXNet runs asynchronously), which
  itself costs time: the instrumented total is larger than the plain step's;
* the plain ``Trainer.train_step`` (no added syncs inside, data preloaded, each step
  timed to completion), hybridized and imperative (``hybridize(active=False)``);
* the step of a plain script of the same work (``bench/plain_step.py``: both nets, the same
  labeled + unlabeled counts, L1 losses, SGD + Adam, the unlabeled confidence; no pipeline,
  cache or bookkeeping), in this process, alternating with ``train_step``: the figure to
  reach (train_step / plain script <= 1.03);
* a bare step on the same batch shapes: forward + backward of both networks and
  SGD + Adam updates by ``gluon.Trainer``s with MXNet's defaults, no losses, cache,
  finite check or BatchNorm snapshot.  The step's overhead is train_step / bare
  (target <= 1.03); the bare forward + backward alone is given as well;
* a semi-supervised epoch against a supervised (lambda = 0) epoch on the same
  labeled images (target <= 1.10).  The semi epoch also passes every unlabeled
  image through both networks, which the supervised epoch never sees, so the
  ratio per processed image (labeled + unlabeled vs labeled) is given as well:
  that one is the overhead of the semi-supervised machinery itself;
* peak resident memory of the process (``ru_maxrss``) while it holds only the
  semi-supervised trainer, and the cache's bytes.

Other processes on a shared CPU disturb timings, so: every loop starts with an
untimed warm-up step (hybridized graphs are built on the first call); the kinds
being compared run in turns (semi / supervised epochs, train_step / bare steps);
a step figure is the median of ``repeats x steps`` steps, a step ratio the median
of the ``repeats x steps`` rounds' paired ratios (``paired_ratio``; its quartiles are
given), an epoch figure the fastest of ``repeats`` epochs.
"""
import argparse
import os
import resource
import sys
import time
from collections import defaultdict
from contextlib import contextmanager

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.threads import set_omp_threads  # noqa: E402

set_omp_threads()  # before mxnet loads (common/threads.py)
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import autograd  # noqa: E402

import config  # noqa: E402
from bench.shared import (BenchError, add_json_arg, add_step_args, bench_main, check_common, new_trainer,  # noqa: E402
                          quartiles)
from common.cli import OneLineParser  # noqa: E402

TARGET_EPOCH_RATIO = 1.10
TARGET_STEP_OVERHEAD = 1.03
PHASES = (("data", "data loading"), ("depth_fwd", "depth net forward"),
          ("conf_fwd", "confidence net forward (labeled + unlabeled)"),
          ("backward", "backward of both nets (one pass)"), ("cache", "pseudo-label cache read, write, flush"),
          ("losses_other", "losses, sharding, read-back (rest of the step)"), ("optimiser", "optimiser steps (SGD + Adam)"))


def build_parser():
    parser = OneLineParser(prog="python bench/train_step.py", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    add_step_args(parser, 2, "timed epochs of each kind; timed passes over the steps")
    parser.add_argument("--no-imperative", action="store_true",
                        help="skip the op-by-op train_step (5-6x slower than hybridized; minutes at 320x240)")
    add_json_arg(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def check_args(args):
    check_common(args, ("batch", "steps", "repeats"))


# ---- data and trainers ------------------------------------------------------------------
def build_data(root, size, n_labeled, labeled_frac):
    """A prepared dir of synthetic scenes at ``size``: ``n_labeled / labeled_frac`` train images, 1 test image."""
    from data.prepare import prepare
    from data.synthetic import generate, write_official
    n_train = max(n_labeled + 1, int(round(n_labeled / labeled_frac)))
    images, depths = generate(n_train + 1, seed=0, height=size[1], width=size[0])
    mat, splits = write_official(os.path.join(root, "raw"), images, depths, np.arange(n_train), [n_train])
    prep = os.path.join(root, "prepared")
    prepare(mat, splits, prep, seed=0, size=size, copies=1, progress=False)
    return prep


def make_trainer(data, run_dir, args, lambda_semi):
    """A Trainer as train.py builds it; semi_start 1: epoch 0 fills the cache, epoch 1 is semi-supervised."""
    return new_trainer(data, run_dir, ["--batch-size", str(args.batch), "--labeled-frac", str(args.labeled_frac),
                                       "--lambda-semi", str(lambda_semi), "--epochs", "100", "--log-every", "1000000"])


def semi_batches(trainer, epoch):
    """The (labeled, unlabeled) batches of one semi-supervised epoch (the trainer's own plan), in memory."""
    assert trainer.unlabeled_phase(epoch) == "semi", epoch
    return [(labeled, unlabeled) for _, labeled, unlabeled, _ in trainer.epoch_steps(epoch)]


# ---- timing -------------------------------------------------------------------------------
def seconds(fn):
    """Wall time of ``fn()`` until every queued MXNet operation has finished."""
    mx.nd.waitall()
    start = time.perf_counter()
    fn()
    mx.nd.waitall()
    return time.perf_counter() - start


def step_seconds(step, bar):
    """Seconds of one ``step()`` until every queued MXNet operation has finished."""
    elapsed = seconds(step)
    bar.update(1)
    return elapsed


def interleaved_steps(trainer, batches, steps, repeats, bar):
    """Seconds of every timed step of each ``steps[name](trainer, labeled, unlabeled)``, in order.

    The kinds alternate batch by batch, so a burst of load from other processes
    hits all of them alike (sample k of every kind comes from the same round);
    each starts with one untimed warm-up step.
    """
    times = {name: [] for name in steps}
    for name, step in steps.items():
        step_seconds(lambda: step(trainer, *batches[0]), bar)
    for _ in range(repeats):
        for labeled, unlabeled in batches:
            for name, step in steps.items():
                times[name].append(step_seconds(lambda: step(trainer, labeled, unlabeled), bar))
    return times


def paired_ratio(times, over):
    """Median and quartiles of ``times[k] / over[k]``, the two kinds' steps of one round.

    On a shared 2-core machine a step's time drifts by 10-20 % within a minute and the
    kinds of one round see much the same load (correlation 0.65 over 24 rounds at 160x128,
    2026-12-03): there, the median of 6 paired ratios spread by 0.027 (sd), two medians'
    ratio by 0.032.  Both need many rounds to tell 1.03 from 1.
    """
    ratios = np.asarray(times, dtype=float) / np.asarray(over, dtype=float)
    return float(np.median(ratios)), [float(q) for q in np.percentile(ratios, [25, 75])]


def plain_step(epoch):
    def step(trainer, labeled, unlabeled):
        trainer.train_step(labeled, unlabeled, epoch, "semi")
    return step


def bare_forward_backward(trainer, labeled, unlabeled):
    """Both networks forward + backward on the step's shapes, nothing else (no losses, cache, optimiser)."""
    image, u_image = labeled[0], unlabeled[0]
    n = image.shape[0]
    with autograd.record():
        pred = trainer.depth_net(mx.nd.concat(image, u_image, dim=0))
        conf = trainer.conf_net(image, pred[:n].detach())
        with autograd.pause():  # as in the step: the unlabeled confidence is inference only
            trainer.conf_net(u_image, pred[n:].detach())
    autograd.backward([pred, conf])


def bare_step(optimisers):
    """``bare_forward_backward`` and then SGD + Adam updates as a plain MXNet script makes them:
    ``gluon.Trainer``s of their own with MXNet's defaults, on the same parameters."""
    def step(trainer, labeled, unlabeled):
        bare_forward_backward(trainer, labeled, unlabeled)
        for optimiser in optimisers:
            optimiser.step(1)
    return step


def plain_optimisers(trainer):
    """SGD (momentum, wd) for the depth net and Adam for the confidence net, MXNet's defaults otherwise."""
    from mxnet import gluon
    o = trainer.opts
    return (gluon.Trainer(trainer.depth_net.collect_params(), "sgd",
                          {"learning_rate": o.lr, "momentum": o.momentum, "wd": o.wd}, kvstore=None),
            gluon.Trainer(trainer.conf_net.collect_params(), "adam", {"learning_rate": o.conf_lr}, kvstore=None))


class PhaseClock:
    """Seconds per phase, with ``mx.nd.waitall()`` at both ends of every span.

    Spans nest: a phase's total excludes the spans opened inside it, so the
    phases of one step add up to the step.
    """

    def __init__(self):
        self.total = defaultdict(float)
        self.open = []  # [name, start, seconds of the spans inside], innermost last

    def start(self, name):
        mx.nd.waitall()
        self.open.append([name, time.perf_counter(), 0.0])

    def stop(self, name):
        mx.nd.waitall()
        opened, started, inner = self.open.pop()
        assert opened == name, (opened, name)
        elapsed = time.perf_counter() - started
        self.total[name] += elapsed - inner
        if self.open:
            self.open[-1][2] += elapsed

    @contextmanager
    def span(self, name):
        self.start(name)
        yield
        self.stop(name)


@contextmanager
def instrumented(trainer, clock):
    """Times every forward of both nets (forward hooks) and the trainer's phases (``trainer.clock``)."""
    handles = []
    for net, name in ((trainer.depth_net, "depth_fwd"), (trainer.conf_net, "conf_fwd")):
        handles.append(net.register_forward_pre_hook(lambda block, inputs, name=name: clock.start(name)))
        handles.append(net.register_forward_hook(lambda block, inputs, out, name=name: clock.stop(name)))
    trainer.clock = clock
    try:
        yield
    finally:
        for handle in handles:
            handle.detach()
        trainer.clock = None


def instrumented_epochs(trainer, first_epoch, repeats, bar):
    """Mean seconds per phase over ``repeats`` semi-supervised epochs, data loaded as in training."""
    clock = PhaseClock()
    with instrumented(trainer, clock):
        for epoch in range(first_epoch, first_epoch + repeats):
            instrumented_epoch(trainer, epoch, clock, bar)
    clock.total["losses_other"] = clock.total.pop("step")  # what no phase of the step claims
    steps = trainer.steps * repeats
    phases = {k: clock.total[k] / steps for k, _ in PHASES}
    phases["total"] = sum(phases[k] for k, _ in PHASES)
    return phases


def instrumented_epoch(trainer, epoch, clock, bar):
    """``Trainer.train_step`` over one epoch (the trainer's own plan), its phases timed on ``clock``."""
    assert trainer.unlabeled_phase(epoch) == "semi", epoch
    steps = trainer.epoch_steps(epoch)
    for _ in range(trainer.steps):
        with clock.span("data"):
            _, labeled, unlabeled, counts = next(steps)
        with clock.span("step"):
            trainer.train_step(labeled, unlabeled, epoch, "semi", counts)
        bar.update(1)


def timed_epochs(trainers, repeats, bar):
    """Fastest of ``repeats`` epochs of each trainer, taken in turns.

    ``trainers`` maps a name to ``(trainer, first_epoch)``; epoch ``first_epoch - 1``
    must have run already (the warm-up).
    """
    times = {name: [] for name in trainers}
    for k in range(repeats):
        for name, (trainer, first) in trainers.items():
            times[name].append(seconds(lambda: trainer.run_epoch(first + k)))
            bar.update(trainer.steps)
    return {name: min(t) for name, t in times.items()}


def peak_rss_mib():
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---- the whole measurement -------------------------------------------------------------------------
def measure(args, root, bar):
    """Every figure of the report, as a dict.

    The semi-supervised trainer is measured alone first, so that the peak memory is
    that of one training process; the supervised trainer only joins for the epochs.
    """
    data = build_data(root, args.size, args.batch * args.steps, args.labeled_frac)
    bar.set_description("build")
    semi = make_trainer(data, os.path.join(root, "semi"), args, config.LAMBDA_SEMI)
    n_l, n_u, steps, r = len(semi.labeled), len(semi.unlabeled), semi.steps, args.repeats
    bar.total = steps * (3 + (6 if args.no_imperative else 7) * r) + (3 if args.no_imperative else 4)
    bar.refresh()
    bar.set_description("warm-up")
    semi.run_epoch(0)  # builds the graphs and fills the cache (phase "fill")
    bar.update(steps)

    batches = semi_batches(semi, 1)
    bar.set_description("train_step / bare / plain script")
    from bench.plain_step import PlainStep
    script = PlainStep(args.batch, semi.unlabeled_batch, args.size[1], args.size[0])  # same shapes, same process
    kinds = {"train_step": plain_step(1), "bare": bare_step(plain_optimisers(semi)), "bare_fwd_bwd": bare_forward_backward,
             "plain_script": lambda trainer, labeled, unlabeled, step=script.step: step()}
    samples = interleaved_steps(semi, batches, kinds, r, bar)
    hybrid = {name: float(np.median(t)) for name, t in samples.items()}
    overhead, overhead_iqr = paired_ratio(samples["train_step"], samples["bare"])
    over_plain, over_plain_iqr = paired_ratio(samples["train_step"], samples["plain_script"])
    del script, kinds  # its networks' memory, before the peak is read
    bar.set_description("instrumented step")
    phases = instrumented_epochs(semi, 2, r, bar)
    imperative = None if args.no_imperative else imperative_step(semi, batches, r, bar)
    peak_rss = peak_rss_mib()

    bar.set_description("semi / supervised epochs")
    for net in (semi.depth_net, semi.conf_net):
        net.hybridize(static_alloc=True)  # as the Trainer runs
    sup = make_trainer(data, os.path.join(root, "sup"), args, 0.0)
    for trainer, epoch in ((semi, r + 3), (sup, 0)):  # warm-up: builds the graphs
        trainer.run_epoch(epoch)
        bar.update(steps)
    epochs = timed_epochs({"semi": (semi, r + 4), "supervised": (sup, 1)}, r, bar)

    return {
        "settings": {"size": list(args.size), "batch": args.batch, "steps_per_epoch": steps, "repeats": r,
                     "labeled_frac": args.labeled_frac, "labeled_images": n_l, "unlabeled_images": n_u,
                     "unlabeled_per_step": semi.unlabeled_batch, "cpu_count": os.cpu_count(),
                     "mxnet": mx.__version__, "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
        "instrumented_step_seconds": phases,
        "train_step_seconds": {"hybridized": hybrid["train_step"], "imperative": imperative},
        "imperative_over_hybridized": imperative and imperative / hybrid["train_step"],
        "bare_forward_backward_seconds": hybrid["bare_fwd_bwd"],
        "bare_step_seconds": hybrid["bare"],
        "step_overhead_ratio": overhead, "step_overhead_ratio_iqr": overhead_iqr,
        "plain_script_step_seconds": hybrid["plain_script"],
        "train_step_over_plain_script": over_plain, "train_step_over_plain_script_iqr": over_plain_iqr,
        "step_samples_seconds": samples,
        "epoch_seconds": epochs,
        "epoch_ratio": epochs["semi"] / epochs["supervised"],
        "epoch_ratio_per_image": (epochs["semi"] / (n_l + n_u)) / (epochs["supervised"] / n_l),
        "peak_rss_mib": peak_rss,
        "cache_bytes": semi.cache.nbytes(),
    }


def imperative_step(trainer, batches, repeats, bar):
    """Median seconds of ``train_step`` with both nets run op by op (``hybridize(active=False)``)."""
    bar.set_description("train_step, imperative")
    for net in (trainer.depth_net, trainer.conf_net):
        net.hybridize(active=False)
    return float(np.median(interleaved_steps(trainer, batches, {"train_step": plain_step(repeats + 2)}, repeats,
                                             bar)["train_step"]))


def report(r, stream=None):
    """The figures as a readable table (on stdout by default)."""
    stream = stream or sys.stdout
    s = r["settings"]
    w = lambda text="": print(text, file=stream)  # noqa: E731
    w("train step benchmark: %dx%d, %d labeled + %d unlabeled images per step, %d steps per epoch, %s CPUs"
      % (s["size"][0], s["size"][1], s["batch"], s["unlabeled_per_step"], s["steps_per_epoch"], s["cpu_count"]))
    w()
    w("semi-supervised step, per phase (instrumented: mx.nd.waitall() around every phase adds syncs)")
    p = r["instrumented_step_seconds"]
    for key, label in PHASES:
        w("  %-48s %8.3f s  %5.1f %%" % (label, p[key], 100 * p[key] / p["total"]))
    w("  %-48s %8.3f s" % ("total, instrumented", p["total"]))
    w()
    t = r["train_step_seconds"]
    w("plain train_step (no added syncs inside, data preloaded; median of %d steps; ratios: median of the"
      % (s["repeats"] * s["steps_per_epoch"]))
    w("  rounds' paired ratios, [quartiles])")
    w("  %-48s %8.3f s" % ("hybridized", t["hybridized"]))
    if t["imperative"]:
        w("  %-48s %8.3f s  (x%.2f)" % ("imperative (hybridize(active=False))", t["imperative"],
                                       r["imperative_over_hybridized"]))
    w("  %-48s %8.3f s" % ("bare forward + backward of both nets", r["bare_forward_backward_seconds"]))
    w("  %-48s %8.3f s" % ("bare step: the same + SGD / Adam (MXNet defaults)", r["bare_step_seconds"]))
    w("  %-48s %8.3f    %s (target <= %.2f)  %s" % ("step overhead: train_step / bare", r["step_overhead_ratio"],
                                                      verdict(r["step_overhead_ratio"], TARGET_STEP_OVERHEAD),
                                                      TARGET_STEP_OVERHEAD, quartiles(r, "step_overhead_ratio")))
    w("  %-48s %8.3f s" % ("plain script's step (bench/plain_step.py)", r["plain_script_step_seconds"]))
    w("  %-48s %8.3f    %s (target <= %.2f)  %s" % ("train_step / plain script", r["train_step_over_plain_script"],
                                                      verdict(r["train_step_over_plain_script"], TARGET_STEP_OVERHEAD),
                                                      TARGET_STEP_OVERHEAD, quartiles(r, "train_step_over_plain_script")))
    w()
    e = r["epoch_seconds"]
    w("epochs (Trainer.run_epoch, data loading included; fastest of %d)" % s["repeats"])
    w("  %-48s %8.3f s" % ("semi-supervised (%d + %d images)" % (s["labeled_images"], s["unlabeled_images"]), e["semi"]))
    w("  %-48s %8.3f s" % ("supervised, lambda = 0 (%d images)" % s["labeled_images"], e["supervised"]))
    w("  %-48s %8.3f    %s (target <= %.2f)" % ("semi / supervised epoch", r["epoch_ratio"],
                                                  verdict(r["epoch_ratio"], TARGET_EPOCH_RATIO), TARGET_EPOCH_RATIO))
    w("  %-48s %8.3f    %s (target <= %.2f)" % ("semi / supervised, per processed image", r["epoch_ratio_per_image"],
                                                  verdict(r["epoch_ratio_per_image"], TARGET_EPOCH_RATIO),
                                                  TARGET_EPOCH_RATIO))
    w("    (the semi epoch also trains on the %d unlabeled images the supervised one never sees)" % s["unlabeled_images"])
    w()
    w("  %-48s %8.1f MiB" % ("peak resident memory (semi-supervised trainer)", r["peak_rss_mib"]))
    w("  %-48s %8d bytes" % ("pseudo-label cache", r["cache_bytes"]))


def verdict(value, target):
    return "met" if value <= target else "MISSED"


def main(argv=None):
    """Command-line entry point; returns the exit status (2 on bad settings)."""
    return bench_main(argv, build_parser, check_args, measure, report, (BenchError, ValueError), "train_step", "step")


if __name__ == "__main__":
    sys.exit(main())
