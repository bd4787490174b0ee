"""Per run: the pseudo-labels of the LAST checkpoint on the unlabeled rows at many thresholds.

The rows are Table 1's (``evaluation.pseudo_labels``: rel pooled over the valid pixels with
C >= T at 1/4 resolution, kept = share of all pixels with C >= T), at T = 0, 0.1, ..., 0.9 and
the run's own T.  Beside them, what a diagnosis needs: calibration per confidence bin (mean C
against the mean eq. 1 target), the eq. 1 target and the confidence on the LABELED rows (what
the confidence net learned from), and the pseudo-labels actually cached by the last epoch (what
L_semi pulled towards) next to the final model on the same pixels.

Two more entries let both tables be read under one protocol and Table 1's ordering be weighed:
``sparsification``, AUSE and AURG of the final confidence on exactly Table 1's pixels (pooled,
per-pixel rel; ``evaluation.confidence.pooled_sparsification``: its random curve is Table 1's
rel at T = 0), and ``test_full``, the final depth net's test-set metrics under the ``full``
protocol, the one Table 1's pooled rel uses (filled GT, no crop, pixel average).
"""
import os

import numpy as np

from config import T_SEMI as PAPER_T  # the paper's threshold (§5.1)
from evaluation.confidence import ReliabilityAccumulator, confidence_target, pixel_errors, pooled_sparsification
from evaluation.metrics import ErrorAccumulator, select_pixels, scored_mask
from evaluation.pseudo_labels import FULL, PseudoLabelTable, pooled_rel, training_row_predictions
from evaluation.runs import load_run
from evaluation.scoring import score_test_set
from rundir.layout import checkpoint_dir, load_state

SWEEP = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


class Calibration(ReliabilityAccumulator):
    """Reliability bins of width 0.1 (one per ``SWEEP`` step) with each bin's mean rel beside its mean target."""

    def __init__(self, alpha):
        super().__init__(alpha, n_bins=len(SWEEP))
        self.rel_sum = np.zeros(len(self.count))

    def add(self, gt, pred, conf):
        super().add(gt, pred, conf)
        self.rel_sum += np.bincount(self.bin_of(np.asarray(conf, np.float64)), weights=pixel_errors(gt, pred)["rel"],
                                    minlength=len(self.count))

    def rows(self):
        """``lo``, ``hi``, ``n`` and the bin's mean ``conf``, ``target`` and ``rel`` (None when empty)."""
        result = self.result()
        return [{"lo": round(float(lo), 6), "hi": round(float(hi), 6), "n": n, "conf": c, "target": y,
                 "rel": float(total / n) if n else None}
                for lo, hi, n, c, y, total in zip(self.edges[:-1], self.edges[1:], result["count"],
                                                  result["mean_confidence"], result["mean_target"], self.rel_sum)]


def pseudo_sweep(run_dir, batch_size=8):
    """pseudo_sweep.json of the run's LAST checkpoint (module docstring)."""
    run = load_run(run_dir, "last", table1=True)
    cfg = run["config"]
    t_run, alpha = float(cfg["t_semi"]), float(cfg["alpha"])
    rows = np.asarray(run["split"]["unlabeled_rows"], np.int64)
    _, cache = load_state(checkpoint_dir(run_dir, "last"))
    cached = cache["written"].asnumpy() >= 0
    cache_depth, cache_conf = cache["depth"].asnumpy()[:, 0], cache["conf"].asnumpy()[:, 0]
    table = PseudoLabelTable(set(SWEEP) | {t_run})
    calibration = Calibration(alpha)
    lag = {t: (ErrorAccumulator(FULL), ErrorAccumulator(FULL)) for t in (t_run, PAPER_T)}
    rels, confs = [], []  # Table 1's pixels (valid, prediction clipped as its rel clips it), for sparsification
    for ids, gt, depth, conf in training_row_predictions(run, rows, batch_size):
        table.add(gt, depth, conf)
        for k, i in enumerate(ids):
            gt_px, pred_px, conf_px = table1_pixels(gt[k], depth[k], conf[k])
            calibration.add(gt_px, pred_px, conf_px)
            rels.append(pixel_errors(gt_px, pred_px)["rel"])
            confs.append(conf_px)
            if cached[i]:  # the pseudo-label of the last epoch vs the final model, same pixels
                for t, (old, new) in lag.items():
                    mask = cache_conf[i] >= t
                    old.add(gt[k], cache_depth[i], mask=mask)
                    new.add(gt[k], depth[k], mask=mask)
    return {"run": os.path.basename(os.path.normpath(run_dir)), "t_semi": t_run, "alpha": alpha,
            "n_images": int(len(rows)),
            "rows": [{"t": r["t_semi"], "rel": r["rel"], "kept_fraction": r["kept_fraction"], "n_pixels": r["n_pixels"]}
                     for r in reversed(table.rows())],
            "calibration": calibration.rows(),
            "labeled": labeled_targets(run, alpha, thresholds=(t_run, PAPER_T), batch_size=batch_size),
            "cache": {"written_fraction": float(cached.mean()) if cached.size else 0.0,
                      "rows": [{"t": t, "cached_rel": pooled_rel(old), "final_rel": pooled_rel(new),
                                "n_pixels": old.n_pixels}
                               for t, (old, new) in sorted(lag.items())]},
            "sparsification": table1_sparsification(rels, confs),
            "test_full": full_protocol_test(run, batch_size)}


def table1_pixels(gt, depth, conf):
    """One image's pixels as Table 1 scores them (valid ground truth under ``full``, prediction
    clipped as ``select_pixels`` clips it), with their confidence: 1-D (gt, pred, conf)."""
    gt_px, pred_px = select_pixels(gt, depth, FULL)
    return gt_px, pred_px, conf[scored_mask(gt, FULL)]


def table1_sparsification(rels, confs):
    """AUSE / AURG (``pooled_sparsification``) of the per-pixel rel of Table 1's pixels, ranked by the
    final confidence; None when no unlabeled pixel is valid."""
    rel = np.concatenate(rels) if rels else np.zeros(0)
    if not rel.size:
        return None
    return dict(pooled_sparsification(rel, np.concatenate(confs)), metric="rel", pixels="Table 1's: unlabeled "
                "rows, 1/4 resolution, valid ground truth, pooled")


def full_protocol_test(run, batch_size=8):
    """The final depth net on the test set under the ``full`` protocol (Table 1's): filled GT, no crop,
    every pixel > 0, pooled.  ``evaluation.scoring.score_test_set``, as evaluate.py scores."""
    scorer = score_test_set(run, FULL, batch_size, progress=False)
    result = scorer.metrics()
    return {"protocol": result["protocol"], "metrics": result["metrics"], "checkpoint": run["checkpoint"]}


def labeled_targets(run, alpha, thresholds, batch_size=8):
    """What the confidence net learned from: on the labeled rows, the eq. 1 target Y of the
    final depth net and the final confidence C.  C is trained towards Y with an L1 loss, so
    it tends to the conditional MEDIAN of Y: a pixel reaches C >= T only where most pixels
    like it have Y >= T, i.e. relative error <= -ln(T) / alpha."""
    targets, confs = [], []
    for _, gt, depth, conf in training_row_predictions(run, run["split"]["labeled_rows"], batch_size):
        targets.append(confidence_target(*select_pixels(gt, depth, FULL), alpha))
        confs.append(conf[scored_mask(gt, FULL)])
    y, c = (np.concatenate(v) if v else np.zeros(0) for v in (targets, confs))
    if not y.size:
        return None
    return {"n_pixels": int(y.size), "target_quantiles": {"%g" % q: float(np.quantile(y, q))
                                                          for q in (0.1, 0.25, 0.5, 0.75, 0.9)},
            "target_mean": float(y.mean()), "conf_mean": float(c.mean()),
            "rows": [{"t": t, "target_at_least": float((y >= t).mean()), "conf_at_least": float((c >= t).mean())}
                     for t in sorted(set(thresholds))]}
