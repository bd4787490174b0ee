"""The §5.2 measures, both protocols and the confidence measures, on hand-computed arrays."""
import math
import re
from dataclasses import asdict

import numpy as np
import pytest

from evaluation.confidence import (FRACTIONS, ReliabilityAccumulator, SparsificationAccumulator, area,
                                   sparsification_curve)
from evaluation.metrics import (DEFAULT_PROTOCOL, PROTOCOLS, ErrorAccumulator, compute_errors, eigen_crop, upsample,
                                scored_mask)


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


# --- every averaging rule of every protocol, against a restatement ------------------------------
# §5.2 names the measures (rel, rms, log10, delta < 1.25^k) after [6] [8]; their formulas, the
# range, crop and per-image mean below are the common evaluation code's (Eigen et al. 2014, BTS
# eval_with_pngs.py), typed out again here, not read from evaluation/metrics.py.
METRIC_NAMES = ("rel", "sq_rel", "rms", "rms_log", "log10", "silog", "d1", "d2", "d3")


def restated_errors(g, p):
    """The measures on 1-D float64 pixels, each written from its definition."""
    ratio = np.maximum(g / p, p / g)
    d = np.log(p) - np.log(g)
    return {"rel": np.mean(np.abs(p - g) / g), "sq_rel": np.mean((p - g) ** 2 / g),
            "rms": np.sqrt(np.mean((p - g) ** 2)), "rms_log": np.sqrt(np.mean(d ** 2)),
            "log10": np.mean(np.abs(np.log10(p) - np.log10(g))),
            "silog": np.sqrt(np.mean(d ** 2) - np.mean(d) ** 2) * 100,
            "d1": np.mean(ratio < 1.25), "d2": np.mean(ratio < 1.25 ** 2), "d3": np.mean(ratio < 1.25 ** 3)}


def restated_pixels(gts, preds, box, low, high):
    """Per image, the scored (gt, pred): finite gt with low < gt < high inside ``box``, pred clipped to
    [max(low, 1 mm), high]; images without a scored pixel are left out."""
    out = []
    for gt, pred in zip(gts, preds):
        with np.errstate(invalid="ignore"):
            keep = np.isfinite(gt) & (gt > 0) & (gt > low) & (gt < high)
        if box is not None:
            inside = np.zeros_like(keep)
            inside[box[0]:box[1], box[2]:box[3]] = True
            keep &= inside
        if keep.any():
            out.append((gt[keep].astype(np.float64), np.clip(pred[keep].astype(np.float64), max(low, 1e-3), high)))
    return out


def restated_average(pixels, per_image):
    """Per image: each image's measures, then their plain mean.  Pooled: the measures of all pixels at once."""
    if per_image:
        each = [restated_errors(g, p) for g, p in pixels]
        return {name: float(np.mean([e[name] for e in each])) for name in each[0]}
    return {k: float(v) for k, v in restated_errors(np.concatenate([g for g, _ in pixels]),
                                                    np.concatenate([p for _, p in pixels])).items()}


# 48 x 64 frames: the eigen crop scaled by 0.1 is rows 5:47, cols 4:60 (4.5 -> 5 half up, 47.1, 4.1, 60.1).
SMALL_EIGEN_BOX = (5, 47, 4, 60)


def uneven_images():
    """Three images with 3, 8 and 17 ordinary scored pixels and one without any, plus pixels each rule
    treats differently: outside the crop, gt exactly 1 mm and 10 m, beyond 10 m, NaN, inf, negative,
    predictions above 10 m and at or below 0."""
    rng = np.random.RandomState(7)
    gts, preds = [], []
    for n in (3, 8, 17):
        gt = np.zeros((48, 64))
        rows, cols = rng.randint(6, 46, n), rng.randint(5, 59, n)
        gt[rows, cols] = rng.uniform(0.7, 9.5, n)
        gt[2, 10], gt[20, 62], gt[4, 30] = 3.0, 4.0, 5.0    # outside the eigen crop (row 4: inside toolbox's)
        gt[30, 2 + n] = 1e-3                                # range ends: excluded by eigen's open interval
        gt[31, 2 + n], gt[32, 30] = 10.0, 10.0 + n          # 10 m exactly, beyond 10 m
        gt[33, 30], gt[34, 30], gt[35, 30] = np.nan, np.inf, -1.0
        pred = gt * rng.uniform(0.6, 1.8, gt.shape) + rng.uniform(-0.3, 0.3, gt.shape)
        pred[rows[0], cols[0]] = 25.0                       # clipped to 10 m by eigen only
        pred[rows[1], cols[1]] = -0.5 if n > 3 else 0.0     # clipped to the 1 mm floor by both
        gts.append(gt)
        preds.append(pred)
    gts.append(np.zeros((48, 64)))                          # no scored pixel at all
    preds.append(np.ones((48, 64)))
    return gts, preds


# (protocol, crop box, low, high, per image): the two presets and each with the other averaging.
PROTOCOL_CASES = {
    "eigen": (lambda: PROTOCOLS["eigen"], SMALL_EIGEN_BOX, 1e-3, 10.0, True),
    "eigen_pooled": (lambda: make_protocol("eigen", average="pixel"), SMALL_EIGEN_BOX, 1e-3, 10.0, False),
    "full": (lambda: PROTOCOLS["full"], None, 0.0, np.inf, False),
    "full_per_image": (lambda: make_protocol("full", average="image"), None, 0.0, np.inf, True),
    "range_override": (lambda: make_protocol("eigen", crop="none", min_depth=1.0, max_depth=5.0), None, 1.0, 5.0, True),
}


@pytest.mark.parametrize("case", sorted(PROTOCOL_CASES))
def test_every_measure_of_every_protocol_equals_the_restatement(case):
    # All nine measures, the image / pixel counts and the averaging of each protocol on images with
    # unequal numbers of scored pixels, against restated_average (per image: BTS; pooled: DenseDepth).
    make, box, low, high, per_image = PROTOCOL_CASES[case]
    gts, preds = uneven_images()
    acc = ErrorAccumulator(make())
    for gt, pred in zip(gts, preds):
        acc.add(gt, pred)
    got = acc.result()
    pixels = restated_pixels(gts, preds, box, low, high)
    want = restated_average(pixels, per_image)
    for name in METRIC_NAMES:
        assert got[name] == pytest.approx(want[name], rel=1e-9, abs=1e-12), name
    assert got["n_images"] == len(pixels) and got["n_empty"] == len(gts) - len(pixels)
    assert got["n_pixels"] == sum(g.size for g, _ in pixels)
    # The data tells the rules apart: a swapped rule would give other numbers for every measure.
    other = restated_average(pixels, not per_image)
    for name in METRIC_NAMES:
        assert abs(other[name] - want[name]) > 1e-4 * max(abs(want[name]), 1e-3), name
    each = [restated_errors(g, p) for g, p in pixels]
    for name, squared in (("rms", lambda e: e["rms"] ** 2), ("rms_log", lambda e: e["rms_log"] ** 2)):
        root_last = math.sqrt(np.mean([squared(e) for e in each]))  # sqrt after the mean over images
        assert abs(root_last - got[name]) > 1e-4, name
    abs_first = np.mean(np.concatenate([np.abs(p - g) for g, p in pixels]))  # sqrt before the pixel mean
    assert abs(abs_first - got["rms"]) > 1e-4


def test_rms_takes_the_root_after_the_pixel_mean_and_per_image_before_the_image_mean():
    # Hand values.  A: errors 1 and 3 (rms sqrt(5), not mean |e| = 2); B: one error 0.
    # Per image (eigen): (sqrt(5) + 0) / 2; pooled (full): sqrt((1 + 9 + 0) / 3).
    gt_a, pred_a = np.array([[2.0, 4.0]]), np.array([[3.0, 7.0]])
    gt_b, pred_b = np.array([[5.0]]), np.array([[5.0]])
    per_image, pooled = ErrorAccumulator(make_protocol("eigen", crop="none")), ErrorAccumulator(PROTOCOLS["full"])
    for acc in (per_image, pooled):
        acc.add(gt_a, pred_a)
        acc.add(gt_b, pred_b)
    assert per_image.result()["rms"] == pytest.approx(math.sqrt(5) / 2)
    assert pooled.result()["rms"] == pytest.approx(math.sqrt(10 / 3))
    # rms_log: A d = ln 1.5, ln 1.75
    l15, l175 = math.log(1.5), math.log(1.75)
    assert per_image.result()["rms_log"] == pytest.approx(math.sqrt((l15 ** 2 + l175 ** 2) / 2) / 2)
    assert pooled.result()["rms_log"] == pytest.approx(math.sqrt((l15 ** 2 + l175 ** 2) / 3))


def test_delta_thresholds_are_strict_powers_of_1_25():
    # Ratios exactly 1.25, 1.25^2 = 1.5625 = 100/64, 1.25^3 = 1.953125 = 125/64 (exact in binary):
    # "delta < 1.25^k" (§5.2) does not count a pixel that sits on its threshold.  Both directions.
    gt = np.array([4.0, 64.0, 64.0, 5.0, 100.0, 125.0])
    pred = np.array([5.0, 100.0, 125.0, 4.0, 64.0, 64.0])
    e = compute_errors(gt, pred)
    assert (e["d1"], e["d2"], e["d3"]) == (0.0, 2 / 6, 4 / 6)
    # Just inside each threshold: counted.
    e = compute_errors(np.array([1.0, 1.0, 1.0]), np.array([1.2499, 1.5624, 1.9531]))
    assert (e["d1"], e["d2"], e["d3"]) == pytest.approx((1 / 3, 2 / 3, 1.0))


def test_log10_is_base_10_and_rel_divides_by_the_ground_truth():
    # pred 10 x gt: |log10 10| = 1 (ln would give 2.303); rel |10 - 1| / 1 = 9 (not / pred: 0.9).
    e = compute_errors(np.array([1.0]), np.array([10.0]))
    assert e["log10"] == pytest.approx(1.0) and e["rel"] == pytest.approx(9.0) and e["sq_rel"] == pytest.approx(81.0)
    e = compute_errors(np.array([10.0]), np.array([1.0]))
    assert e["log10"] == pytest.approx(1.0) and e["rel"] == pytest.approx(0.9) and e["sq_rel"] == pytest.approx(8.1)
    assert e["rms_log"] == pytest.approx(math.log(10)) and e["rms"] == pytest.approx(9.0)


def test_depth_range_is_open_at_both_ends():
    # BTS: valid = (gt > min_depth) & (gt < max_depth); a gt exactly on either bound is not scored.
    gt = np.array([[1e-3, 10.0, 5.0, 0.0, np.nan, 9.999]])
    pred = np.full((1, 6), 5.0)
    acc = ErrorAccumulator(PROTOCOLS["eigen"])      # 1 x 6 frame: the scaled crop keeps all of it
    acc.add(gt, pred)
    assert acc.result()["n_pixels"] == 2
    acc = ErrorAccumulator(make_protocol("full", min_depth=1.0, max_depth=5.0))
    acc.add(np.array([[1.0, 5.0, 3.0, 4.999, 1.001]]), np.full((1, 5), 3.0))
    assert acc.result()["n_pixels"] == 3
    # full: every finite gt > 0, the smallest and the largest included
    acc = ErrorAccumulator(PROTOCOLS["full"])
    acc.add(np.array([[1e-3, 1e-6, 80.0, 0.0, -2.0, np.inf, np.nan]]), np.ones((1, 7)))
    assert acc.result()["n_pixels"] == 3


def test_predictions_are_clipped_to_the_floor_in_every_protocol():
    # [max(min_depth, 1 mm), max_depth]: a prediction at or below 0 becomes 1 mm, also in ``full``
    # (min_depth 0), so the log measures stay finite.
    for protocol in (PROTOCOLS["full"], PROTOCOLS["eigen"]):
        acc = ErrorAccumulator(make_protocol(protocol.name, crop="none"))
        acc.add(np.array([[2.0, 1.0]]), np.array([[0.0, -3.0]]))
        r = acc.result()
        assert r["rel"] == pytest.approx(((2 - 1e-3) / 2 + (1 - 1e-3) / 1) / 2), protocol.name
        assert r["log10"] == pytest.approx((math.log10(2 / 1e-3) + math.log10(1 / 1e-3)) / 2), protocol.name
    acc = ErrorAccumulator(make_protocol("full", min_depth=0.5, max_depth=4.0))
    acc.add(np.array([[1.0, 2.0]]), np.array([[0.1, 9.0]]))   # 0.1 -> 0.5, 9 -> 4
    assert acc.result()["rel"] == pytest.approx((0.5 + 1.0) / 2)


def test_an_image_without_scored_pixels_does_not_count_in_the_per_image_mean():
    # Per image: the mean over images with >= 1 scored pixel (BTS's loop never sees an empty one).
    acc = ErrorAccumulator(make_protocol("eigen", crop="none"))
    acc.add(np.array([[1.0, 1.0]]), np.array([[2.0, 2.0]]))    # rel 1
    acc.add(np.array([[0.0, 20.0]]), np.array([[2.0, 2.0]]))   # nothing scored
    acc.add(np.array([[4.0, 0.0]]), np.array([[4.0, 9.0]]))    # rel 0
    r = acc.result()
    assert r["rel"] == pytest.approx(0.5) and (r["n_images"], r["n_empty"], r["n_pixels"]) == (2, 1, 3)


def test_preset_definitions():
    # Every field of both presets, restated from the module docstring (eigen: BTS / AdaBins
    # --eigen_crop; full: FCRN-era whole frame, pooled).
    assert DEFAULT_PROTOCOL == "eigen"
    assert asdict(PROTOCOLS["eigen"]) == {"name": "eigen", "gt": "raw", "crop": "eigen", "min_depth": 1e-3,
                                          "max_depth": 10.0, "average": "image", "align": "none",
                                          "align_space": "depth"}
    assert asdict(PROTOCOLS["full"]) == {"name": "full", "gt": "filled", "crop": "none", "min_depth": 0.0,
                                         "max_depth": np.inf, "average": "pixel", "align": "none",
                                         "align_space": "depth"}
    assert PROTOCOLS["eigen"].per_image and not PROTOCOLS["full"].per_image
    assert (PROTOCOLS["eigen"].pred_min, PROTOCOLS["eigen"].pred_max) == (1e-3, 10.0)
    assert (PROTOCOLS["full"].pred_min, PROTOCOLS["full"].pred_max) == (1e-3, np.inf)


# (top, bottom, left, right) Python slices of the 480 x 640 frame, typed from the code they name:
# BTS/AdaBins eval (45:471, 41:601), DenseDepth's eigen_test_crop.npy (inclusive 20..459, 24..615),
# the NYU toolbox's projection region (44:471, 40:601).
NAMED_CROPS = {"eigen": (45, 471, 41, 601), "bts": (45, 471, 41, 601), "dorn": (20, 460, 24, 616),
               "toolbox": (44, 471, 40, 601)}


@pytest.mark.parametrize("crop", sorted(NAMED_CROPS))
def test_named_crop_scores_exactly_its_box(crop):
    top, bottom, left, right = NAMED_CROPS[crop]
    want = np.zeros((480, 640), bool)
    want[top:bottom, left:right] = True
    got = scored_mask(np.ones((480, 640)), make_protocol("eigen", crop=crop))
    assert np.array_equal(got, want)


def test_table1_rel_is_pooled_over_images():
    # Table 1 (pseudo_labels docstring): rel pooled over the confident valid pixels of all images.
    # Image 0: one pixel, rel 1; image 1: three pixels, rel 0 -> pooled 1/4 (per image would be 1/2).
    from evaluation.pseudo_labels import PseudoLabelTable
    gt = np.array([[[1.0, 0.0], [0.0, 0.0]], [[1.0, 2.0], [3.0, 0.0]]], np.float32)
    depth = np.array([[[2.0, 1.0], [1.0, 1.0]], [[1.0, 2.0], [3.0, 1.0]]], np.float32)
    table = PseudoLabelTable({0.0})
    table.add(gt, depth, np.ones_like(gt))
    row = table.rows()[0]
    assert row["rel"] == pytest.approx(0.25) and row["n_pixels"] == 4


def test_sparsification_averages_per_image_curves_rms_rooted_per_image():
    # Curves per image, then the mean over images (evaluation/confidence.py docstring), with the
    # root of rms taken per image.  A: errors [1, 0]; B: errors [0, 0, 0, 1]; fractions 0 and 0.5.
    acc = SparsificationAccumulator(fractions=np.array([0.0, 0.5]))
    acc.add(np.array([1.0, 1.0]), np.array([2.0, 1.0]), np.array([0.1, 0.9]))
    acc.add(np.ones(4), np.array([1.0, 1.0, 1.0, 2.0]), np.array([0.9, 0.8, 0.7, 0.6]))
    r = acc.result()
    # rel at f = 0: A 0.5, B 0.25 -> 0.375 (pooled would be 2/6); at f = 0.5 the error pixel is gone.
    np.testing.assert_allclose(r["rel"]["curves"]["confidence"], [0.375, 0.0])
    np.testing.assert_allclose(r["rel"]["curves"]["random"], [0.375, 0.375])
    # rms at f = 0: A sqrt(1/2), B sqrt(1/4) -> (0.7071 + 0.5) / 2 (not sqrt(3/8), not sqrt(2/6))
    np.testing.assert_allclose(r["rms"]["curves"]["confidence"], [(math.sqrt(0.5) + 0.5) / 2, 0.0])
    np.testing.assert_allclose(r["rms"]["curves"]["oracle"], [(math.sqrt(0.5) + 0.5) / 2, 0.0])
    np.testing.assert_allclose(r["rms"]["curves"]["random"], [(math.sqrt(0.5) + 0.5) / 2] * 2)
    assert r["n_images"] == 2
