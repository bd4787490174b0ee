"""The §5.2 measures, both protocols and the confidence measures, on hand-computed arrays."""
import math
import re

import numpy as np
import pytest

from evaluation.confidence import (FRACTIONS, ReliabilityAccumulator, SparsificationAccumulator, area,
                                   sparsification_curve)
from evaluation.metrics import PROTOCOLS, ErrorAccumulator, compute_errors, eigen_crop, upsample, scored_mask


def test_compute_errors_by_hand():
    gt = np.array([1.0, 2.0, 4.0, 1.0, 1.0])
    pred = np.array([2.0, 2.0, 2.0, 1.5, 1.9])
    # diff = [1, 0, -2, 0.5, 0.9]; ratio max(p/g, g/p) = [2, 1, 2, 1.5, 1.9]
    e = compute_errors(gt, pred)
    assert e["rel"] == pytest.approx((1 + 0 + 0.5 + 0.5 + 0.9) / 5)             # 0.58
    assert e["sq_rel"] == pytest.approx((1 + 0 + 1 + 0.25 + 0.81) / 5)          # 0.612
    assert e["rms"] == pytest.approx(math.sqrt((1 + 0 + 4 + 0.25 + 0.81) / 5))  # sqrt(1.212)
    l2, l15, l19 = math.log10(2), math.log10(1.5), math.log10(1.9)
    assert e["log10"] == pytest.approx((l2 + 0 + l2 + l15 + l19) / 5)
    n2, n15, n19 = math.log(2), math.log(1.5), math.log(1.9)
    assert e["rms_log"] == pytest.approx(math.sqrt((2 * n2 ** 2 + n15 ** 2 + n19 ** 2) / 5))
    # 1 < 1.25; 1.5 < 1.5625; 1.9 < 1.953125; 2 passes none
    assert (e["d1"], e["d2"], e["d3"]) == pytest.approx((1 / 5, 2 / 5, 3 / 5))


def test_perfect_prediction():
    gt = np.array([0.5, 3.0, 9.0])
    e = compute_errors(gt, gt.copy())
    assert e["rel"] == e["rms"] == e["log10"] == e["sq_rel"] == e["rms_log"] == 0
    assert e["d1"] == e["d2"] == e["d3"] == 1


def test_compute_errors_rejects_empty_or_mismatched():
    with pytest.raises(ValueError, match="non-empty arrays of one shape"):
        compute_errors(np.array([]), np.array([]))
    # shapes numpy would broadcast without complaint: only the guard refuses them
    for gt, pred in ((np.ones(3), np.ones(1)), (np.ones((3, 1)), np.ones(3)), (np.ones(1), np.ones(4))):
        message = "non-empty arrays of one shape, got %s and %s" % (gt.shape, pred.shape)
        with pytest.raises(ValueError, match=re.escape(message)):
            compute_errors(gt, pred)
    with pytest.raises(ValueError, match="one shape"):
        compute_errors(np.ones(3), np.ones(2))


def test_eigen_crop_scales_with_the_frame():
    assert eigen_crop(480, 640) == (45, 471, 41, 601)
    # x0.5: 22.5 -> 23, 235.5 -> 236, 20.5 -> 21, 300.5 -> 301 (half up)
    assert eigen_crop(240, 320) == (23, 236, 21, 301)
    # x0.2: 9, 94.2 -> 94, 8.2 -> 8, 120.2 -> 120
    assert eigen_crop(96, 128) == (9, 94, 8, 120)
    mask = scored_mask(np.ones((96, 128), np.float32), PROTOCOLS["eigen"])
    assert mask.sum() == (94 - 9) * (120 - 8)
    assert mask[9, 8] and mask[93, 119] and not mask[8, 8] and not mask[9, 120]
    assert scored_mask(np.ones((96, 128)), PROTOCOLS["full"]).all()


def test_invalid_ground_truth_is_masked():
    gt = np.array([[np.nan, 0.0, -1.0, np.inf, 2.0, 12.0]])
    pred = np.array([[50.0, 50.0, 50.0, 50.0, 3.0, 12.0]])
    # full: only 2.0 and 12.0 count -> rel = (0.5 + 0) / 2
    full = ErrorAccumulator(PROTOCOLS["full"])
    full.add(gt, pred)
    assert full.result()["rel"] == pytest.approx(0.25)
    assert full.result()["n_pixels"] == 2
    # eigen on a 1x6 frame: the scaled crop keeps row 0 (0:1) and cols 0:6; 12 m is beyond 10 m
    eigen = ErrorAccumulator(PROTOCOLS["eigen"])
    assert eigen_crop(1, 6) == (0, 1, 0, 6)
    eigen.add(gt, pred)
    assert eigen.result()["rel"] == pytest.approx(0.5)
    assert eigen.result()["n_pixels"] == 1


def test_eigen_clips_prediction_full_does_not():
    gt = np.full((1, 6), 5.0)
    pred = np.full((1, 6), 20.0)
    eigen, full = ErrorAccumulator(PROTOCOLS["eigen"]), ErrorAccumulator(PROTOCOLS["full"])
    eigen.add(gt, pred)
    full.add(gt, pred)
    assert eigen.result()["rel"] == pytest.approx(1.0)   # 20 -> 10: |10 - 5| / 5
    assert full.result()["rel"] == pytest.approx(3.0)    # |20 - 5| / 5


def test_per_image_mean_differs_from_pooled():
    # 48x64 frame: the eigen crop is rows 5:47, cols 4:60 (4.5 -> 5, 47.1, 4.1, 60.1).
    assert eigen_crop(48, 64) == (5, 47, 4, 60)
    gt_a = np.zeros((48, 64))
    gt_a[10, 10:14] = 1.0         # image A: 4 valid pixels, predicted 2 -> rel 1, rms 1
    gt_b = np.zeros((48, 64))
    gt_b[20, 20] = 1.0            # image B: 1 valid pixel, predicted 1 -> rel 0, rms 0
    pred_a, pred_b = np.full((48, 64), 2.0), np.full((48, 64), 1.0)
    eigen, full = ErrorAccumulator(PROTOCOLS["eigen"]), ErrorAccumulator(PROTOCOLS["full"])
    for acc in (eigen, full):
        acc.add(gt_a, pred_a)
        acc.add(gt_b, pred_b)
    # per image: (1 + 0) / 2; pooled: 4 of 5 pixels have rel 1
    assert eigen.result()["rel"] == pytest.approx(0.5)
    assert full.result()["rel"] == pytest.approx(0.8)
    # rms: per image (1 + 0) / 2; pooled sqrt(4 / 5)
    assert eigen.result()["rms"] == pytest.approx(0.5)
    assert full.result()["rms"] == pytest.approx(math.sqrt(0.8))
    assert eigen.result()["n_images"] == full.result()["n_images"] == 2


def test_pooled_accumulator_equals_concatenation():
    rng = np.random.RandomState(0)
    gts = [rng.uniform(0.5, 9, size=(6, 8)) for _ in range(3)]
    preds = [g * rng.uniform(0.6, 1.6, size=g.shape) for g in gts]
    acc = ErrorAccumulator(PROTOCOLS["full"])
    for g, p in zip(gts, preds):
        acc.add(g, p)
    expected = compute_errors(np.concatenate([g.ravel() for g in gts]), np.concatenate([p.ravel() for p in preds]))
    result = acc.result()
    for name, value in expected.items():
        assert result[name] == pytest.approx(value, rel=1e-9), name


def test_accumulator_without_valid_pixels_fails():
    acc = ErrorAccumulator(PROTOCOLS["eigen"])
    assert acc.add(np.zeros((4, 4)), np.ones((4, 4))) is None
    with pytest.raises(ValueError, match="no valid pixel"):
        acc.result()


def test_upsample_is_bilinear_with_pixel_centres():
    small = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)
    big = upsample(small, (4, 4))
    assert big.shape == (4, 4)
    # half-pixel centres: output x = 0.25 (in) -> clamped 0, 0.75 -> 0.25 of the way, ...
    np.testing.assert_allclose(big[0], [0.0, 0.25, 0.75, 1.0])
    np.testing.assert_allclose(big[:, 0], [0.0, 0.5, 1.5, 2.0])
    assert np.array_equal(upsample(small, (2, 2)), small)  # same size: untouched
    assert upsample(np.ones((12, 16)), (96, 128)).shape == (96, 128)


def test_sparsification_curve_by_hand():
    values = np.array([4.0, 1.0, 3.0, 2.0])
    conf = np.array([0.1, 0.9, 0.2, 0.8])      # removal order by confidence: 4, 3, 2, 1
    curve = sparsification_curve(values, conf, np.array([0, 0.25, 0.5, 0.75]))
    np.testing.assert_allclose(curve, [2.5, 2.0, 1.5, 1.0])   # means of [4,3,2,1], [3,2,1], [2,1], [1]
    rms = sparsification_curve(values, conf, np.array([0, 0.75]), root=True)
    np.testing.assert_allclose(rms, [math.sqrt(2.5), 1.0])
    # trapezoid over 0, 0.25, 0.5, 0.75: 0.25 * (2.25 + 1.75 + 1.25)
    assert area(curve, np.array([0, 0.25, 0.5, 0.75])) == pytest.approx(1.3125)


def _sparsify(conf_of, seed=0, n_images=3):
    rng = np.random.RandomState(seed)
    acc = SparsificationAccumulator()
    for _ in range(n_images):
        gt = np.ones(2000)                          # with gt = 1, rel and squared error rank alike
        pred = gt + rng.uniform(-0.5, 0.5, gt.size)
        acc.add(gt, pred, conf_of(np.abs(pred - gt), rng))
    return acc.result()


def test_oracle_and_perfect_confidence_have_zero_ause():
    result = _sparsify(lambda err, rng: -err)    # perfect: the largest error has the lowest confidence
    for name in ("rel", "rms"):
        np.testing.assert_allclose(result[name]["curves"]["confidence"], result[name]["curves"]["oracle"])
        assert result[name]["ause"] == pytest.approx(0, abs=1e-12)
        assert result[name]["aurg"] > 0.05
    assert len(result["fractions"]) == len(FRACTIONS) == 100
    assert result["fractions"][0] == 0 and result["fractions"][-1] == 0.99


def test_random_confidence_has_no_gain_and_inverse_has_loss():
    random = _sparsify(lambda err, rng: rng.uniform(size=err.size))
    inverse = _sparsify(lambda err, rng: err)    # the worst ranking: trusts the largest errors
    for name in ("rel", "rms"):
        assert abs(random[name]["aurg"]) < 0.02 * random[name]["curves"]["random"][0]
        assert random[name]["ause"] > 0.05
        assert inverse[name]["aurg"] < -0.05


def test_reliability_bins_by_hand():
    acc = ReliabilityAccumulator(alpha=5.0, n_bins=10)
    gt = np.array([1.0, 1.0, 1.0])
    pred = np.array([1.0, 1.0, 2.0])           # eq. 1 targets: 1, 1, exp(-5)
    acc.add(gt, pred, np.array([0.05, 0.95, 0.95]))
    r = acc.result()
    assert r["count"] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    assert r["mean_target"][0] == pytest.approx(1.0)
    assert r["mean_target"][9] == pytest.approx((1 + math.exp(-5)) / 2)
    assert r["mean_confidence"][9] == pytest.approx(0.95) and r["mean_target"][1] is None
    gap = (1 * abs(0.05 - 1.0) + 2 * abs(0.95 - (1 + math.exp(-5)) / 2)) / 3
    assert r["calibration_error"] == pytest.approx(gap)


# --- silog, crops, averaging, alignment (hand values) -----------------------------------

from evaluation.metrics import Protocol, align_prediction, make_protocol, parse_crop  # noqa: E402


def test_silog_by_hand_per_image_and_pooled():
    e = math.e
    # d = ln p - ln g = [1, 1, 0, 0]: mean d^2 = 0.5, mean d = 0.5 -> sqrt(0.5 - 0.25) * 100 = 50
    assert compute_errors(np.ones(4), np.array([e, e, 1.0, 1.0]))["silog"] == pytest.approx(50.0)
    assert compute_errors(np.ones(3), np.full(3, 2.0))["silog"] == pytest.approx(0.0, abs=1e-6)  # pure scale
    # Two images: A d = [1, 1, 0, 0] (silog 50), B d = [0, 0] (silog 0).
    frame_a, frame_b = np.ones((1, 4)), np.ones((1, 2))
    per_image = ErrorAccumulator(make_protocol("full", average="image"))
    pooled = ErrorAccumulator(PROTOCOLS["full"])
    for acc in (per_image, pooled):
        acc.add(frame_a, np.array([[e, e, 1.0, 1.0]]))
        acc.add(frame_b, np.ones((1, 2)))
    assert per_image.result()["silog"] == pytest.approx(25.0)
    # pooled d = [1, 1, 0, 0, 0, 0]: mean d^2 = 1/3, mean d = 1/3 -> sqrt(1/3 - 1/9) * 100
    assert pooled.result()["silog"] == pytest.approx(math.sqrt(1 / 3 - 1 / 9) * 100)


def test_each_crop_on_a_480x640_frame():
    gt = np.ones((480, 640))
    pred = np.ones((480, 640))
    pred[44, :] = 2.0     # inside toolbox (rows 44:471), outside eigen (rows 45:471)
    pred[:, 40] = 3.0     # inside toolbox (cols 40:601), outside eigen (cols 41:601)
    results = {}
    for crop in ("eigen", "toolbox", "none", "44:45:0:640"):
        acc = ErrorAccumulator(make_protocol("eigen", crop=crop))
        acc.add(gt, pred)
        results[crop] = acc.result()
    assert results["eigen"]["n_pixels"] == 426 * 560 and results["eigen"]["rel"] == 0
    # toolbox: 427 x 561 pixels; row 44 has 560 pixels of error 1, column 40 has 427 of error 2
    assert results["toolbox"]["n_pixels"] == 427 * 561
    assert results["toolbox"]["rel"] == pytest.approx((560 * 1 + 427 * 2) / (427 * 561))
    assert results["none"]["rel"] == pytest.approx((639 * 1 + 480 * 2) / (480 * 640))
    assert results["44:45:0:640"]["n_pixels"] == 640
    assert results["44:45:0:640"]["rel"] == pytest.approx((639 * 1 + 2) / 640)
    assert make_protocol("eigen", crop="toolbox").crop_box(240, 320) == (22, 236, 20, 301)
    assert parse_crop("none") is None
    for bad in ("kitti", "1:2:3", "10:5:0:640", "0:481:0:640", "a:b:c:d"):
        with pytest.raises(ValueError, match="crop"):
            parse_crop(bad)


def test_depth_range_and_clipping_follow_the_flags():
    gt = np.array([[0.5, 2.0, 6.0]])
    pred = np.array([[0.1, 2.0, 9.0]])
    acc = ErrorAccumulator(make_protocol("full", min_depth=1.0, max_depth=5.0))
    acc.add(gt, pred)
    # only 2.0 is scored (0.5 <= 1, 6 >= 5); 2.0 within [1, 5]
    assert acc.result()["n_pixels"] == 1 and acc.result()["rel"] == 0
    protocol = make_protocol("full", min_depth=1.0, max_depth=5.0)
    assert (protocol.pred_min, protocol.pred_max) == (1.0, 5.0)
    assert protocol.name == "full+min_depth=1,max_depth=5"
    acc = ErrorAccumulator(make_protocol("eigen", crop="none", max_depth=8.0))
    acc.add(gt, pred)  # 9 clipped to 8: |8 - 6| / 6; 0.1 kept (>= 1e-3): |0.1 - 0.5| / 0.5
    assert acc.result()["rel"] == pytest.approx((0.8 + 0 + 2 / 6) / 3)


def test_median_alignment_scales_before_clipping():
    gt = np.array([[1.0, 2.0, 8.0]])
    pred = np.array([[0.5, 1.0, 40.0]])
    acc = ErrorAccumulator(make_protocol("eigen", crop="none", align="median"))
    acc.add(gt, pred)
    # x median(gt) / median(pred) = 2 -> [1, 2, 80] -> clipped to 10 -> rel (0 + 0 + 2/8) / 3
    assert acc.result()["rel"] == pytest.approx(0.25 / 3)


def test_lstsq_alignment_in_depth_and_inverse_depth_by_hand():
    protocol = make_protocol("full", align="lstsq")
    # x = [1, 1, 2], y = [1, 2, 3]: normal equations give s = 3/2, t = 0 -> fit [1.5, 1.5, 3]
    np.testing.assert_allclose(align_prediction(np.array([1.0, 2, 3]), np.array([1.0, 1, 2]), protocol),
                               [1.5, 1.5, 3.0])
    gt = np.array([[1.0, 2.0, 3.0]])
    acc = ErrorAccumulator(protocol)
    acc.add(gt, np.array([[1.0, 1.0, 2.0]]))
    assert acc.result()["rel"] == pytest.approx((0.5 + 0.25 + 0) / 3)
    # Exact affine relation: aligned perfectly.
    acc = ErrorAccumulator(protocol)
    acc.add(gt, 2 * gt + 1)
    assert acc.result()["rel"] == pytest.approx(0, abs=1e-12)
    # Inverse: x = 1/p = [1, 1, 2], y = 1/g = [1, .5, .25] -> s = -0.5, t = 1.25 -> 1/fit = [4/3, 4/3, 4]
    inverse = make_protocol("eigen", crop="none", align="lstsq", align_space="inverse")
    np.testing.assert_allclose(align_prediction(np.array([1.0, 2, 4]), np.array([1.0, 1, 0.5]), inverse),
                               [4 / 3, 4 / 3, 4.0])
    # A fit below 1 / max_depth is capped there (MiDaS): depth 10 m.
    capped = align_prediction(np.array([1.0, 20.0]), np.array([1.0, 20.0]), make_protocol(
        "eigen", align="lstsq", align_space="inverse", max_depth=5.0))
    np.testing.assert_allclose(capped, [1.0, 5.0])
    # One pixel: the best constant.
    np.testing.assert_allclose(align_prediction(np.array([3.0]), np.array([7.0]), protocol), [3.0])


def test_bad_protocol_combinations():
    with pytest.raises(ValueError, match="align space 'inverse' needs align lstsq"):
        make_protocol("eigen", align="median", align_space="inverse")
    with pytest.raises(ValueError, match="min depth < max depth"):
        make_protocol("eigen", min_depth=5.0, max_depth=2.0)
    with pytest.raises(ValueError, match="average"):
        make_protocol("eigen", average="scene")
    assert make_protocol("eigen") == PROTOCOLS["eigen"]
    assert isinstance(PROTOCOLS["full"], Protocol) and PROTOCOLS["full"].gt == "filled"
    described = PROTOCOLS["eigen"].describe()
    assert described["crop_box"] == [45, 471, 41, 601] and described["gt"] == "raw"
    assert described["prediction_range"] == [1e-3, 10.0] and described["average"] == "image"
    assert PROTOCOLS["full"].describe()["max_depth"] is None


def bts_eval(gt_depths, pred_depths, min_depth=1e-3, max_depth=10.0, dtype=None):
    """BTS utils/eval_with_pngs.py --dataset nyu --eigen_crop, restated: per-image metrics, then the mean.

    ``dtype``: compute the metrics in this precision after clipping and masking (BTS: the arrays' own).
    """
    names = ("silog", "log10", "rel", "sq_rel", "rms", "rms_log", "d1", "d2", "d3")
    scores = {n: [] for n in names}
    for gt, pred in zip(gt_depths, pred_depths):
        pred = pred.copy()
        pred[pred < min_depth] = min_depth
        pred[pred > max_depth] = max_depth
        valid = (gt > min_depth) & (gt < max_depth)
        crop = np.zeros(gt.shape, bool)
        crop[45:471, 41:601] = True
        g, p = gt[valid & crop], pred[valid & crop]
        if dtype is not None:
            g, p = g.astype(dtype), p.astype(dtype)
        thresh = np.maximum(g / p, p / g)
        err = np.log(p) - np.log(g)
        for n, v in zip(names, (np.sqrt(np.mean(err ** 2) - np.mean(err) ** 2) * 100,
                                np.mean(np.abs(np.log10(p) - np.log10(g))), np.mean(np.abs(g - p) / g),
                                np.mean((g - p) ** 2 / g), np.sqrt(np.mean((g - p) ** 2)),
                                np.sqrt(np.mean((np.log(g) - np.log(p)) ** 2)), (thresh < 1.25).mean(),
                                (thresh < 1.25 ** 2).mean(), (thresh < 1.25 ** 3).mean())):
            scores[n].append(v)
    return {n: float(np.mean(v)) for n, v in scores.items()}


def test_eigen_preset_equals_bts_on_the_same_arrays():
    rng = np.random.RandomState(3)
    gts, preds = [], []
    for _ in range(3):
        gt = rng.uniform(0.5, 11.0, size=(480, 640)).astype(np.float32)   # some beyond 10 m
        gt[rng.uniform(size=gt.shape) < 0.3] = 0                         # raw holes
        gts.append(gt)
        preds.append((gt + rng.normal(0, 0.5, gt.shape)).clip(-1, 12).astype(np.float32))  # some < 1e-3, > 10
    acc = ErrorAccumulator(PROTOCOLS["eigen"])
    for gt, pred in zip(gts, preds):
        acc.add(gt, pred)
    ours = acc.result()
    # Same formulas in float64: equal to rounding; on BTS's own float32 arrays: to float32 precision.
    exact = bts_eval(gts, preds, dtype=np.float64)
    as_bts = bts_eval(gts, preds)
    for name in exact:
        assert ours[name] == pytest.approx(exact[name], rel=1e-9), name
        assert ours[name] == pytest.approx(as_bts[name], rel=1e-5), name


def test_pseudo_label_table_by_hand():
    """Table 1's definitions on one 2x2 map: rel over valid pixels with C >= T, kept over all / valid pixels."""
    from evaluation.pseudo_labels import PseudoLabelTable
    gt = np.array([[[1.0, 2.0], [4.0, np.nan]]], np.float32)      # the NaN pixel is not valid
    depth = np.array([[[1.1, 2.0], [2.0, 1.0]]], np.float32)
    conf = np.array([[[0.95, 0.5], [0.9, 0.99]]], np.float32)      # C = T counts as confident
    table = PseudoLabelTable({0.0, 0.9, 0.9})
    table.add(gt, depth, conf)
    high, every = table.rows()                                      # highest threshold first
    assert (high["t_semi"], every["t_semi"]) == (0.9, 0.0)
    # T = 0.9: confident (0,0), (1,0), (1,1); valid among them (0,0) and (1,0): rel (0.1/1 + 2/4) / 2
    assert high["rel"] == pytest.approx(0.3, rel=1e-6) and high["n_pixels"] == 2
    assert (high["kept_fraction"], high["kept_valid_fraction"]) == (0.75, pytest.approx(2 / 3))
    # T = 0: every valid pixel, rel (0.1 + 0 + 0.5) / 3
    assert every["rel"] == pytest.approx(0.2, rel=1e-6) and every["n_pixels"] == 3
    assert (every["kept_fraction"], every["kept_valid_fraction"]) == (1.0, 1.0)
    empty = PseudoLabelTable({0.999})
    empty.add(gt, depth, conf)
    assert empty.rows()[0]["rel"] is None and empty.rows()[0]["kept_fraction"] == 0.0
