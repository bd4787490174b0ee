"""The one pixel convention: where a pixel of a resized map sits on the original grid.

A map of ``n_out`` pixels resized from (or onto) ``n_in`` pixels along one
axis follows the half-pixel-centre convention of ``cv2.resize``, PIL and
``align_corners=False``: pixel ``i`` covers ``[i, i + 1) * n_in / n_out`` of
the original axis and its value belongs to the CENTRE of that interval, i.e.
to original pixel index ``u = (i + 0.5) * n_in / n_out - 0.5``.  A 1/4-
resolution prediction of a 320 x 240 input made from a 640 x 480 frame thus
sits at full-resolution index ``8 i + 3.5`` (the centre of its 8 x 8 block).

Every producer and consumer uses this convention:

* images are resized by ``cv2`` (``data.augment.resize_image``);
* depths -- the 320 x 240 training depths written by ``data.prepare``, the
  augmented copies, and the 1/4 training targets of ``data.dataset``
  (``depth_to_quarter``, also Table 1's pseudo-label ground truth) -- are
  resampled by ``resize_depth`` below, which reads the depth AT ``u``;
* predictions and confidence maps go back to full resolution through
  ``upsample`` (``cv2.INTER_LINEAR``, the same convention), in evaluation,
  training validation and ``predict.py``; the confidence net's 1/4 image
  input (4 x 4 block means) is centred on the same points.

The convention is mirror-symmetric (pixel j of w mirrors to w - 1 - j at
every resolution), so flip test-time augmentation needs no shift.

``resize_depth`` takes the nearest pixel to ``u``.  When ``u`` falls exactly
between two pixels (every output pixel of an even integer factor such as
640 -> 320 or 320 -> 80) the two are averaged, as area resampling of the
image does: picking either one would move the depth half a pixel away from
the image, and the bias adds up along the chain (it was 1.5 full-resolution
pixels for the 1/4 targets when the right-hand pixel was always taken).
"""
import cv2
import numpy as np


def source_index(n_out, n_in):
    """Index pairs ``(a, b)`` of the one or two source pixels read for each output pixel.

    ``a == b`` when one pixel is nearest to the output centre ``u``; ``b = a + 1``
    when ``u`` lies exactly half-way between ``a`` and ``a + 1``.  Integer
    arithmetic, so ties are exact.
    """
    x = np.arange(n_out, dtype=np.int64)
    # u = ((2x + 1) n_in - n_out) / (2 n_out)
    num, den = (2 * x + 1) * n_in - n_out, 2 * n_out
    low, rem = num // den, num % den
    tie = 2 * rem == den
    a = np.where(2 * rem > den, low + 1, low)
    b = np.where(tie, low + 1, a)
    return np.clip(a, 0, n_in - 1), np.clip(b, 0, n_in - 1)


def resize_depth(depth, size):
    """Resample an (H, W) depth map to ``size`` = (width, height) at the output pixel centres.

    The nearest pixel, or the mean of the valid ones among the two (four in
    2-D) pixels the centre lies exactly between.  Valid depths are never
    mixed with invalid ones (0 or NaN); an output pixel with no valid source
    is 0.  Away from exact ties values are copied, never blended.
    """
    width, height = size
    depth = np.asarray(depth, np.float32)
    rows, cols = source_index(height, depth.shape[0]), source_index(width, depth.shape[1])
    total = np.zeros((height, width), np.float64)
    count = np.zeros((height, width), np.float64)
    for r in rows:
        for c in cols:
            value = depth[r[:, None], c[None, :]]
            with np.errstate(invalid="ignore"):
                good = np.isfinite(value) & (value > 0)
            total += np.where(good, value, 0.0)
            count += good
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return out.astype(np.float32)


def upsample(pred, size):
    """Bilinear resize of a (h, w) map to ``size`` = (H, W) with the convention above.

    ``cv2.INTER_LINEAR`` interpolates between pixel centres and repeats the
    outermost value beyond them.  The networks predict at 1/4 of the input
    resolution; scores are computed at the ground truth's full resolution.
    """
    height, width = size
    pred = np.asarray(pred, np.float32)
    if pred.shape == (height, width):
        return pred
    return cv2.resize(pred, (width, height), interpolation=cv2.INTER_LINEAR)


def upsample_align_corners(pred, size):
    """Bilinear resize with the corner pixels' centres on each other (PyTorch ``align_corners=True``,
    what AdaBins and ZoeDepth use on their predictions): output pixel i samples input position
    i (h - 1) / (H - 1).  For external predictions scored the way their authors scored them."""
    height, width = size
    pred = np.asarray(pred, np.float64)
    h, w = pred.shape
    if (h, w) == (height, width):
        return pred.astype(np.float32)
    ys = np.linspace(0, h - 1, height) if height > 1 else np.zeros(1)
    xs = np.linspace(0, w - 1, width) if width > 1 else np.zeros(1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = pred[y0][:, x0] * (1 - wx) + pred[y0][:, x1] * wx
    bottom = pred[y1][:, x0] * (1 - wx) + pred[y1][:, x1] * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)


UPSAMPLERS = {"half-pixel": upsample, "align-corners": upsample_align_corners}
