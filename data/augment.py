"""Resizing and the training-set augmentation of Eigen et al. (2014).

Paper §5: "Following [4], we augment the training data by random scaling,
flips, color and translation".  [4] (Eigen, Puhrsch & Fergus, NIPS 2014, §3.3)
specifies the ranges used here:

* scale: s in [1, 1.5]; image and depth are enlarged by s and the depths are
  divided by s (zooming in by s looks like moving the camera s times closer);
* translation: a random crop back to the output size, at every scale.  [4] crops
  its 320x240 inputs to 304x228, i.e. moves the window by up to 1/40 of each side
  either way; our output keeps the input size, so the window may also stand up to
  1/40 of a side outside the scaled image (at 320x240: 8 and 6 pixels).  What lies
  outside is black in the image and invalid (0) in the depth, so at scale 1 a copy
  is still translated and no depth is made up;
* colour: the RGB values are multiplied by c in [0.8, 1.2]^3;
* flip: horizontal with probability 0.5.

[4] also rotates by r in [-5, 5] degrees; the paper does not list rotation,
so it is left out.

Image and depth go through the same geometric transform: both are resized to
the same scaled size, cropped by the same window and flipped together, so a
depth edge stays on the image edge.  Images are resampled with area (shrink)
or bilinear (enlarge) interpolation; depths by ``data.grid.resize_depth``
(nearest, exact ties averaged), so a valid depth is never averaged with an
invalid zero pixel.  Both follow the one pixel convention of ``data.grid``
(the centre of output pixel x lies at ``(x + 0.5) * scale`` in the source).
"""
from dataclasses import dataclass

import cv2
import numpy as np

from .grid import resize_depth  # noqa: F401  (part of this module's interface)

# Ranges from Eigen et al. 2014, §3.3.
EIGEN_SCALE_RANGE = (1.0, 1.5)
EIGEN_COLOUR_RANGE = (0.8, 1.2)
EIGEN_FLIP_PROBABILITY = 0.5
# 320x240 -> 304x228 crops: the window moves by up to 8 / 320 = 6 / 240 = 1/40 of a side each way.
EIGEN_TRANSLATION_FRACTION = 1.0 / 40


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the augmentation.

    Attributes
    ----------
    scale : float
        Zoom factor s >= 1; the scaled size is ``round(w * s) x round(h * s)``.
    offset : tuple of int
        (x, y) of the crop window's top-left corner in the scaled image; it may lie
        up to ``translation_margin`` outside it (negative, or past the far side).
    flip : bool
        Mirror left-right after cropping.
    colour : tuple of float
        Per-channel (R, G, B) multiplicative factors.
    """

    scale: float
    offset: tuple
    flip: bool
    colour: tuple


IDENTITY = AugmentParams(scale=1.0, offset=(0, 0), flip=False, colour=(1.0, 1.0, 1.0))


def scaled_size(size, scale):
    """(width, height) of an output ``size`` enlarged by ``scale``."""
    width, height = size
    return max(width, int(round(width * scale))), max(height, int(round(height * scale)))


def translation_margin(size):
    """(x, y) pixels the crop window may stand outside the scaled image (Eigen et al.'s crop)."""
    return tuple(int(round(n * EIGEN_TRANSLATION_FRACTION)) for n in size)


def crop(array, x, y, width, height):
    """``array[y:y + height, x:x + width]`` with zeros where the window leaves the array."""
    out = np.zeros((height, width) + array.shape[2:], array.dtype)
    top, left = max(y, 0), max(x, 0)
    bottom, right = min(y + height, array.shape[0]), min(x + width, array.shape[1])
    if bottom > top and right > left:
        out[top - y:bottom - y, left - x:right - x] = array[top:bottom, left:right]
    return out


def resize_image(img, size):
    """Resize an (H, W, 3) uint8 image to ``size`` = (width, height).

    Area interpolation when shrinking (no aliasing), bilinear when enlarging.
    """
    width, height = size
    if (img.shape[1], img.shape[0]) == (width, height):
        return img.copy()
    shrinking = width <= img.shape[1] and height <= img.shape[0]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(img, (width, height), interpolation=interpolation)


def sample_params(rng, size):
    """Draw one augmentation for output ``size`` = (width, height).

    Parameters
    ----------
    rng : np.random.RandomState
        The only source of randomness.
    size : tuple of int
        Output (width, height).

    Returns
    -------
    AugmentParams
    """
    scale = float(rng.uniform(*EIGEN_SCALE_RANGE))
    flip = bool(rng.uniform() < EIGEN_FLIP_PROBABILITY)
    colour = tuple(float(c) for c in rng.uniform(*EIGEN_COLOUR_RANGE, size=3))
    scaled_width, scaled_height = scaled_size(size, scale)
    margin_x, margin_y = translation_margin(size)
    offset = (int(rng.randint(-margin_x, scaled_width - size[0] + margin_x + 1)),
              int(rng.randint(-margin_y, scaled_height - size[1] + margin_y + 1)))
    return AugmentParams(scale=scale, offset=offset, flip=flip, colour=colour)


def apply_augment(params, image, depth, size):
    """Apply ``params`` to an aligned image/depth pair.

    Parameters
    ----------
    params : AugmentParams
    image : np.ndarray
        (H, W, 3) uint8 RGB at any resolution.
    depth : np.ndarray
        (H, W) float metres; invalid pixels are 0 (or NaN) and stay invalid.
    size : tuple of int
        Output (width, height).

    Returns
    -------
    image : np.ndarray
        (height, width, 3) uint8.
    depth : np.ndarray
        (height, width) float32 metres, divided by ``params.scale``.
    """
    width, height = size
    scaled = scaled_size(size, params.scale)
    x, y = params.offset
    image = crop(resize_image(image, scaled), x, y, width, height)
    depth = crop(resize_depth(depth, scaled), x, y, width, height) / np.float32(params.scale)
    if params.flip:
        image, depth = image[:, ::-1], depth[:, ::-1]
    if params.colour != IDENTITY.colour:
        image = np.clip(image * np.asarray(params.colour, np.float32) + 0.5, 0, 255)
    return np.ascontiguousarray(image, dtype=np.uint8), np.ascontiguousarray(depth, dtype=np.float32)


def eigen_augment(rng, image, depth, size):
    """Randomly scale, translate, flip and colour an image/depth pair (Eigen et al. 2014).

    ``apply_augment`` with parameters drawn by ``sample_params`` from ``rng``, the only
    source of randomness; inputs and outputs as ``apply_augment``'s.
    """
    return apply_augment(sample_params(rng, size), image, depth, size)
