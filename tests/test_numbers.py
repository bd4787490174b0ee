"""The shared numeric rules (common/numbers.py) and the one depth floor (config.DEPTH_FLOOR), by hand."""
import numpy as np

import config
from common.numbers import round_half_up, valid_mask
from evaluation import metrics
from symbols import depth_net


def test_round_half_up_is_not_bankers_rounding():
    assert [round_half_up(x) for x in (396.5, 397.5, 2.4999, 2.5, 0.5, -0.5)] == [397, 398, 2, 3, 1, 0]
    assert round(396.5) == 396  # what Python's round would have given


def test_valid_mask_is_finite_and_positive():
    depth = np.array([0.0, -1.0, np.nan, np.inf, -np.inf, 1e-9, 2.0])
    np.testing.assert_array_equal(valid_mask(depth), [False, False, False, False, False, True, True])


def test_one_depth_floor_for_the_network_and_the_metrics():
    assert config.DEPTH_FLOOR == 1e-3
    assert depth_net.MIN_DEPTH == metrics.PRED_FLOOR == config.DEPTH_FLOOR
    # a prediction below the floor is scored as the floor: |1e-3 - 1| / 1 for a prediction of 1e-6
    acc = metrics.ErrorAccumulator(metrics.PROTOCOLS["full"])
    acc.add(np.ones((4, 4), np.float32), np.full((4, 4), 1e-6, np.float32))
    assert abs(acc.result()["rel"] - (1 - 1e-3)) < 1e-7  # float32 inputs
