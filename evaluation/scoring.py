"""Table 2's scoring: full-resolution test frames under the headline protocol and every preset.

``Scorer`` takes one image at a time (a run's predictions via ``score_test_set``, or an
external array / PNG folder via ``score_predictions``) and adds the optional per-image rows,
confidence analysis and figure maps.  Predictions at any size are upsampled to the ground
truth with ``data.grid``'s pixel convention, the one the training targets use.
"""
import os

import numpy as np

import config
from data.grid import UPSAMPLERS

from . import EvaluationError
from .confidence import ReliabilityAccumulator, SparsificationAccumulator
from .external import open_predictions
from .inference import predict
from .metrics import METRICS, PROTOCOLS, ErrorAccumulator, select_pixels, upsample, scored_mask
from .report import units_warning
from .runs import find_test_h5, open_test_set


def scoring_gts(dataset, protocol):
    """The ground truths to read per image: the headline's, plus the presets' if test.h5 has them."""
    return sorted({protocol.gt} | {p.gt for p in PROTOCOLS.values() if p.gt != "raw" or dataset.has_raw})


def figure_indices(n_test, n_figures):
    """``n_figures`` test indices evenly spaced over the set (first and last included)."""
    n_figures = min(n_figures, n_test)
    return sorted(set(np.linspace(0, n_test - 1, n_figures).round().astype(int).tolist())) if n_figures else []


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
                 per_image=False, upsample_fn=upsample):
        self.protocol = protocol
        self.upsample = upsample_fn  # data.grid: half-pixel centres (ours), or align-corners (--upsample)
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
        pred = self.upsample(pred, gt.shape)
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
            conf_px = conf[scored_mask(gt, self.protocol)]
            self.sparsification.add(gt_px, pred_px, conf_px)
            self.reliability.add(gt_px, pred_px, conf_px)
        if index in self.figure_ids:
            self.figure_rows.append({"id": int(index), "image": image, "gt": gt, "pred": pred, "conf": conf})

    def metrics(self):
        """eval.json's body: the protocol, its metrics, every preset's metrics and definitions."""
        try:
            by_protocol = {name: acc.result() for name, acc in self.errors.items()}
        except ValueError as err:
            raise EvaluationError(str(err))
        return {"protocol": self.protocol.describe(*self.frame), "metrics": by_protocol[self.protocol.name],
                "metrics_by_protocol": by_protocol,
                "presets": {name: p.describe(*self.frame) for name, p in PROTOCOLS.items() if name in by_protocol}}

    def confidence(self):
        """Sparsification and reliability results (the scorer must have been made with ``confidence``)."""
        return {"sparsification": self.sparsification.result(), "reliability": self.reliability.result()}


def per_image_table(scorer, dataset):
    """CSV text of ``scorer.rows`` (None without per-image rows): row, NYU index, pixels, metrics."""
    if scorer.rows is None:
        return None
    sources = dataset.sources()
    lines = [",".join(("row", "source", "n_pixels") + METRICS)]
    for r in scorer.rows:
        values = ["%.9g" % r[m] if m in r else "" for m in METRICS]
        lines.append(",".join([str(r["index"]), str(int(sources[r["index"]])), str(r["n_pixels"])] + values))
    return "\n".join(lines) + "\n"


def score_test_set(run, protocol, batch_size=8, confidence=False, figures=0, per_image=False, flip=False,
                   progress=True, num_workers=0):
    """Table 2: every test image of ``run`` (``evaluation.runs.load_run``) scored at full resolution.

    ``figures`` evenly spaced images keep their maps for the qualitative grid; ``flip``
    averages each prediction with that of the mirrored image; ``num_workers`` DataLoader
    processes load the test images.  Returns the ``Scorer``.
    """
    dataset = run["test"]
    cfg = run["config"]
    gts = scoring_gts(dataset, protocol)
    scorer = Scorer(protocol, gts, alpha=cfg.get("alpha", config.ALPHA), t_semi=cfg.get("t_semi", config.T_SEMI),
                    confidence=confidence, figure_ids=figure_indices(len(dataset), figures), per_image=per_image)
    for ids, depth, conf in predict(*run["nets"], dataset, batch_size, run["ctxs"], progress=progress, desc="test",
                                    flip=flip, num_workers=num_workers):
        for k, i in enumerate(ids):
            image = dataset.images_uint8(i) if i in scorer.figure_ids else None
            scorer.add(int(i), {g: dataset.depth_full(i, g) for g in gts}, depth[k], conf[k], image)
    return scorer


def score_predictions(predictions, data_dir, protocol, match="source", per_image=False, upsample_mode="half-pixel"):
    """External depth maps (an (M, H', W') .npy in metres or a folder of 16-bit mm PNGs) scored
    exactly as a run's predictions are.

    Returns ``(result, table, warning)``: eval.json's body, the per-image CSV text (None
    without ``per_image``) and a one-line warning when the depth looks like millimetres (or None).
    """
    dataset = open_test_set(find_test_h5(data_dir), protocol)
    preds = open_predictions(predictions, dataset, match)
    gts = scoring_gts(dataset, protocol)
    scorer = Scorer(protocol, gts, per_image=per_image, upsample_fn=UPSAMPLERS[upsample_mode])
    sample = []  # every 8th pixel, for the units check
    for i in range(len(dataset)):
        truth = {g: dataset.depth_full(i, g) for g in gts}
        pred = preds[i]
        (h, w), (height, width) = pred.shape, truth[protocol.gt].shape
        if h * width != w * height:  # e.g. a transposed map: resizing it would score nonsense
            raise EvaluationError("%s: the map of test row %d is %dx%d, not the %dx%d ground truth's shape or a "
                                  "scaled copy of it" % (predictions, i, h, w, height, width))
        scorer.add(i, truth, pred)
        sample.append(np.ravel(pred[::8, ::8]))
    warning = units_warning(np.median(np.concatenate(sample)), predictions)  # a sample is enough
    result = scorer.metrics()
    result.update(predictions=os.path.abspath(predictions), data=os.path.abspath(data_dir),
                  n_test=len(dataset), flip_tta=False, upsample=upsample_mode)
    return result, per_image_table(scorer, dataset), warning
