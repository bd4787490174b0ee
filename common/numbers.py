"""Two numeric rules every layer shares, each with one owner."""
import numpy as np


def round_half_up(x):
    """``x`` rounded to the nearest integer, halves up: Python's round() rounds halves to even, so
    round(397.5) = 398 but round(396.5) = 396; a split of 795 images or a crop bound must not depend on parity."""
    return int(np.floor(x + 0.5))


def valid_mask(depth):
    """True where ``depth`` is a measurement: finite and > 0 (NYU marks holes with 0; we use NaN too)."""
    depth = np.asarray(depth)
    with np.errstate(invalid="ignore"):
        return np.isfinite(depth) & (depth > 0)
