"""Score a trained run: test set (Table 2), pseudo-labels (Table 1), confidence, figures.

    python evaluate.py --run runs/NAME                       # RUN/eval.json
    python evaluate.py --run runs/NAME --table1              # + RUN/table1.json
    python evaluate.py --run runs/NAME --confidence          # + confidence.json, sparsification.png, reliability.png
    python evaluate.py --run runs/NAME --figures 6           # + qualitative.png
    python evaluate.py --predictions pred.npy --data datasets/nyu   # score external (M, H', W') depth maps
    python evaluate.py --predictions bts_pngs/ --data datasets/nyu  # 16-bit mm PNGs (BTS / AdaBins dumps)
    python evaluate.py ... --protocol full --crop eigen --average pixel --gt filled --align median \
        --per-image scores.csv                                       # compose a protocol

``--checkpoint last`` writes the names above; any other checkpoint adds its name,
so that scoring ``best`` keeps the files of ``last``: eval_best.json, table1_best.json,
confidence_best.json, sparsification_best.png, reliability_best.png, qualitative_best.png.

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

import numpy as np

from common.threads import set_omp_threads

set_omp_threads()  # before mxnet loads (common/threads.py)
import config  # noqa: E402
from common.cli import OneLineParser  # noqa: E402
from common.devices import contexts  # noqa: E402
from common.files import read_json, write_json_atomic, write_text_atomic  # noqa: E402
from evaluation import EvaluationError
from evaluation.external import MATCHES, open_predictions
from evaluation.metrics import (ALIGN_SPACES, ALIGNMENTS, AVERAGES, CROPS, DEFAULT_PROTOCOL, GT_CHOICES, METRICS,
                                PROTOCOLS, ErrorAccumulator, make_protocol, select_pixels, upsample, valid_mask)
from evaluation.report import checkpoint_file, units_warning

# Table 2's columns first, then the extra measures.
TABLE_ORDER = ("rel", "log10", "rms", "d1", "d2", "d3", "sq_rel", "rms_log", "silog")


def build_parser():
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = parser.add_argument_group("RUN")
    g.add_argument("--run", help="run directory made by train.py")
    g.add_argument("--checkpoint", default="last", help="last, best or a checkpoint directory. default: %(default)s")
    g.add_argument("--data", default=None, help="prepared data directory. default: the run's config.json 'data'")
    g.add_argument("--batch-size", type=int, default=8, help="test images per forward pass. default: %(default)s")
    g.add_argument("--gpus", type=config.parse_gpus, default=[], help="comma-separated GPU ids; empty = CPU")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
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
    g.add_argument("--out", help="output JSON for --predictions. default: PRED_eval.json next to PRED")
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
    elif args.match:
        raise EvaluationError("--match is for --predictions DIR (a folder of PNGs)")
    elif args.out:
        raise EvaluationError("--out is only for --predictions; a run writes into its own directory")
    if args.batch_size < 1 or args.figures < 0:
        raise EvaluationError("--batch-size must be >= 1 and --figures >= 0")
    if args.per_image and not args.per_image.lower().endswith(".csv"):
        raise EvaluationError("--per-image %s: give a .csv file name" % args.per_image)
    try:
        return make_protocol(args.protocol, gt=args.gt, crop=args.crop, min_depth=args.min_depth,
                             max_depth=args.max_depth, average=args.average, align=args.align,
                             align_space=args.align_space)
    except ValueError as err:
        raise EvaluationError(str(err))


def find_test_h5(data_dir):
    path = os.path.join(data_dir, "test.h5")
    if not os.path.isfile(path):
        raise EvaluationError("%s has no test.h5 (prepare it with python -m data.prepare --out %s)"
                              % (data_dir, data_dir))
    return path


def open_test_set(path, protocol):
    """``TestDataset`` of ``path``; EvaluationError with the fix if ``protocol`` needs raw depth it lacks."""
    from data.dataset import TestDataset
    dataset = TestDataset(path)
    if protocol.gt == "raw" and not dataset.has_raw:
        data_dir = os.path.dirname(path) or "."
        raise EvaluationError("%s has no raw_depths (prepared before raw ground truth was stored); add it with "
                              "python -m data.prepare --mat nyu_depth_v2_labeled.mat --splits splits.mat --out %s "
                              "--add-raw, or score the in-painted depth with --gt filled" % (path, data_dir))
    return dataset


def scoring_gts(dataset, protocol):
    """The ground truths to read per image: the headline's, plus the presets' if test.h5 has them."""
    return sorted({protocol.gt} | {p.gt for p in PROTOCOLS.values() if p.gt != "raw" or dataset.has_raw})


class Scorer:
    """Scores full-resolution test frames under the headline protocol and every preset, plus
    optional per-image rows, confidence and figures.

    Parameters
    ----------
    protocol : evaluation.metrics.Protocol
        The headline protocol; the confidence analysis and ``rows`` use its pixels.
    gts : collection of str
        The ground truths ``add`` receives; a preset whose gt is missing is skipped.
    alpha, t_semi : float
        Eq. 1 constant (reliability) and eq. 5 threshold (figures).
    confidence : bool
        Collect sparsification and reliability data.
    figure_ids : collection of int
        Test indices whose maps are kept for the qualitative grid.
    per_image : bool
        Keep the headline metrics of every image in ``rows``.
    """

    def __init__(self, protocol, gts, alpha=config.ALPHA, t_semi=config.T_SEMI, confidence=False, figure_ids=(),
                 per_image=False):
        from evaluation.confidence import ReliabilityAccumulator, SparsificationAccumulator
        self.protocol = protocol
        self.t_semi = t_semi
        self.errors = {protocol.name: ErrorAccumulator(protocol)}
        self.errors.update((name, ErrorAccumulator(p)) for name, p in PROTOCOLS.items()
                           if p.gt in gts and name not in self.errors)
        self.sparsification = SparsificationAccumulator() if confidence else None
        self.reliability = ReliabilityAccumulator(alpha) if confidence else None
        self.figure_ids = set(int(i) for i in figure_ids)
        self.figure_rows = []
        self.rows = [] if per_image else None
        self.frame = None

    def add(self, index, gts, pred, conf=None, image=None):
        """One test image: ``gts`` {gt name: (H, W)}, ``pred`` and ``conf`` at any size (upsampled here)."""
        gt = gts[self.protocol.gt]
        self.frame = gt.shape
        pred = upsample(pred, gt.shape)
        if not np.all(np.isfinite(pred)):
            raise EvaluationError("the prediction of test image %d has NaN or infinite values" % index)
        for accumulator in self.errors.values():
            before = accumulator.n_pixels
            errors = accumulator.add(gts[accumulator.protocol.gt], pred)
            if accumulator.protocol is self.protocol and self.rows is not None:
                self.rows.append({"index": int(index), "n_pixels": accumulator.n_pixels - before,
                                  **(errors or {})})
        if conf is not None:
            conf = upsample(conf, gt.shape)
        if self.sparsification is not None:
            gt_px, pred_px = select_pixels(gt, pred, self.protocol)
            conf_px = conf[valid_mask(gt, self.protocol)]
            self.sparsification.add(gt_px, pred_px, conf_px)
            self.reliability.add(gt_px, pred_px, conf_px)
        if index in self.figure_ids:
            self.figure_rows.append({"id": int(index), "image": image, "gt": gt, "pred": pred, "conf": conf})

    def metrics(self):
        try:
            by_protocol = {name: acc.result() for name, acc in self.errors.items()}
        except ValueError as err:
            raise EvaluationError(str(err))
        return {"protocol": self.protocol.describe(*self.frame), "metrics": by_protocol[self.protocol.name],
                "metrics_by_protocol": by_protocol,
                "presets": {name: p.describe(*self.frame) for name, p in PROTOCOLS.items() if name in by_protocol}}


def print_table(metrics, protocol, stream=sys.stdout):
    names = [m for m in TABLE_ORDER if m in metrics]
    print("protocol %s, %d images, %d pixels" % (protocol, metrics["n_images"], metrics["n_pixels"]), file=stream)
    print("  ".join("%8s" % m for m in names), file=stream)
    print("  ".join("%8.4f" % metrics[m] for m in names), file=stream)


def score_predictions(args, protocol):
    """--predictions: score an external array or PNG folder exactly as a run's predictions are scored."""
    dataset = open_test_set(find_test_h5(args.data), protocol)
    preds = open_predictions(args.predictions, dataset, args.match or "source")
    out = args.out or os.path.normpath(os.path.splitext(args.predictions)[0]) + "_eval.json"
    gts = scoring_gts(dataset, protocol)
    scorer = Scorer(protocol, gts, per_image=bool(args.per_image))
    sample = []  # every 8th pixel, for the units check
    for i in range(len(dataset)):
        truth = {g: dataset.depth_full(i, g) for g in gts}
        pred = preds[i]
        (h, w), (height, width) = pred.shape, truth[protocol.gt].shape
        if h * width != w * height:  # e.g. a transposed map: resizing it would score nonsense
            raise EvaluationError("%s: the map of test row %d is %dx%d, not the %dx%d ground truth's shape or a "
                                  "scaled copy of it" % (args.predictions, i, h, w, height, width))
        scorer.add(i, truth, pred)
        sample.append(np.ravel(pred[::8, ::8]))
    warning = units_warning(np.median(np.concatenate(sample)), args.predictions)  # a sample is enough
    if warning:
        print(warning, file=sys.stderr)
    result = scorer.metrics()
    result.update(predictions=os.path.abspath(args.predictions), data=os.path.abspath(args.data),
                  n_test=len(dataset), flip_tta=False)
    return result, out, per_image_table(scorer, dataset)


def per_image_table(scorer, dataset):
    """CSV text of ``scorer.rows`` (None without --per-image): row, NYU index, pixels, metrics."""
    if scorer.rows is None:
        return None
    sources = dataset.sources()
    lines = [",".join(("row", "source", "n_pixels") + METRICS)]
    for r in scorer.rows:
        values = ["%.9g" % r[m] if m in r else "" for m in METRICS]
        lines.append(",".join([str(r["index"]), str(int(sources[r["index"]])), str(r["n_pixels"])] + values))
    return "\n".join(lines) + "\n"


def figure_indices(n_test, n_figures):
    """``n_figures`` test indices evenly spaced over the set (first and last included)."""
    n_figures = min(n_figures, n_test)
    return sorted(set(np.linspace(0, n_test - 1, n_figures).round().astype(int).tolist())) if n_figures else []


def load_run(args, protocol=PROTOCOLS["full"]):
    """Config, split (if needed), test set, networks on ``ctxs`` and the checkpoint path of ``--run``.

    ``protocol`` is checked against the test set (raw depth present if it needs it).
    """
    from mxnet.base import MXNetError
    from data.errors import one_line
    from training.checkpoint import CheckpointError, checkpoint_dir, load_nets
    if not os.path.isdir(args.run):
        raise EvaluationError("run directory %s does not exist" % args.run)
    run_config = read_json(os.path.join(args.run, "config.json"), error=CheckpointError)
    checkpoint_dir(args.run, args.checkpoint)  # fails before any work if there is none
    data_dir = args.data or run_config.get("data")
    if not data_dir:
        raise EvaluationError("%s/config.json names no data directory; pass --data DIR" % args.run)
    test_set = open_test_set(find_test_h5(data_dir), protocol)
    split = None
    if args.table1:
        split = read_json(os.path.join(args.run, "split.json"), error=CheckpointError)
        if not split.get("unlabeled_rows"):
            raise EvaluationError("%s/split.json has no unlabeled_rows: Table 1 needs unlabeled images" % args.run)
        if not os.path.isfile(os.path.join(data_dir, "train.h5")):
            raise EvaluationError("%s has no train.h5 (Table 1 scores the unlabeled training rows)" % data_dir)
    ctxs = contexts(args.gpus)
    try:
        depth_net, conf_net, _, path = load_nets(args.run, args.checkpoint, ctxs[0])
    except (AssertionError, MXNetError) as err:
        raise EvaluationError("cannot load the checkpoint of %s: %s" % (args.run, one_line(err)))
    for net in (depth_net, conf_net):
        net.collect_params().reset_ctx(ctxs)
        net.hybridize()
    return {"config": run_config, "split": split, "data": data_dir, "test": test_set, "ctxs": ctxs,
            "nets": (depth_net, conf_net), "checkpoint": path}


def score_test_set(args, run, protocol):
    """Table 2: every test image, upsampled to its ground truth; confidence and figures on the way."""
    from evaluation.inference import predict
    dataset = run["test"]
    cfg = run["config"]
    gts = scoring_gts(dataset, protocol)
    scorer = Scorer(protocol, gts, alpha=cfg.get("alpha", config.ALPHA), t_semi=cfg.get("t_semi", config.T_SEMI),
                    confidence=args.confidence, figure_ids=figure_indices(len(dataset), args.figures),
                    per_image=bool(args.per_image))
    for ids, depth, conf in predict(*run["nets"], dataset, args.batch_size, run["ctxs"],
                                    progress=not args.no_progress, desc="test", flip=args.flip_tta):
        for k, i in enumerate(ids):
            image = dataset.images_uint8(i) if i in scorer.figure_ids else None
            scorer.add(int(i), {g: dataset.depth_full(i, g) for g in gts}, depth[k], conf[k], image)
    return scorer


def score_pseudo_labels(args, run):
    """Table 1: rel of the 1/4-resolution predictions on the unlabeled rows, at the paper's
    T_semi (0.9), at the run's own T_semi if it differs, and at 0 (every pixel).

    The rel is pooled over the valid pixels (finite withheld depth > 0) with
    confidence >= T; ``kept_fraction`` is the share of ALL pixels with
    confidence >= T, i.e. of the eq. 5 mask the trainer would use.
    """
    from data.dataset import UnlabeledDataset, read_depths
    from evaluation.inference import predict
    train_path = os.path.join(run["data"], "train.h5")
    rows = np.asarray(run["split"]["unlabeled_rows"], np.int64)
    t_semi = float(run["config"].get("t_semi", config.T_SEMI))
    thresholds = sorted({config.T_SEMI, t_semi, 0.0}, reverse=True)
    errors = {t: ErrorAccumulator(PROTOCOLS["full"]) for t in thresholds}
    kept = dict.fromkeys(thresholds, 0)
    kept_valid = dict.fromkeys(thresholds, 0)
    n_pixels = n_valid = 0
    for ids, depth, conf in predict(*run["nets"], UnlabeledDataset(train_path, rows), args.batch_size,
                                    run["ctxs"], progress=not args.no_progress, desc="table1"):
        gt = read_depths(train_path, rows[ids], quarter=True)
        valid = valid_mask(gt, PROTOCOLS["full"])
        n_pixels += conf.size
        n_valid += int(valid.sum())
        for t in thresholds:
            confident = conf >= t
            kept[t] += int(confident.sum())
            kept_valid[t] += int((confident & valid).sum())
            for k in range(len(ids)):
                errors[t].add(gt[k], depth[k], mask=confident[k])
    table = []
    for t in thresholds:
        rel = errors[t].result()["rel"] if errors[t].n_pixels else None
        table.append({"t_semi": t, "rel": rel, "kept_fraction": kept[t] / n_pixels,
                      "kept_valid_fraction": kept_valid[t] / max(n_valid, 1), "n_pixels": errors[t].n_pixels})
    return {"rows": table, "n_images": len(rows), "labeled_frac": run["config"].get("labeled_frac"),
            "lambda_semi": run["config"].get("lambda_semi"), "checkpoint": run["checkpoint"],
            "resolution": "1/4 of the input (the pseudo-labels' own resolution)"}


def evaluate_run(args, protocol):
    """Every output requested for ``--run``; all scoring happens before the first file is written."""
    from evaluation import figures
    run = load_run(args, protocol)
    scorer = score_test_set(args, run, protocol)
    result = scorer.metrics()
    result.update(checkpoint=run["checkpoint"], data=os.path.abspath(run["data"]), config=run["config"],
                  flip_tta=bool(args.flip_tta))
    table = per_image_table(scorer, run["test"])
    table1 = score_pseudo_labels(args, run) if args.table1 else None
    confidence = None
    if args.confidence:
        confidence = {"protocol": protocol.name, "sparsification": scorer.sparsification.result(),
                      "reliability": scorer.reliability.result(), "checkpoint": run["checkpoint"]}
    print_table(result["metrics"], protocol.name)

    def out(name):  # eval.json for last, eval_best.json for best, ...
        return os.path.join(args.run, checkpoint_file(name, args.checkpoint))
    written = [write_json_atomic(out("eval.json"), result)]
    if table:
        written.append(write_text_atomic(args.per_image, table))
    if table1:
        for row in table1["rows"]:
            rel = "-" if row["rel"] is None else "%.4f" % row["rel"]
            print("Table 1  T=%.2f  rel %s  pixels kept %.3f" % (row["t_semi"], rel, row["kept_fraction"]))
        written.append(write_json_atomic(out("table1.json"), table1))
    if confidence:
        written.append(write_json_atomic(out("confidence.json"), confidence))
        written.append(figures.sparsification_plot(confidence["sparsification"], out("sparsification.png")))
        written.append(figures.reliability_plot(confidence["reliability"], out("reliability.png")))
    if scorer.figure_rows:
        rows = sorted(scorer.figure_rows, key=lambda r: r["id"])
        written.append(figures.qualitative_grid(rows, scorer.t_semi, out("qualitative.png")))
    return written


def main(argv=None):
    """Command-line entry point; returns the exit status (2 on bad input)."""
    from data.errors import edge_errors, one_line
    from training.checkpoint import CheckpointError
    args = build_parser().parse_args(argv)
    try:
        protocol = check_args(args)
        if args.predictions:
            result, out, table = score_predictions(args, protocol)
            print_table(result["metrics"], protocol.name)
            print(write_json_atomic(out, result))
            if table:
                print(write_text_atomic(args.per_image, table))
            return 0
        written = evaluate_run(args, protocol)
    except (EvaluationError, CheckpointError) + edge_errors() as err:
        print("error: %s" % one_line(err), file=sys.stderr)
        return 2
    print("\n".join(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
