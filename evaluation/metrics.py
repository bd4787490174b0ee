"""Depth error measures of §5.2 and the evaluation protocols that use them.

§5.2 evaluates "using the same measures as previous works [6] [8]": mean
relative error (rel), root mean squared error (rms), mean log10 error (log10)
and the threshold accuracies delta < 1.25, 1.25^2, 1.25^3.  ``compute_errors``
is the one place where these formulas live, with the three extra measures
later works print (sq_rel, rms_log, silog); every score of the project (test
set, Table 1 pseudo-labels, sparsification curves, validation) goes through it.

A protocol is six independent choices (``Protocol``)
-----------------------------------------------------
gt
    ``raw``: the Kinect's own measurements (``rawDepths``, 0 = none), as BTS,
    AdaBins, ZoeDepth, Depth Anything and DPT score; ``filled``: NYU's
    in-painted ``depths``, which FCRN-era papers and DenseDepth score.
crop
    ``eigen`` (= ``bts``): rows 45:471, cols 41:601 of the 480 x 640 frame
    (Python slices), the crop of Eigen et al. 2014 exactly as the BTS and
    AdaBins evaluation code writes it; ``dorn``: rows 20:460, cols 24:616, the
    other crop that goes by Eigen's name (DORN, DenseDepth's
    ``eigen_test_crop.npy``, inclusive [20, 459, 24, 615]); ``toolbox``: rows 44:471, cols 40:601, the
    region onto which the NYU Depth V2 toolbox projects depth; ``none``; or
    ``T:B:L:R``, any other slice of the 480 x 640 frame.  Other frame sizes
    scale the bounds (``scaled_crop``).
min_depth, max_depth
    Ground truth is scored where ``min_depth < gt < max_depth``; the
    prediction is clipped to ``[max(min_depth, 1e-3), max_depth]`` (the
    floor keeps the log measures defined), as BTS / AdaBins / ZoeDepth do.
average
    ``image``: metrics per image, then the mean over images (BTS, AdaBins,
    ZoeDepth); ``pixel``: pooled over every scored pixel of the set
    (DenseDepth; a large valid area weighs more).
align
    For relative-depth predictions, per image and over the scored pixels
    only, before clipping: ``median`` multiplies by median(gt) /
    median(pred) (monodepth2); ``lstsq`` fits scale and shift by least
    squares (MiDaS), in ``depth`` or in ``inverse`` depth (the fit s / p + t
    of 1 / g, capped at 1 / max_depth, as MiDaS's NYU evaluation).

Named presets: ``eigen`` (raw, eigen crop, 1e-3..10 m, per image, no
alignment) is the default and gives BTS's ``eval_with_pngs.py --eigen_crop``
numbers on the same arrays; ``full`` (filled, no crop, every pixel > 0,
pooled) is the FCRN-era whole frame.  ``make_protocol`` applies overrides.

Why ``eigen`` is the default: the paper names the measures but not the
crop, range or averaging.  The works it follows, Laina et al. [6] and Li et
al. [8], compare their NYU numbers against Eigen et al. [4, 5] on the same
654 test images, and the evaluation code in common use for such comparisons
applies Eigen's crop, the 10 m cap and a per-image mean.  We could not check
[6] and [8] themselves from here, so this is a judgement, not a citation;
``eval.json`` carries both presets so either can be compared.
"""
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

import config
from common.numbers import round_half_up, valid_mask as measured
from data.grid import upsample  # noqa: F401  (the one pixel convention, see data.grid)

METRICS = ("rel", "sq_rel", "rms", "rms_log", "log10", "silog", "d1", "d2", "d3")
# Accuracy thresholds delta < 1.25^k (Eigen et al. 2014; §5.2).
DELTA = 1.25

EIGEN_FRAME = (480, 640)
# (top, bottom, left, right) Python slices of the 480 x 640 frame.
# Two crops go by Eigen's name: named here by the code that uses them.
CROPS = {"eigen": (45, 471, 41, 601), "bts": (45, 471, 41, 601), "dorn": (20, 460, 24, 616),
         "toolbox": (44, 471, 40, 601), "none": None}
EIGEN_CROP = CROPS["eigen"]
# Kinect range used with that crop in the same evaluation code (metres).
EIGEN_MIN_DEPTH = 1e-3
EIGEN_MAX_DEPTH = 10.0
# Smallest prediction the log measures accept: the depth net's own floor (config.DEPTH_FLOOR).
PRED_FLOOR = config.DEPTH_FLOOR

GT_CHOICES = ("raw", "filled")
AVERAGES = ("image", "pixel")
ALIGNMENTS = ("none", "median", "lstsq")
ALIGN_SPACES = ("depth", "inverse")
# Per-pixel sums every metric is computed from (pooling adds them over images).
SUMS = ("n", "abs_rel", "sq_rel", "sq", "dln", "dln2", "log10", "d1", "d2", "d3")


def pixel_sums(gt, pred):
    """Sums over matching 1-D pixels of the terms behind every metric (see ``errors_from_sums``)."""
    gt = np.asarray(gt, np.float64)
    pred = np.asarray(pred, np.float64)
    diff = pred - gt
    dln = np.log(pred) - np.log(gt)
    ratio = np.maximum(gt / pred, pred / gt)
    return {"n": float(gt.size), "abs_rel": float(np.sum(np.abs(diff) / gt)),
            "sq_rel": float(np.sum(diff ** 2 / gt)), "sq": float(np.sum(diff ** 2)),
            "dln": float(np.sum(dln)), "dln2": float(np.sum(dln ** 2)),
            "log10": float(np.sum(np.abs(np.log10(pred) - np.log10(gt)))),
            "d1": float(np.sum(ratio < DELTA)), "d2": float(np.sum(ratio < DELTA ** 2)),
            "d3": float(np.sum(ratio < DELTA ** 3))}


def errors_from_sums(sums):
    """The metrics of ``compute_errors`` from ``pixel_sums`` (of one image or pooled)."""
    n = sums["n"]
    mean_dln = sums["dln"] / n
    # mean(d^2) - mean(d)^2 can come out a hair below 0 when every d is equal.
    variance = max(sums["dln2"] / n - mean_dln ** 2, 0.0)
    return {"rel": sums["abs_rel"] / n, "sq_rel": sums["sq_rel"] / n, "rms": float(np.sqrt(sums["sq"] / n)),
            "rms_log": float(np.sqrt(sums["dln2"] / n)), "log10": sums["log10"] / n,
            "silog": float(np.sqrt(variance) * 100), "d1": sums["d1"] / n, "d2": sums["d2"] / n,
            "d3": sums["d3"] / n}


def compute_errors(gt, pred):
    """The measures over matching 1-D arrays of valid pixels.

    Parameters
    ----------
    gt, pred : np.ndarray
        Ground truth and predicted depth (metres), same shape, all > 0.

    Returns
    -------
    dict
        ``rel`` mean |p - g| / g, ``sq_rel`` mean (p - g)^2 / g, ``rms``
        sqrt(mean (p - g)^2), ``rms_log`` sqrt(mean d^2) with d = ln p - ln g,
        ``log10`` mean |log10 p - log10 g|, ``silog`` sqrt(mean d^2 -
        (mean d)^2) x 100 (BTS), ``d1``/``d2``/``d3`` fraction of pixels with
        max(p/g, g/p) < 1.25, 1.25^2, 1.25^3.  Floats.
    """
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape or gt.size == 0:
        raise ValueError("compute_errors needs two non-empty arrays of one shape, got %s and %s"
                         % (gt.shape, pred.shape))
    return errors_from_sums(pixel_sums(gt, pred))


def parse_crop(crop):
    """(top, bottom, left, right) in the 480 x 640 frame for a crop name or 'T:B:L:R'; None = no crop."""
    if crop in CROPS:
        return CROPS[crop]
    try:
        box = tuple(int(v) for v in str(crop).split(":"))
    except ValueError:
        box = ()
    if len(box) != 4 or not (0 <= box[0] < box[1] <= EIGEN_FRAME[0] and 0 <= box[2] < box[3] <= EIGEN_FRAME[1]):
        raise ValueError("crop '%s' is not one of %s nor TOP:BOTTOM:LEFT:RIGHT slices of the 480x640 frame"
                         % (crop, "/".join(CROPS)))
    return box


def scaled_crop(box, height, width):
    """``box`` of the 480 x 640 frame scaled to (height, width), each bound rounded half up.

    480 x 640 keeps the box exactly; the eigen crop becomes (23, 236, 21, 301) at 240 x 320.
    """
    top, bottom, left, right = box
    rows, cols = height / EIGEN_FRAME[0], width / EIGEN_FRAME[1]
    return (round_half_up(top * rows), round_half_up(bottom * rows), round_half_up(left * cols),
            round_half_up(right * cols))


def eigen_crop(height, width):
    """The eigen crop scaled to a (height, width) frame."""
    return scaled_crop(EIGEN_CROP, height, width)


@dataclass(frozen=True)
class Protocol:
    """How a (gt, pred) pair of full frames becomes pixels and one set of numbers (module docstring)."""
    name: str
    gt: str = "raw"
    crop: str = "eigen"
    min_depth: float = EIGEN_MIN_DEPTH
    max_depth: float = EIGEN_MAX_DEPTH
    average: str = "image"
    align: str = "none"
    align_space: str = "depth"

    @property
    def pred_min(self):
        return max(self.min_depth, PRED_FLOOR)

    @property
    def pred_max(self):
        return self.max_depth

    @property
    def per_image(self):
        return self.average == "image"

    def crop_box(self, height=EIGEN_FRAME[0], width=EIGEN_FRAME[1]):
        """(top, bottom, left, right) slices at (height, width), or None."""
        box = parse_crop(self.crop)
        return None if box is None else scaled_crop(box, height, width)

    def describe(self, height=EIGEN_FRAME[0], width=EIGEN_FRAME[1]):
        """JSON-ready definition (written into eval.json); an infinite bound becomes None."""
        def finite(v):
            return None if isinstance(v, float) and np.isinf(v) else v
        out = {k: finite(v) for k, v in asdict(self).items()}
        box = self.crop_box(height, width)
        out.update(crop_box=None if box is None else list(box), frame=[height, width],
                   prediction_range=[finite(self.pred_min), finite(self.pred_max)])
        return out


PROTOCOLS = {
    "eigen": Protocol("eigen"),
    "full": Protocol("full", gt="filled", crop="none", min_depth=0.0, max_depth=np.inf, average="pixel"),
}
DEFAULT_PROTOCOL = "eigen"


def make_protocol(preset=DEFAULT_PROTOCOL, **overrides):
    """``PROTOCOLS[preset]`` with the given fields replaced (None = keep); ValueError if inconsistent.

    A changed protocol is named after its preset and changes, e.g. ``eigen+gt=filled``.
    """
    base = PROTOCOLS[preset]
    names = [f.name for f in fields(Protocol) if f.name != "name"]
    unknown = set(overrides) - set(names)
    if unknown:
        raise ValueError("unknown protocol field(s) %s" % ", ".join(sorted(unknown)))
    changes = {k: overrides[k] for k in names
               if overrides.get(k) is not None and overrides[k] != getattr(base, k)}
    protocol = replace(base, **changes)
    for field, choices in (("gt", GT_CHOICES), ("average", AVERAGES), ("align", ALIGNMENTS),
                           ("align_space", ALIGN_SPACES)):
        if getattr(protocol, field) not in choices:
            raise ValueError("%s must be one of %s, got '%s'" % (field, "/".join(choices), getattr(protocol, field)))
    parse_crop(protocol.crop)
    if not 0 <= protocol.min_depth < protocol.max_depth:
        raise ValueError("need 0 <= min depth < max depth, got %g and %g" % (protocol.min_depth, protocol.max_depth))
    if protocol.align_space != "depth" and protocol.align != "lstsq":
        raise ValueError("align space '%s' needs align lstsq (median scaling has no space)" % protocol.align_space)
    if changes:
        tag = ",".join("%s=%s" % (k, "%g" % v if isinstance(v, float) else v) for k, v in changes.items())
        protocol = replace(protocol, name="%s+%s" % (preset, tag))
    return protocol


def scored_mask(gt, protocol):
    """Boolean (H, W) mask of the pixels ``protocol`` scores: measured (``common.numbers.valid_mask``),
    inside its depth range and its crop."""
    with np.errstate(invalid="ignore"):
        mask = measured(gt) & (gt > protocol.min_depth) & (gt < protocol.max_depth)
    box = protocol.crop_box(*gt.shape[-2:])
    if box is not None:
        top, bottom, left, right = box
        region = np.zeros_like(mask)
        region[..., top:bottom, left:right] = True
        mask &= region
    return mask


def align_prediction(gt_px, pred_px, protocol):
    """``pred_px`` aligned to ``gt_px`` (1-D, the scored pixels of one image) as ``protocol.align`` says."""
    if protocol.align == "none" or gt_px.size == 0:
        return pred_px
    gt_px, pred_px = np.asarray(gt_px, np.float64), np.asarray(pred_px, np.float64)
    if protocol.align == "median":
        return pred_px * (np.median(gt_px) / np.median(pred_px))
    inverse = protocol.align_space == "inverse"
    x, y = (1.0 / pred_px, 1.0 / gt_px) if inverse else (pred_px, gt_px)
    # Normal equations of min sum (s x + t - y)^2, as MiDaS's compute_scale_and_shift.
    a00, a01, a11 = np.sum(x * x), np.sum(x), float(x.size)
    b0, b1 = np.sum(x * y), np.sum(y)
    det = a00 * a11 - a01 * a01
    if det > 0:
        scale, shift = (a11 * b0 - a01 * b1) / det, (-a01 * b0 + a00 * b1) / det
    else:  # one pixel or a constant prediction: the best constant
        scale, shift = 0.0, b1 / a11
    fit = scale * x + shift
    if not inverse:
        return fit
    cap = 1.0 / protocol.max_depth if np.isfinite(protocol.max_depth) else 1.0 / 1e6
    return 1.0 / np.maximum(fit, cap)


def clip_prediction(pred, protocol):
    """``pred`` limited to the range ``protocol`` accepts."""
    return np.clip(pred, protocol.pred_min, protocol.pred_max)


def select_pixels(gt, pred, protocol, mask=None):
    """1-D (gt, pred) of the pixels ``protocol`` scores, prediction aligned and clipped.

    ``mask`` (optional, same shape) restricts the pixels further, e.g. to a
    confidence mask.
    """
    if gt.shape != pred.shape:
        raise ValueError("ground truth %s and prediction %s differ in shape" % (gt.shape, pred.shape))
    keep = scored_mask(gt, protocol)
    if mask is not None:
        keep &= mask
    gt_px = gt[keep]
    return gt_px, clip_prediction(align_prediction(gt_px, pred[keep], protocol), protocol)


class ErrorAccumulator:
    """Combines ``compute_errors`` of many images into one set of numbers.

    Per image (``average == 'image'``): every image with at least one scored
    pixel has weight 1.  Pooled: the per-pixel sums of all images are added,
    which equals ``compute_errors`` on all pixels concatenated.  Only running
    sums are kept, so memory stays constant.
    """

    def __init__(self, protocol):
        self.protocol = protocol
        self.sums = dict.fromkeys(SUMS, 0.0)
        self.metric_sums = dict.fromkeys(METRICS, 0.0)
        self.n_images = 0
        self.n_empty = 0
        self.n_pixels = 0

    def add(self, gt, pred, mask=None):
        """Score one full frame; returns its own metrics (None if no pixel is valid)."""
        gt_px, pred_px = select_pixels(gt, pred, self.protocol, mask)
        return self.add_pixels(gt_px, pred_px)

    def add_pixels(self, gt_px, pred_px):
        """Score already-selected (aligned, clipped) 1-D pixels of one image."""
        if gt_px.size == 0:
            self.n_empty += 1
            return None
        sums = pixel_sums(gt_px, pred_px)
        errors = errors_from_sums(sums)
        for name in SUMS:
            self.sums[name] += sums[name]
        for name in METRICS:
            self.metric_sums[name] += errors[name]
        self.n_images += 1
        self.n_pixels += int(gt_px.size)
        return errors

    def result(self):
        """Metrics of everything added, plus ``n_images``, ``n_empty``, ``n_pixels``."""
        if self.n_images == 0:
            raise ValueError("no valid pixel to score under protocol '%s'" % self.protocol.name)
        if self.protocol.per_image:
            out = {name: total / self.n_images for name, total in self.metric_sums.items()}
        else:
            out = errors_from_sums(self.sums)
        out.update(n_images=self.n_images, n_empty=self.n_empty, n_pixels=self.n_pixels)
        return out
