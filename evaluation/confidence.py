"""How well the confidence map ranks and predicts depth errors.

Sparsification (Ilg et al. 2018; AUSE / AURG as in Poggi et al., "On the
uncertainty of self-supervised monocular depth estimation", CVPR 2020)
    For one image, remove a fraction f of its valid pixels and compute a
    metric on the rest.  Three removal orders give three curves:

    * confidence: lowest confidence first;
    * oracle: largest true error first (the best any ranking can do);
    * random: in expectation the metric of all pixels, a flat line.

    AUSE = area under (confidence curve - oracle curve): 0 for a perfect
    ranking, larger is worse.  AURG = area under (random curve - confidence
    curve): > 0 when the confidence ranks better than chance, about 0 for
    a random one.  Curves are computed per image on fractions 0, 0.01, ...,
    0.99, averaged over images, not normalised, and integrated with the
    trapezoid rule over f.  The oracle of ``rel`` removes the largest
    relative error first, the oracle of ``rms`` the largest squared error.

Reliability
    Pixels are binned by confidence; each bin's mean confidence is set
    against the mean of the confidence network's own training target,
    eq. 1: Y = exp(-alpha |E - D| / D).  A well-calibrated net lies on the
    diagonal; ``calibration_error`` is the pixel-weighted mean |gap|.
"""
import numpy as np

# Removed fractions 0, 0.01, ..., 0.99 (at least one pixel always remains).
FRACTIONS = np.round(np.arange(100) / 100.0, 2)
RELIABILITY_BINS = 10


def pixel_errors(gt, pred):
    """Per-pixel terms whose mean gives each sparsified metric.

    Returns ``{'rel': |p - g| / g, 'rms': (p - g)^2}``; ``rms`` is the square
    root of the mean of its term (see ``ROOT``).
    """
    diff = np.asarray(pred, np.float64) - np.asarray(gt, np.float64)
    return {"rel": np.abs(diff) / gt, "rms": diff ** 2}


SPARSIFIED = ("rel", "rms")
ROOT = {"rel": False, "rms": True}


def sparsification_curve(values, key, fractions=FRACTIONS, root=False):
    """The metric of the pixels left after removing the lowest-``key`` fraction.

    Parameters
    ----------
    values : np.ndarray
        (n,) per-pixel terms (see ``pixel_errors``).
    key : np.ndarray
        (n,) removal order: the smallest key goes first (confidence, or
        -error for the oracle).  Ties keep their input order.
    fractions : np.ndarray
        Removed fractions in [0, 1).
    root : bool
        Take the square root of the remaining mean (rms).

    Returns
    -------
    np.ndarray
        (len(fractions),) metric values.
    """
    values = np.asarray(values, np.float64)
    n = values.size
    ordered = values[np.argsort(key, kind="stable")]
    suffix = np.cumsum(ordered[::-1])[::-1]  # suffix[k] = sum of ordered[k:]
    removed = np.minimum(np.floor(np.asarray(fractions) * n).astype(np.int64), n - 1)
    curve = suffix[removed] / (n - removed)
    return np.sqrt(curve) if root else curve


def area(curve, fractions=FRACTIONS):
    """Trapezoid area under ``curve`` over ``fractions``."""
    curve = np.asarray(curve, np.float64)
    return float(np.sum((curve[1:] + curve[:-1]) * np.diff(fractions)) / 2)


class SparsificationAccumulator:
    """Per-image sparsification curves, averaged over images."""

    def __init__(self, fractions=FRACTIONS):
        self.fractions = np.asarray(fractions, np.float64)
        self.sums = {m: {c: np.zeros(len(fractions)) for c in ("confidence", "oracle", "random")}
                     for m in SPARSIFIED}
        self.n_images = 0

    def add(self, gt, pred, conf):
        """One image's valid pixels as 1-D arrays (gt, clipped pred, confidence)."""
        if gt.size == 0:
            return
        for name, values in pixel_errors(gt, pred).items():
            root = ROOT[name]
            sums = self.sums[name]
            sums["confidence"] += sparsification_curve(values, conf, self.fractions, root)
            sums["oracle"] += sparsification_curve(values, -values, self.fractions, root)
            full = np.sqrt(values.mean()) if root else values.mean()
            sums["random"] += full
        self.n_images += 1

    def result(self):
        """Curves, AUSE and AURG per metric (JSON-ready)."""
        if self.n_images == 0:
            raise ValueError("no image with valid pixels for the sparsification curves")
        out = {"fractions": self.fractions.tolist(), "n_images": self.n_images}
        for name, sums in self.sums.items():
            curves = {c: s / self.n_images for c, s in sums.items()}
            out[name] = {
                "curves": {c: v.tolist() for c, v in curves.items()},
                "ause": area(curves["confidence"] - curves["oracle"], self.fractions),
                "aurg": area(curves["random"] - curves["confidence"], self.fractions),
            }
        return out


def confidence_target(gt, pred, alpha):
    """Eq. 1: Y = exp(-alpha |E - D| / D)."""
    return np.exp(-alpha * np.abs(np.asarray(pred, np.float64) - gt) / gt)


class ReliabilityAccumulator:
    """Mean confidence vs mean eq.-1 target in equal-width confidence bins."""

    def __init__(self, alpha, n_bins=RELIABILITY_BINS):
        self.alpha = alpha
        self.edges = np.linspace(0.0, 1.0, n_bins + 1)
        self.count = np.zeros(n_bins, np.int64)
        self.conf_sum = np.zeros(n_bins)
        self.target_sum = np.zeros(n_bins)

    def bin_of(self, conf):
        """The bin of each confidence: [lo, hi), the last one with 1 included."""
        return np.clip(np.searchsorted(self.edges, conf, side="right") - 1, 0, len(self.count) - 1)

    def add(self, gt, pred, conf):
        """One image's valid pixels as 1-D arrays."""
        conf = np.asarray(conf, np.float64)
        bins = self.bin_of(conf)
        self.count += np.bincount(bins, minlength=len(self.count))
        self.conf_sum += np.bincount(bins, weights=conf, minlength=len(self.count))
        self.target_sum += np.bincount(bins, weights=confidence_target(gt, pred, self.alpha),
                                       minlength=len(self.count))

    def result(self):
        """Per-bin counts and means (NaN-free: empty bins give None) and the calibration error."""
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_conf = self.conf_sum / self.count
            mean_target = self.target_sum / self.count
        filled = self.count > 0
        total = self.count.sum()
        gap = np.abs(mean_conf - mean_target)[filled]
        return {
            "alpha": self.alpha,
            "edges": self.edges.tolist(),
            "count": self.count.tolist(),
            "mean_confidence": [float(v) if f else None for v, f in zip(mean_conf, filled)],
            "mean_target": [float(v) if f else None for v, f in zip(mean_target, filled)],
            "calibration_error": float(np.sum(gap * self.count[filled]) / total) if total else None,
        }


def pooled_sparsification(errors, conf, fractions=FRACTIONS):
    """Sparsification of one pool of pixels (e.g. Table 1's unlabeled pixels), ties averaged.

    Unlike ``SparsificationAccumulator`` (per image, ties in input order), the pixels are
    pooled, so the curve at f = 0 is the pooled mean, Table 1's rel at T = 0.  Pixels whose
    confidence ties are removed in a random order, in expectation: removing k of a tied group
    removes k times the group's mean error.  So a constant confidence gives exactly the random
    curve (AURG 0), and a confidence that orders the errors exactly gives the oracle (AUSE 0).

    Parameters
    ----------
    errors : np.ndarray
        (n,) per-pixel error, e.g. ``pixel_errors(gt, pred)["rel"]``; n >= 1.
    conf : np.ndarray
        (n,) confidence: the lowest is removed first.
    fractions : np.ndarray
        Removed fractions in [0, 1), increasing.

    Returns
    -------
    dict
        ``fractions``, ``curves`` {model, oracle, random} (mean error of the pixels left),
        ``ause`` = area(model - oracle), ``aurg`` = area(random - model) (trapezoid over
        ``fractions``, not normalised; AURG > 0: the confidence ranks errors better than
        chance), ``n_pixels`` and ``mean`` (the random curve's level).
    """
    errors = np.asarray(errors, np.float64).ravel()
    conf = np.asarray(conf, np.float64).ravel()
    if errors.size == 0 or errors.size != conf.size:
        raise ValueError("need as many confidences as errors, at least one (got %d and %d)" % (errors.size, conf.size))
    fractions = np.asarray(fractions, np.float64)
    n = errors.size
    removed = np.minimum(np.floor(fractions * n + 1e-9).astype(np.int64), n - 1)  # at least one pixel is left

    def curve(key):
        order = np.argsort(key, kind="stable")
        k, v = key[order], errors[order]
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])      # first index of each tied group
        group = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, n]))
        v = (np.add.reduceat(v, starts) / np.diff(np.r_[starts, n]))[group]  # each pixel: its group's mean
        removed_sum = np.r_[0.0, np.cumsum(v)][removed]
        return (errors.sum() - removed_sum) / (n - removed)

    curves = {"model": curve(conf), "oracle": curve(-errors), "random": np.full(fractions.size, errors.mean())}
    return {"fractions": fractions.tolist(), "curves": {c: v.tolist() for c, v in curves.items()},
            "ause": area(curves["model"] - curves["oracle"], fractions),
            "aurg": area(curves["random"] - curves["model"], fractions),
            "n_pixels": int(n), "mean": float(errors.mean())}
