"""Evaluation and prediction throughput against the training forward pass, per image.

    python bench/inference.py [--size 160x128] [--batch 8] [--images 24] [--repeats 3] [--json out.json]

Builds synthetic scenes in a temporary directory (NYU's 640x480 frames, prepared at
``--size``), a trainer as train.py builds it (``--pretrained 0``, ``--train-batch``
labeled images per step at ``--labeled-frac``, no validation split) and a checkpoint
of it, then measures in one run, in turns so that load from other processes hits
every kind alike:

* the training forward: depth net on the step's labeled + unlabeled images and the
  confidence net on both halves, under ``autograd.record`` in training mode (BatchNorm
  on batch statistics), exactly the forward of ``Trainer.compute_losses`` without the
  losses and cache;
* the evaluate.py path: ``evaluation.scoring.score_test_set`` over the test set, the
  networks loaded as evaluate.py loads them (``evaluation.runs.load_run``), scoring
  at full 640x480 resolution under the default protocol;
* the predict.py path: ``predict.write_predictions`` over the test frames as 640x480
  PNG files, writing the four output files per image into a temporary folder, with
  0 and with 1 DataLoader worker process;
* the networks alone: ``evaluation.inference.predict`` (forward + read-back, no
  scoring) with the fused oneDNN graph and without it (``static_shape`` only), and
  the data loading alone, to show where the rest of the time goes;
* with oneDNN: the evaluate.py, predict.py and networks-alone paths again with both
  networks in INT8 (``--int8``, ``evaluation.quantize``, calibrated on the run's
  labeled training rows; building the INT8 graphs is not timed).

A figure is images per second in the fastest of ``repeats`` passes: 3 steps of the
training forward, or the test set once for the other kinds; each kind starts with an
untimed pass (graphs are built on the first call).  Target:
both inference paths >= 2x the training forward per image.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.threads import set_omp_threads  # noqa: E402

set_omp_threads()  # before mxnet loads (common/threads.py)
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import autograd, gluon  # noqa: E402
from mxnet.runtime import Features  # noqa: E402

import config  # noqa: E402
from bench.shared import BenchError, add_json_arg, bench_main, check_common, new_trainer  # noqa: E402
from common.cli import OneLineParser  # noqa: E402

TARGET_RATIO = 2.0
FRAME = (640, 480)  # NYU's frames: what evaluate.py scores against and predict.py typically reads
TRAIN_STEPS_PER_REPEAT = 3


def build_parser():
    parser = OneLineParser(prog="python bench/inference.py", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=config.parse_size, default=(160, 128),
                        help="network input WIDTHxHEIGHT, multiples of 16. default: 160x128")
    parser.add_argument("--batch", type=int, default=8,
                        help="images per inference forward pass (evaluate.py / predict.py --batch-size). "
                             "default: %(default)s")
    parser.add_argument("--train-batch", type=int, default=config.BATCH_SIZE,
                        help="labeled images per training step. default: %(default)s")
    parser.add_argument("--labeled-frac", type=float, default=0.25,
                        help="labeled share of the training images (sets the unlabeled images per step), "
                             "in (0, 1). default: %(default)s")
    parser.add_argument("--images", type=int, default=24, help="test images per inference pass. default: %(default)s")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of each kind. default: %(default)s")
    add_json_arg(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def check_args(args):
    check_common(args, ("batch", "train_batch", "images", "repeats"), "the training step needs unlabeled images")


# ---- data, run, networks -------------------------------------------------------------------
def build_data(root, size, n_train, n_test):
    """Prepared synthetic set at ``size`` (from 640x480 frames) and the test frames as PNG files."""
    import cv2
    from data.prepare import prepare
    from data.synthetic import generate, raw_depths, write_official
    images, depths = generate(n_train + n_test, seed=0, height=FRAME[1], width=FRAME[0])
    mat, splits = write_official(os.path.join(root, "raw"), images, depths, np.arange(n_train),
                                 np.arange(n_train, n_train + n_test), raw=raw_depths(depths))
    prep = os.path.join(root, "prepared")
    prepare(mat, splits, prep, seed=0, size=size, copies=1, progress=False)
    photos = os.path.join(root, "photos")
    os.makedirs(photos)
    for i in range(n_train, n_train + n_test):
        cv2.imwrite(os.path.join(photos, "frame%03d.png" % i), images[i][..., ::-1])
    return prep, photos


def make_trainer(data, run_dir, args):
    """A Trainer as train.py builds it, its run directory started."""
    return new_trainer(data, run_dir, ["--batch-size", str(args.train_batch), "--labeled-frac", str(args.labeled_frac),
                                       "--val-frac", "0", "--epochs", "10"])


def training_forward(trainer):
    """The forward of one semi-supervised step (``Trainer.compute_losses`` without losses and cache)."""
    n, u = trainer.opts.batch_size, trainer.unlabeled_batch
    h, w = trainer.height, trainer.width
    image, u_image = mx.nd.random.normal(shape=(n, 3, h, w)), mx.nd.random.normal(shape=(u, 3, h, w))

    def step():
        with autograd.record():
            pred = trainer.depth_net(mx.nd.concat(image, u_image, dim=0))
            trainer.conf_net(image, pred[:n].detach())
            with autograd.pause():  # as in process_unlabeled
                trainer.conf_net(u_image, pred[n:].detach())
    return step, n + u


def unfused(run_dir, ctxs):
    """The run's networks hybridized with static shapes but without oneDNN's fusion."""
    from evaluation.runs import load_networks
    depth_net, conf_net, _ = load_networks(run_dir, "last", ctxs)
    for net in (depth_net, conf_net):
        net.hybridize(static_alloc=True, static_shape=True, backend=None)
    return depth_net, conf_net


# ---- timing -------------------------------------------------------------------------------
def seconds(fn):
    """Wall and CPU time (this process, all threads) of ``fn()`` until every queued MXNet
    operation has finished."""
    mx.nd.waitall()
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    mx.nd.waitall()
    return time.perf_counter() - start, time.process_time() - cpu


def consume(iterable):
    for _ in iterable:
        pass


def measure(args, root, bar):
    """Every figure of the report, as a dict."""
    from evaluation.inference import predict
    from evaluation.metrics import DEFAULT_PROTOCOL, PROTOCOLS
    from evaluation.quantize import DEFAULT_CALIB_IMAGES, int8_nets
    from evaluation.runs import load_run
    from evaluation.scoring import score_test_set
    from predict import ImageFiles, find_images, image_sizes, write_predictions
    load_before = os.getloadavg()[0]  # other processes on the machine: the figures are not comparable without it
    n_labeled = args.train_batch
    n_train = max(n_labeled + 1, int(round(n_labeled / args.labeled_frac)))
    bar.set_description("synthetic data")
    data, photos = build_data(root, args.size, n_train, args.images)
    run_dir = os.path.join(root, "run")
    trainer = make_trainer(data, run_dir, args)
    train_step, train_images = training_forward(trainer)
    train_step()  # builds the training graph; BatchNorm statistics move as in training
    trainer.save("last", 0, 0)

    protocol = PROTOCOLS[DEFAULT_PROTOCOL]
    run = load_run(run_dir, "last", protocol=protocol)
    nets, ctxs, test = run["nets"], run["ctxs"], run["test"]
    plain_nets = unfused(run_dir, ctxs)
    paths, stems = find_images([photos])
    sizes = image_sizes(paths, progress=False)
    out = os.path.join(root, "predictions")
    b, n = args.batch, args.images
    kinds = {
        "evaluate": lambda: score_test_set(run, protocol, b, progress=False),
        "predict": lambda: write_predictions(*nets, paths, stems, sizes, args.size, out, b, ctxs, progress=False),
        "predict_1_worker": lambda: write_predictions(*nets, paths, stems, sizes, args.size, out, b, ctxs,
                                                      progress=False, num_workers=1),
        "forward_fused": lambda: consume(predict(*nets, test, b, ctxs, progress=False)),
        "forward_static_shape": lambda: consume(predict(*plain_nets, test, b, ctxs, progress=False)),
        "loading_test_set": lambda: consume(gluon.data.DataLoader(test, batch_size=b, last_batch="keep")),
        "loading_photos": lambda: consume(gluon.data.DataLoader(ImageFiles(paths, args.size), batch_size=b,
                                                                 last_batch="keep")),
    }
    int8 = None
    if Features().is_enabled("MKLDNN"):  # INT8 kernels exist only there
        run8 = load_run(run_dir, "last", protocol=protocol)
        run8["nets"], int8 = int8_nets(run8, run_dir, DEFAULT_CALIB_IMAGES)
        nets8 = run8["nets"]
        kinds.update({
            "evaluate_int8": lambda: score_test_set(run8, protocol, b, progress=False),
            "predict_int8": lambda: write_predictions(*nets8, paths, stems, sizes, args.size, out, b, ctxs,
                                                      progress=False),
            "forward_int8": lambda: consume(predict(*nets8, test, b, ctxs, progress=False)),
        })
    bar.total = (len(kinds) * n + TRAIN_STEPS_PER_REPEAT * train_images) * (args.repeats + 1)
    bar.refresh()
    kinds = dict(training_forward=lambda: [train_step() for _ in range(TRAIN_STEPS_PER_REPEAT)], **kinds)
    images = dict({name: n for name in kinds}, training_forward=TRAIN_STEPS_PER_REPEAT * train_images)
    times, cpu_times = {name: [] for name in kinds}, {name: [] for name in kinds}
    for k in range(args.repeats + 1):  # pass 0: untimed warm-up of every kind
        bar.set_description("warm-up" if k == 0 else "pass %d of %d" % (k, args.repeats))
        for name, fn in kinds.items():
            elapsed, cpu = seconds(fn)
            bar.update(images[name])
            if k:
                times[name].append(elapsed / images[name])
                cpu_times[name].append(cpu / images[name])
    rates = {name: 1 / min(t) for name, t in times.items()}
    train_rate = rates.pop("training_forward")
    # CPU seconds per image: the work, less disturbed by other processes than the wall time
    # (OpenMP threads waiting at a barrier count too; a DataLoader worker process does not)
    cpu_per_image = {name: min(t) for name, t in cpu_times.items()}
    result = {
        "settings": {"size": list(args.size), "frame": list(FRAME), "batch": b, "test_images": n,
                     "train_labeled_per_step": n_labeled, "train_unlabeled_per_step": trainer.unlabeled_batch,
                     "repeats": args.repeats, "protocol": protocol.name, "cpu_count": os.cpu_count(),
                     "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "mxnet": mx.__version__,
                     "onednn": Features().is_enabled("MKLDNN"),
                     "load_average_1min_before_after": [load_before, os.getloadavg()[0]]},
        "training_forward_images_per_s": train_rate,
        "images_per_s": rates,
        "evaluate_over_training_forward": rates["evaluate"] / train_rate,
        "predict_over_training_forward": rates["predict"] / train_rate,
        "forward_fused_over_training_forward": rates["forward_fused"] / train_rate,
        "cpu_seconds_per_image": cpu_per_image,
        "int8": int8 and {"calib_images": int8["calib_images"], "calibration": int8["calibration"]},
    }
    if int8:
        for kind in ("evaluate_int8", "predict_int8", "forward_int8"):
            result[kind + "_over_training_forward"] = rates[kind] / train_rate
    return result


def verdict(ratio):
    return "met" if ratio >= TARGET_RATIO else "MISSED"


def report(r, stream=None):
    """The figures as a readable table (on stdout by default)."""
    stream = stream or sys.stdout
    s, rates = r["settings"], r["images_per_s"]
    w = lambda text="": print(text, file=stream)  # noqa: E731
    w("inference benchmark: networks at %dx%d, frames %dx%d, batch %d, %d test images, OMP_NUM_THREADS=%s, "
      "%s CPUs, mxnet %s" % (s["size"][0], s["size"][1], s["frame"][0], s["frame"][1], s["batch"], s["test_images"],
                             s["omp_num_threads"], s["cpu_count"], s["mxnet"]))
    w("load average (1 min) before / after: %.2f / %.2f" % tuple(s["load_average_1min_before_after"]))
    w("INT8: %s" % ("%s calibration on %d labeled training images" % (r["int8"]["calibration"],
                                                                     r["int8"]["calib_images"])
                    if r.get("int8") else "not measured (this MXNet has no oneDNN)"))
    w()
    rows = (("training_forward", "training forward (%d labeled + %d unlabeled, autograd.record)"
             % (s["train_labeled_per_step"], s["train_unlabeled_per_step"])),
            ("evaluate", "evaluate.py path (score_test_set, protocol %s)" % s["protocol"]),
            ("predict", "predict.py path (write_predictions, 4 files per image)"),
            ("predict_1_worker", "predict.py path, --num-workers 1"),
            ("forward_fused", "networks alone, oneDNN fused (inference_mode)"),
            ("forward_static_shape", "networks alone, static_shape without fusion"),
            ("loading_test_set", "loading alone: test.h5 rows"),
            ("loading_photos", "loading alone: decode + resize %dx%d PNGs" % tuple(s["frame"])),
            ("evaluate_int8", "INT8 (--int8): evaluate.py path"),
            ("predict_int8", "INT8 (--int8): predict.py path"),
            ("forward_int8", "INT8 (--int8): networks alone"))
    cpu = r["cpu_seconds_per_image"]
    w("  %-58s %8.2f img/s  %6.3f CPU s/img" % (rows[0][1], r["training_forward_images_per_s"], cpu["training_forward"]))
    for key, label in rows[1:]:
        if key not in rates:
            continue
        w("  %-58s %8.2f img/s  %6.3f CPU s/img" % (label, rates[key], cpu[key]))
    w()
    for key, label in (("evaluate_over_training_forward", "evaluate.py path / training forward"),
                       ("predict_over_training_forward", "predict.py path / training forward"),
                       ("forward_fused_over_training_forward", "networks alone / training forward"),
                       ("evaluate_int8_over_training_forward", "INT8 evaluate.py path / training forward"),
                       ("predict_int8_over_training_forward", "INT8 predict.py path / training forward"),
                       ("forward_int8_over_training_forward", "INT8 networks alone / training forward")):
        if key not in r:
            continue
        w("  %-58s %8.2f    %s (target >= %.1f)" % (label, r[key], verdict(r[key]), TARGET_RATIO))


def main(argv=None):
    """Command-line entry point; returns the exit status (2 on bad settings)."""
    return bench_main(argv, build_parser, check_args, measure, report, (BenchError, ValueError), "inference", "img")


if __name__ == "__main__":
    sys.exit(main())
