"""The one pixel convention (data.grid): training targets and upsampling agree to the pixel."""
import numpy as np
import pytest

from data import grid
from data.augment import IDENTITY, apply_augment
from data.dataset import depth_to_quarter
from evaluation.metrics import upsample

FULL = (48, 64)  # (H, W) "full resolution"
INPUT = (32, 24)  # (w, h) network input: full / 2, as 640x480 -> 320x240


def test_source_index_by_hand():
    # 4 -> 2: centres at 0.5 and 2.5 -> ties (0, 1) and (2, 3).
    a, b = grid.source_index(2, 4)
    assert a.tolist() == [0, 2] and b.tolist() == [1, 3]
    # 3 -> 2: centres at 0.25, 1.75 -> nearest 0 and 2, no tie.
    a, b = grid.source_index(2, 3)
    assert a.tolist() == b.tolist() == [0, 2]
    # 2 -> 4 (enlarging): centres at -0.25, 0.25, 0.75, 1.25 -> 0, 0, 1, 1.
    a, b = grid.source_index(4, 2)
    assert a.tolist() == b.tolist() == [0, 0, 1, 1]
    a, b = grid.source_index(3, 3)
    assert a.tolist() == b.tolist() == [0, 1, 2]


def test_resize_depth_averages_exact_ties_of_valid_pixels_only():
    depth = np.array([[1, 2, 0, 4],
                      [3, 4, 0, np.nan],
                      [5, 6, 7, 8],
                      [7, 8, 9, 10]], np.float32)
    out = grid.resize_depth(depth, (2, 2))
    np.testing.assert_array_equal(out, [[2.5, 4.0], [6.5, 8.5]])
    assert out.dtype == np.float32
    assert grid.resize_depth(np.zeros((4, 4), np.float32), (2, 2)).tolist() == [[0, 0], [0, 0]]
    # Odd factor: nearest pixel copied, nothing blended.
    odd = np.arange(1, 10, dtype=np.float32).reshape(3, 3)
    np.testing.assert_array_equal(grid.resize_depth(odd, (1, 1)), [[5.0]])


def edge_shift(edge, axis):
    """Where the upsampled perfect prediction of a step at ``edge`` crosses the midpoint, minus ``edge``."""
    depth = np.full(FULL, 2.0, np.float32)
    if axis == 0:
        depth[edge:, :] = 4.0
    else:
        depth[:, edge:] = 4.0
    image = np.zeros(FULL + (3,), np.uint8)
    target = depth_to_quarter(apply_augment(IDENTITY, image, depth, INPUT)[1])  # what training fits
    assert target.shape == (FULL[0] // 8, FULL[1] // 8)
    up = upsample(target, FULL)
    profiles = up if axis == 1 else up.T
    crossing = np.argmax(profiles > 3.0, axis=1)  # first full-resolution pixel on the far side
    assert np.all(crossing == crossing[0])
    return int(crossing[0]) - edge


@pytest.mark.parametrize("axis", [0, 1])
def test_perfect_target_upsampled_puts_a_step_edge_on_its_pixel(axis):
    # One 1/4 pixel spans 8 full-resolution pixels.  An edge on a block border or through
    # a block's centre comes back on exactly its pixel; other phases are quantised to
    # within 2 pixels, symmetrically, so the mean shift over the 8 phases is 0.
    shifts = [edge_shift(16 + phase, axis) for phase in range(8)]
    assert shifts[0] == 0 and shifts[4] == 0
    # By hand: block k's target is the mean of full-res pixels 8k+2..8k+5, interpolated
    # between block centres 8k+3.5.
    assert shifts == [0, -1, -2, -2, 0, 2, 2, 1]
    assert sum(shifts) == 0
