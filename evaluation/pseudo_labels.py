"""Table 1: how good the pseudo-labels are on the unlabeled training rows, per confidence threshold.

Definitions (``evaluate.py --table1`` and the claims experiment share them): the depth and
confidence maps at 1/4 of the input, the pseudo-labels' own resolution, against the withheld
depth of the same rows read at 1/4; rel pooled (``compute_errors`` through the ``full``
protocol) over the valid pixels (finite depth > 0) with confidence C >= T;
``kept_fraction`` = share of ALL pixels with C >= T, i.e. of the eq. 5 mask the trainer
would use; ``kept_valid_fraction`` = share of the valid pixels.
"""
import os

import numpy as np

import config
from data.dataset import UnlabeledDataset, read_depths

from .inference import predict
from .metrics import PROTOCOLS, ErrorAccumulator, scored_mask

# Every valid pixel, pooled: the depth the trainer's masks see, without crop or range.
FULL = PROTOCOLS["full"]


def training_row_predictions(run, rows, batch_size=8, progress=False, desc="table1"):
    """Batches ``(ids, gt, depth, conf)`` of ``run``'s networks on rows ``rows`` of its train.h5.

    ``ids`` index ``rows``; ``gt``, ``depth`` and ``conf`` are (B, H/4, W/4) float32 (gt read at 1/4).
    """
    train_path = os.path.join(run["data"], "train.h5")
    rows = np.asarray(rows, np.int64)
    # UnlabeledDataset reads only the images of the rows; their depths come from read_depths
    for ids, depth, conf in predict(*run["nets"], UnlabeledDataset(train_path, rows), batch_size, run["ctxs"],
                                    progress=progress, desc=desc):
        yield ids, read_depths(train_path, rows[ids], quarter=True), depth, conf


def pooled_rel(accumulator):
    """rel of everything an ``ErrorAccumulator`` pooled, None if it kept no pixel."""
    return accumulator.result()["rel"] if accumulator.n_pixels else None


class PseudoLabelTable:
    """Table 1's numbers at several thresholds, accumulated batch by batch (module docstring)."""

    def __init__(self, thresholds):
        self.thresholds = sorted(set(thresholds), reverse=True)
        self.errors = {t: ErrorAccumulator(FULL) for t in self.thresholds}
        self.kept = dict.fromkeys(self.thresholds, 0)
        self.kept_valid = dict.fromkeys(self.thresholds, 0)
        self.n_pixels = self.n_valid = 0

    def add(self, gt, depth, conf):
        """A batch of (B, h, w) ground truths, predictions and confidences."""
        valid = scored_mask(gt, FULL)
        self.n_pixels += conf.size
        self.n_valid += int(valid.sum())
        for t in self.thresholds:
            confident = conf >= t
            self.kept[t] += int(confident.sum())
            self.kept_valid[t] += int((confident & valid).sum())
            for k in range(len(gt)):
                self.errors[t].add(gt[k], depth[k], mask=confident[k])

    def rows(self):
        """One row per threshold, highest first: ``t_semi``, ``rel``, ``kept_fraction``,
        ``kept_valid_fraction`` and ``n_pixels`` (the scored pixels)."""
        return [{"t_semi": t, "rel": pooled_rel(self.errors[t]), "kept_fraction": self.kept[t] / max(self.n_pixels, 1),
                 "kept_valid_fraction": self.kept_valid[t] / max(self.n_valid, 1),
                 "n_pixels": self.errors[t].n_pixels} for t in self.thresholds]


def score_pseudo_labels(run, batch_size=8, progress=True):
    """Table 1 of ``run`` (``evaluation.runs.load_run`` with ``table1``): the paper's T_semi
    (0.9), the run's own T_semi if it differs, and 0 (every pixel); table1.json's body."""
    rows = run["split"]["unlabeled_rows"]
    t_semi = float(run["config"].get("t_semi", config.T_SEMI))
    table = PseudoLabelTable({config.T_SEMI, t_semi, 0.0})
    for _, gt, depth, conf in training_row_predictions(run, rows, batch_size, progress):
        table.add(gt, depth, conf)
    return {"rows": table.rows(), "n_images": len(rows), "labeled_frac": run["config"].get("labeled_frac"),
            "lambda_semi": run["config"].get("lambda_semi"), "checkpoint": run["checkpoint"],
            "resolution": "1/4 of the input (the pseudo-labels' own resolution)"}
