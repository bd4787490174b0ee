"""Score a trained run: test set (Table 2), pseudo-labels (Table 1), confidence, figures.

    python evaluate.py --run runs/NAME                       # RUN/eval.json
    python evaluate.py --run runs/NAME --table1              # + RUN/table1.json
    python evaluate.py --run runs/NAME --confidence          # + confidence.json, sparsification.png, reliability.png
    python evaluate.py --run runs/NAME --figures 6           # + qualitative.png
    python evaluate.py --run runs/NAME --int8                # INT8 on CPU -> RUN/eval_int8.json
    python evaluate.py --run runs/NAME --protocol full       # RUN/eval_full.json (eval.json untouched)
    python evaluate.py --predictions pred.npy --data datasets/nyu   # score external (M, H', W') depth maps
    python evaluate.py --predictions bts_pngs/ --data datasets/nyu  # 16-bit mm PNGs (BTS / AdaBins dumps)
    python evaluate.py --run runs/NAME --protocol full --crop eigen --align median   # compose a protocol
    python evaluate.py --run runs/NAME --per-image scores.csv                        # + one row per test image

One file per scoring: nothing one scoring writes is overwritten by another.  ``--checkpoint
last`` with the default protocol writes the names above; any other checkpoint adds its name
(eval_best.json, table1_best.json, ...), any other protocol its name (eval_full.json,
eval_eigen-gt-filled-align-median.json, confidence_full.json, ...), ``--flip-tta`` adds
``_flip`` and ``--int8`` ``_int8`` (eval_best_full_flip_int8.json).  Table 1 depends on neither
protocol nor flip (table1.json, table1_best_int8.json).  eval.json records the scored
checkpoint's ``trained_epochs`` / ``trained_iteration`` against the run's ``epochs``; a run that
stopped early is named on stderr.

``--int8`` runs both networks quantized to INT8 by oneDNN (CPU only; calibrated on
``--calib-images`` of the run's labeled training rows, evaluation/quantize.py): faster,
numbers slightly different from float32.  Its files end in ``_int8`` (eval_int8.json,
eval_best_int8.json, ...), they record the calibration under ``int8``, and the printed
table says INT8, so they are never read as the float32 results.

Predictions are made at 1/4 of the input resolution and upsampled bilinearly
to the full-resolution ground truth of ``test.h5`` with the pixel convention
of ``data.grid`` that the training targets use.  A protocol is a preset
(``--protocol``, default ``eigen``) with any of ``--gt --crop --min-depth
--max-depth --average --align --align-space`` changed; the definitions are in
``evaluation/metrics.py`` and the peers' protocols in README.md.  ``eval.json``
holds the headline numbers under ``metrics`` and those of every preset under
``metrics_by_protocol``.  Bad input prints one ``error: ...`` line and exits
with status 2 before anything is written.
"""
import argparse
import os
import sys

from common.threads import set_omp_threads

set_omp_threads()  # before mxnet loads (common/threads.py)
from common.cli import OneLineParser, add_inference_args  # noqa: E402
from common.files import write_json_atomic, write_text_atomic  # noqa: E402
from data.errors import edge_errors, one_line  # noqa: E402
from evaluation import EvaluationError, figures  # noqa: E402
from evaluation.external import MATCHES  # noqa: E402
from evaluation.metrics import (ALIGN_SPACES, ALIGNMENTS, AVERAGES, CROPS, DEFAULT_PROTOCOL, GT_CHOICES,  # noqa: E402
                                PROTOCOLS, make_protocol)
from evaluation.pseudo_labels import score_pseudo_labels  # noqa: E402
from evaluation.quantize import DEFAULT_CALIB_IMAGES, INT8_CPU_ONLY, int8_nets  # noqa: E402
from evaluation.report import scoring_file  # noqa: E402
from evaluation.runs import extent_caption, load_run  # noqa: E402
from evaluation.scoring import per_image_table, score_predictions, score_test_set  # noqa: E402
from rundir.layout import RunError  # noqa: E402

# Table 2's columns first, then the extra measures.
TABLE_ORDER = ("rel", "log10", "rms", "d1", "d2", "d3", "sq_rel", "rms_log", "silog")


def build_parser():
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = parser.add_argument_group("RUN")
    g.add_argument("--run", help="run directory made by train.py")
    g.add_argument("--data", default=None, help="prepared data directory. default: the run's config.json 'data'")
    add_inference_args(g, "test images", "DataLoader worker processes", "; writes *_int8 files")
    g = parser.add_argument_group("EVALUATION")
    g.add_argument("--protocol", choices=sorted(PROTOCOLS), default=DEFAULT_PROTOCOL,
                   help="preset of the headline numbers (evaluation/metrics.py): eigen = raw gt, eigen crop, "
                        "1e-3..10 m, per image; full = filled gt, whole frame, pooled. default: %(default)s")
    g.add_argument("--gt", choices=GT_CHOICES, help="ground truth: raw Kinect depth (0 = none) or NYU's "
                                                   "in-painted depth. default: the preset's (eigen: raw)")
    g.add_argument("--crop", help="%s, or TOP:BOTTOM:LEFT:RIGHT slices of the 480x640 frame. default: the preset's"
                                  % "|".join(CROPS))
    g.add_argument("--min-depth", type=float, help="score ground truth > this (m). default: the preset's")
    g.add_argument("--max-depth", type=float, help="score ground truth < this (m); predictions are clipped to the "
                                                   "range. default: the preset's")
    g.add_argument("--average", choices=AVERAGES, help="image: mean of per-image metrics; pixel: pooled. "
                                                       "default: the preset's")
    g.add_argument("--align", choices=ALIGNMENTS, default="none",
                   help="per-image alignment of relative predictions before clipping. default: %(default)s")
    g.add_argument("--align-space", choices=ALIGN_SPACES, default="depth",
                   help="space of the lstsq scale-and-shift fit. default: %(default)s")
    g.add_argument("--flip-tta", action="store_true",
                   help="average each prediction with the mirrored prediction of the mirrored image (--run)")
    g.add_argument("--per-image", metavar="FILE.csv", help="also write the headline metrics of every test image")
    g.add_argument("--table1", action="store_true",
                   help="rel of the pseudo-labels on the unlabeled training rows at T_semi and 0 -> RUN/table1.json")
    g.add_argument("--confidence", action="store_true",
                   help="sparsification (AUSE, AURG) and reliability -> RUN/confidence.json + 2 PNGs")
    g.add_argument("--figures", type=int, default=0, metavar="N",
                   help="qualitative grid of N evenly spaced test images -> RUN/qualitative.png")
    g = parser.add_argument_group("EXTERNAL PREDICTIONS")
    g.add_argument("--predictions", help="instead of --run: an (M, H', W') float .npy of depth in metres, one map "
                                         "per test.h5 row in file order, or a folder of 16-bit PNGs in mm")
    g.add_argument("--match", choices=MATCHES,
                   help="PNG file names end in the NYU .mat index (source) or the test.h5 row. default: source")
    g.add_argument("--upsample", choices=("half-pixel", "align-corners"), default="half-pixel",
                   help="how --predictions smaller than the ground truth are resized to it: half-pixel centres "
                        "(cv2 INTER_LINEAR; ours, BTS) or align-corners (PyTorch align_corners=True; AdaBins, "
                        "ZoeDepth). default: %(default)s")
    g.add_argument("--out", help="output JSON of the test-set scores. default: PRED_eval.json next to PRED; for --run "
                                 "the scoring's own file in the run (eval.json, eval_full.json, eval_flip.json, ...)")
    return parser


def check_args(args):
    if bool(args.run) == bool(args.predictions):
        raise EvaluationError("give either --run RUN or --predictions PRED.npy --data DIR")
    if args.predictions:
        if not args.data:
            raise EvaluationError("--predictions needs --data DIR (the prepared test.h5 to score against)")
        if args.table1 or args.confidence or args.figures:
            raise EvaluationError("--table1, --confidence and --figures need a --run (networks), not --predictions")
        if args.flip_tta:
            raise EvaluationError("--flip-tta runs the networks on mirrored images: it needs --run")
        if args.match and not os.path.isdir(args.predictions):
            raise EvaluationError("--match is for a folder of PNGs; %s is not a folder" % args.predictions)
        if args.int8 or args.calib_images is not None:
            raise EvaluationError("--int8 and --calib-images run the networks: they need --run")
    elif args.match:
        raise EvaluationError("--match is for --predictions DIR (a folder of PNGs)")
    elif args.upsample != "half-pixel":
        raise EvaluationError("--upsample is for --predictions; a run's maps are resized as its training targets were")
    elif args.out and not args.out.lower().endswith(".json"):
        raise EvaluationError("--out %s: give a .json file name (the test-set scores; the other files go into "
                              "the run directory)" % args.out)
    if args.batch_size < 1 or args.figures < 0:
        raise EvaluationError("--batch-size must be >= 1 and --figures >= 0")
    if args.num_workers < 0:
        raise EvaluationError("--num-workers must be >= 0")
    if args.int8 and args.gpus:
        raise EvaluationError(INT8_CPU_ONLY)
    if args.calib_images is not None and not args.int8:
        raise EvaluationError("--calib-images is for --int8")
    if args.calib_images is not None and args.calib_images < 1:
        raise EvaluationError("--calib-images must be >= 1")
    if args.per_image and not args.per_image.lower().endswith(".csv"):
        raise EvaluationError("--per-image %s: give a .csv file name" % args.per_image)
    try:
        return make_protocol(args.protocol, gt=args.gt, crop=args.crop, min_depth=args.min_depth,
                             max_depth=args.max_depth, average=args.average, align=args.align,
                             align_space=args.align_space)
    except ValueError as err:
        raise EvaluationError(str(err))


def print_table(metrics, protocol, stream=None, int8=None):
    stream = stream or sys.stdout  # looked up at call time (a default argument would freeze it)
    names = [m for m in TABLE_ORDER if m in metrics]
    if int8:
        print("INT8 inference (oneDNN, %s calibration on %d labeled training images): not the float32 numbers"
              % (int8["calibration"], int8["calib_images"]), file=stream)
    print("protocol %s, %d images, %d pixels" % (protocol, metrics["n_images"], metrics["n_pixels"]), file=stream)
    print("  ".join("%8s" % m for m in names), file=stream)
    print("  ".join("%8.4f" % metrics[m] for m in names), file=stream)


def evaluate_run(args, protocol):
    """Every output requested for ``--run``; all scoring happens before the first file is written."""
    run = load_run(args.run, args.checkpoint, args.data, args.gpus, table1=args.table1, protocol=protocol)
    int8 = None
    if args.int8:  # the float32 networks are not used after this
        run["nets"], int8 = int8_nets(run, args.run, args.calib_images or DEFAULT_CALIB_IMAGES, args.verbose)
    scorer = score_test_set(run, protocol, args.batch_size, confidence=args.confidence, figures=args.figures,
                            per_image=bool(args.per_image), flip=args.flip_tta, progress=not args.no_progress,
                            num_workers=args.num_workers)
    result = scorer.metrics()
    result.update(checkpoint=run["checkpoint"], data=os.path.abspath(run["data"]), config=run["config"],
                  flip_tta=bool(args.flip_tta), int8=int8 or False, **run["extent"])
    if run["extent"]["trained_epochs"] < run["extent"]["epochs"]:
        print("note: %s is at epoch %d of %d: the run stopped early; continue it with python train.py --resume %s"
              % (run["checkpoint"], run["extent"]["trained_epochs"], run["extent"]["epochs"], args.run),
              file=sys.stderr)
    threads = run["config"].get("omp_num_threads")  # the numbers depend on it (README "CPU and GPU")
    caption = "%s%s; protocol %s%s%s" % (extent_caption(args.run, run["checkpoint"], run["extent"]),
                                         ", trained with OMP_NUM_THREADS=%s" % threads if threads else "",
                                         protocol.name, ", flip TTA" if args.flip_tta else "", ", int8" if int8 else "")
    table = per_image_table(scorer, run["test"])
    table1 = score_pseudo_labels(run, args.batch_size, progress=not args.no_progress) if args.table1 else None
    confidence = None
    if args.confidence:
        confidence = dict(scorer.confidence(), protocol=protocol.name, checkpoint=run["checkpoint"], int8=int8 or False)
    if table1:
        table1["int8"] = int8 or False
    print_table(result["metrics"], protocol.name, int8=int8)

    def out(name, by_protocol=True):  # one file per scoring (evaluation.report.scoring_file)
        return os.path.join(args.run, scoring_file(name, args.checkpoint, protocol.name if by_protocol else None,
                                                   args.flip_tta and by_protocol, int8))
    written = [write_json_atomic(args.out or out("eval.json"), result)]
    if table:
        written.append(write_text_atomic(args.per_image, table))
    if table1:
        for row in table1["rows"]:
            rel = "n/a (no pixel reaches T)" if row["rel"] is None else "%.4f" % row["rel"]
            print("Table 1  T=%.2f  rel %s  pixels kept %.3f" % (row["t_semi"], rel, row["kept_fraction"]))
        written.append(write_json_atomic(out("table1.json", by_protocol=False), table1))  # training rows, own rule
    if confidence:
        written.append(write_json_atomic(out("confidence.json"), confidence))
        written.append(figures.sparsification_plot(confidence["sparsification"], out("sparsification.png"), caption))
        written.append(figures.reliability_plot(confidence["reliability"], out("reliability.png"), caption))
    if scorer.figure_rows:
        rows = sorted(scorer.figure_rows, key=lambda r: r["id"])
        written.append(figures.qualitative_grid(rows, scorer.t_semi, out("qualitative.png"), caption))
    return written


def main(argv=None):
    """Command-line entry point; returns the exit status (2 on bad input)."""
    args = build_parser().parse_args(argv)
    try:
        protocol = check_args(args)
        if args.predictions:
            result, table, warning = score_predictions(args.predictions, args.data, protocol, args.match or "source",
                                                       per_image=bool(args.per_image), upsample_mode=args.upsample)
            if warning:
                print(warning, file=sys.stderr)
            print_table(result["metrics"], protocol.name)
            out = args.out or os.path.normpath(os.path.splitext(args.predictions)[0]) + "_eval.json"
            print(write_json_atomic(out, result))
            if table:
                print(write_text_atomic(args.per_image, table))
            return 0
        written = evaluate_run(args, protocol)
    except (EvaluationError, RunError) + edge_errors() as err:
        print("error: %s" % one_line(err), file=sys.stderr)
        return 2
    print("\n".join(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
