"""Depth maps made elsewhere, for ``evaluate.py --predictions``: a .npy array or a folder of PNGs.

``PRED.npy``
    (M, H', W') float depth in metres, one map per ``test.h5`` row, in row
    order; any H' x W' (upsampled to the ground truth by ``data.grid``).
``DIR/``
    16-bit single-channel PNGs of depth in millimetres, the format BTS and
    AdaBins dump (e.g. ``bathroom_rgb_00045.png``).  The last group of digits
    in each file name is the image's number: with ``--match row`` the 0-based
    row of ``test.h5``, with ``--match source`` (default) the 0-based index
    of the image in ``nyu_depth_v2_labeled.mat`` that BTS's extraction
    script writes into its file names (``test.h5`` keeps it as ``source``).
    Only the folder's own ``*.png`` files are read, not its subfolders.

Every map must be finite and > 0 everywhere; a problem is an
``EvaluationError`` naming the file and the row or index.
"""
import os
import re

import cv2
import numpy as np

from evaluation import EvaluationError

MATCHES = ("source", "row")
PNG_SCALE = 1000.0  # millimetres per metre in the BTS / AdaBins NYU dumps


def check_prediction(pred, what):
    """``pred`` as float32; EvaluationError naming ``what`` unless finite and > 0 everywhere."""
    pred = np.asarray(pred, np.float32)
    if pred.size == 0:
        raise EvaluationError("%s is empty (shape %s)" % (what, pred.shape))
    finite = np.isfinite(pred)
    if not np.all(finite):
        raise EvaluationError("%s has NaN or infinite values (the first at pixel %s)" % (what, first_of(~finite)))
    if pred.min() <= 0:  # refused, not clipped: it would be scored as some other depth
        raise EvaluationError("%s has non-positive depth (min %g, the first at pixel %s); predictions must be > 0 m"
                              % (what, pred.min(), first_of(pred <= 0)))
    return pred


def first_of(mask):
    """'(row, col)' of the first True pixel of ``mask``."""
    return "(%s)" % ", ".join(str(int(v)) for v in np.argwhere(mask)[0])


class NpyPredictions:
    """The rows of a (M, H', W') float .npy, memory-mapped."""

    def __init__(self, path, n_test):
        self.path = path
        try:
            preds = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError):
            raise EvaluationError("%s is not a readable .npy array (np.save format, no pickled objects)" % path)
        if not isinstance(preds, np.ndarray):  # np.load opens a .npz as an archive of arrays
            raise EvaluationError("%s is an .npz archive; save the (N, H, W) array with np.save as .npy" % path)
        if preds.ndim != 3 or preds.shape[0] != n_test:
            raise EvaluationError("%s has shape %s; expected (%d, H, W), one depth map per test image"
                                  % (path, preds.shape, n_test))
        if preds.dtype.kind != "f":
            raise EvaluationError("%s has dtype %s; expected float depth in metres" % (path, preds.dtype))
        if preds.shape[1] == 0 or preds.shape[2] == 0:
            raise EvaluationError("%s holds empty depth maps (shape %s)" % (path, preds.shape))
        self.preds = preds

    def __getitem__(self, row):
        return check_prediction(self.preds[row], "%s: depth map %d" % (self.path, row))


def number_of(name):
    """The last group of digits in a file name's stem, or None."""
    digits = re.findall(r"\d+", os.path.splitext(name)[0])
    return int(digits[-1]) if digits else None


class PngPredictions:
    """One 16-bit millimetre PNG per test row, found by the number in its name."""

    def __init__(self, folder, sources, match="source"):
        if match not in MATCHES:
            raise EvaluationError("--match must be one of %s" % "/".join(MATCHES))
        names = sorted(n for n in os.listdir(folder) if n.lower().endswith(".png")
                       and os.path.isfile(os.path.join(folder, n)))
        if not names:
            raise EvaluationError("%s holds no .png file" % folder)
        keys = list(np.asarray(sources).tolist()) if match == "source" else list(range(len(sources)))
        row_of = {key: row for row, key in enumerate(keys)}
        self.files = [None] * len(keys)
        for name in names:
            number = number_of(name)
            if number is None:
                raise EvaluationError("%s: no number in the file name to match a test image by" % os.path.join(folder, name))
            if number not in row_of:
                raise EvaluationError("%s: %s %d is not a test image of test.h5"
                                      % (os.path.join(folder, name), "NYU index" if match == "source" else "row",
                                         number))
            row = row_of[number]
            if self.files[row] is not None:
                raise EvaluationError("%s and %s both name %s %d" % (self.files[row], os.path.join(folder, name),
                                                                     match, number))
            self.files[row] = os.path.join(folder, name)
        missing = [keys[row] for row, path in enumerate(self.files) if path is None]
        if missing:
            raise EvaluationError("%s has no PNG for %d test image(s), e.g. %s %d"
                                  % (folder, len(missing), match, missing[0]))

    def __getitem__(self, row):
        path = self.files[row]
        image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if image is None:
            raise EvaluationError("%s: not a readable image" % path)
        if image.ndim != 2 or image.dtype != np.uint16:
            raise EvaluationError("%s: %s %s image; expected a 16-bit single-channel PNG of millimetres"
                                  % (path, "x".join(map(str, image.shape)), image.dtype))
        return check_prediction(image.astype(np.float32) / PNG_SCALE, "%s (test row %d)" % (path, row))


def open_predictions(path, dataset, match="source"):
    """``NpyPredictions`` or ``PngPredictions`` for ``--predictions PATH`` against a ``TestDataset``."""
    if os.path.isdir(path):
        return PngPredictions(path, dataset.sources(), match)
    if not os.path.isfile(path):
        raise EvaluationError("%s not found" % path)
    return NpyPredictions(path, len(dataset))
