"""Depth error measures of §5.2 and the two evaluation protocols that use them.

§5.2 evaluates "using the same measures as previous works [6] [8]": mean
relative error (rel), root mean squared error (rms), mean log10 error (log10)
and the threshold accuracies delta < 1.25, 1.25^2, 1.25^3.  ``compute_errors``
is the one place where these formulas live; every score of the project
(test set, Table 1 pseudo-labels, sparsification curves, validation) goes
through it.

Protocols
---------
``eigen`` (default)
    The region of the 480 x 640 Kinect frame onto which depth is projected,
    rows 45:471 and columns 41:601 (the crop of Eigen et al. 2014 [4], the
    valid-projection border of the NYU Depth V2 toolbox; the slices as in the
    BTS / AdaBins evaluation code), ground truth in (1e-3, 10) m, prediction
    clipped to [1e-3, 10] m, metrics computed per image and then averaged
    over images.
``full``
    Every pixel of the frame whose ground truth is finite and > 0, errors
    pooled over all valid pixels of the whole set (so a large image weighs
    more than a small one).  Predictions are only floored at 1e-3 m so that
    the log measures stay defined.

Why ``eigen`` is the default: the paper names the measures but not the
crop, range or averaging.  The works it follows, Laina et al. [6] and Li et
al. [8], compare their NYU numbers against Eigen et al. [4, 5] on the same
654 test images, and the evaluation code in common use for such comparisons
applies Eigen's crop, the 10 m cap and a per-image mean.  The magnitude of
Table 2 (rel around 0.2, rms around 0.7 m) is also of the order reported
under that protocol.  We could not check [6] and [8] themselves from here,
so this is a judgement, not a citation; ``eval.json`` carries both
protocols so either can be compared.

Ground-truth and prediction sizes: the crop is given for 480 x 640 and is
scaled proportionally for other frames (see ``eigen_crop``).
"""
from dataclasses import asdict, dataclass

import numpy as np

from data.grid import upsample  # noqa: F401  (the one pixel convention, see data.grid)

METRICS = ("rel", "sq_rel", "rms", "rms_log", "log10", "d1", "d2", "d3")
# Metrics that are square roots of a mean: pooled / averaged in squared form when pooling.
ROOT_METRICS = ("rms", "rms_log")
# Accuracy thresholds delta < 1.25^k (Eigen et al. 2014; §5.2).
DELTA = 1.25

# Eigen et al. 2014 / NYU Depth V2 toolbox: depth is valid inside rows 45:471,
# cols 41:601 of the 480 x 640 frame (Python slices, as in BTS / AdaBins).
EIGEN_FRAME = (480, 640)
EIGEN_CROP = (45, 471, 41, 601)
# Kinect range used with that crop in the same evaluation code (metres).
EIGEN_MIN_DEPTH = 1e-3
EIGEN_MAX_DEPTH = 10.0
# Smallest prediction the log measures accept (= symbols.depth_net.MIN_DEPTH).
PRED_FLOOR = 1e-3


@dataclass(frozen=True)
class Protocol:
    """How a (gt, pred) pair of full frames becomes pixels and one set of numbers.

    Attributes
    ----------
    name : str
    crop : bool
        Apply the (scaled) Eigen crop.
    min_depth, max_depth : float
        Ground truth is valid where ``min_depth < gt < max_depth`` (and finite).
    pred_min, pred_max : float
        The prediction is clipped to this range before scoring.
    per_image : bool
        True: metrics per image, then the mean over images.  False: pooled
        over all valid pixels of the set.
    """
    name: str
    crop: bool
    min_depth: float
    max_depth: float
    pred_min: float
    pred_max: float
    per_image: bool

    def describe(self):
        """JSON-ready definition (written into eval.json); an infinite bound becomes None."""
        return {k: (None if isinstance(v, float) and np.isinf(v) else v) for k, v in asdict(self).items()}


PROTOCOLS = {
    "eigen": Protocol("eigen", crop=True, min_depth=EIGEN_MIN_DEPTH, max_depth=EIGEN_MAX_DEPTH,
                      pred_min=EIGEN_MIN_DEPTH, pred_max=EIGEN_MAX_DEPTH, per_image=True),
    "full": Protocol("full", crop=False, min_depth=0.0, max_depth=np.inf,
                     pred_min=PRED_FLOOR, pred_max=np.inf, per_image=False),
}
DEFAULT_PROTOCOL = "eigen"


def compute_errors(gt, pred):
    """The §5.2 measures over matching 1-D arrays of valid pixels.

    Parameters
    ----------
    gt, pred : np.ndarray
        Ground truth and predicted depth (metres), same shape, all > 0.

    Returns
    -------
    dict
        ``rel`` mean |p - g| / g, ``sq_rel`` mean (p - g)^2 / g, ``rms``
        sqrt(mean (p - g)^2), ``rms_log`` sqrt(mean (ln p - ln g)^2),
        ``log10`` mean |log10 p - log10 g|, ``d1``/``d2``/``d3`` fraction of
        pixels with max(p/g, g/p) < 1.25, 1.25^2, 1.25^3.  Floats.
    """
    gt = np.asarray(gt, np.float64)
    pred = np.asarray(pred, np.float64)
    if gt.shape != pred.shape or gt.size == 0:
        raise ValueError("compute_errors needs two non-empty arrays of one shape, got %s and %s"
                         % (gt.shape, pred.shape))
    ratio = np.maximum(gt / pred, pred / gt)
    diff = pred - gt
    return {
        "rel": float(np.mean(np.abs(diff) / gt)),
        "sq_rel": float(np.mean(diff ** 2 / gt)),
        "rms": float(np.sqrt(np.mean(diff ** 2))),
        "rms_log": float(np.sqrt(np.mean((np.log(pred) - np.log(gt)) ** 2))),
        "log10": float(np.mean(np.abs(np.log10(pred) - np.log10(gt)))),
        "d1": float(np.mean(ratio < DELTA)),
        "d2": float(np.mean(ratio < DELTA ** 2)),
        "d3": float(np.mean(ratio < DELTA ** 3)),
    }


def eigen_crop(height, width):
    """Eigen's crop scaled to a (height, width) frame: (top, bottom, left, right) slices.

    Each bound of ``EIGEN_CROP`` is multiplied by height/480 or width/640 and
    rounded half up, so 480 x 640 gives (45, 471, 41, 601) exactly and
    240 x 320 gives (23, 236, 21, 301).
    """
    top, bottom, left, right = EIGEN_CROP
    rows, cols = height / EIGEN_FRAME[0], width / EIGEN_FRAME[1]

    def half_up(x):
        return int(np.floor(x + 0.5))

    return half_up(top * rows), half_up(bottom * rows), half_up(left * cols), half_up(right * cols)


def valid_mask(gt, protocol):
    """Boolean (H, W) mask of the pixels ``protocol`` scores."""
    with np.errstate(invalid="ignore"):
        mask = np.isfinite(gt) & (gt > protocol.min_depth) & (gt < protocol.max_depth)
    if protocol.crop:
        top, bottom, left, right = eigen_crop(*gt.shape)
        region = np.zeros_like(mask)
        region[top:bottom, left:right] = True
        mask &= region
    return mask


def select_pixels(gt, pred, protocol, mask=None):
    """1-D (gt, pred) of the pixels ``protocol`` scores, prediction clipped.

    ``mask`` (optional, same shape) restricts the pixels further, e.g. to a
    confidence mask.
    """
    if gt.shape != pred.shape:
        raise ValueError("ground truth %s and prediction %s differ in shape" % (gt.shape, pred.shape))
    keep = valid_mask(gt, protocol)
    if mask is not None:
        keep &= mask
    return gt[keep], clip_prediction(pred[keep], protocol)


def clip_prediction(pred, protocol):
    """``pred`` limited to the range ``protocol`` accepts."""
    return np.clip(pred, protocol.pred_min, protocol.pred_max)


class ErrorAccumulator:
    """Combines ``compute_errors`` of many images into one set of numbers.

    Per image (``protocol.per_image``): every image with at least one valid
    pixel has weight 1.  Pooled: each image is weighted by its number of
    valid pixels, which equals ``compute_errors`` on all pixels concatenated
    (the mean-type measures are averaged as they are, ``rms`` and ``rms_log``
    as their squares).  Only running sums are kept, so memory stays constant.
    """

    def __init__(self, protocol):
        self.protocol = protocol
        self.sums = dict.fromkeys(METRICS, 0.0)
        self.weight = 0.0
        self.n_images = 0
        self.n_empty = 0
        self.n_pixels = 0

    def add(self, gt, pred, mask=None):
        """Score one full frame; returns its own metrics (None if no pixel is valid)."""
        gt_px, pred_px = select_pixels(gt, pred, self.protocol, mask)
        return self.add_pixels(gt_px, pred_px)

    def add_pixels(self, gt_px, pred_px):
        """Score already-selected 1-D pixels of one image."""
        if gt_px.size == 0:
            self.n_empty += 1
            return None
        errors = compute_errors(gt_px, pred_px)
        weight = 1.0 if self.protocol.per_image else float(gt_px.size)
        for name, value in errors.items():
            self.sums[name] += weight * (value ** 2 if name in ROOT_METRICS and not self.protocol.per_image
                                         else value)
        self.weight += weight
        self.n_images += 1
        self.n_pixels += int(gt_px.size)
        return errors

    def result(self):
        """Metrics of everything added, plus ``n_images``, ``n_empty``, ``n_pixels``."""
        if self.weight == 0:
            raise ValueError("no valid pixel to score under protocol '%s'" % self.protocol.name)
        out = {}
        for name, total in self.sums.items():
            mean = total / self.weight
            out[name] = float(np.sqrt(mean)) if name in ROOT_METRICS and not self.protocol.per_image else mean
        out.update(n_images=self.n_images, n_empty=self.n_empty, n_pixels=self.n_pixels)
        return out
