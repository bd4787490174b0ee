"""Equations 1-6 on hand-computed 2x2 examples."""
import math

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from training import losses

NAN = float("nan")
F = mx.nd


def nd(rows):
    return mx.nd.array(rows).reshape((1, 1, 2, 2))


def test_supervised_loss_masks_invalid_depth():
    pred = nd([[1, 2], [3, 4]])
    gt = nd([[2, 2], [NAN, 0]])  # two valid pixels: |1-2| + |2-2| = 1
    assert losses.supervised_loss(F, pred, gt, 4).asscalar() == pytest.approx(0.25)


def test_supervised_loss_gradient_is_sign_over_num_pixels_and_zero_on_invalid():
    pred = nd([[1, 3], [3, 4]])
    gt = nd([[2, 2], [NAN, -1]])
    pred.attach_grad()
    with autograd.record():
        loss = losses.supervised_loss(F, pred, gt, 4)
    loss.backward()
    np.testing.assert_allclose(pred.grad.asnumpy().ravel(), [-0.25, 0.25, 0, 0])


def test_confidence_target_eq1():
    pred = nd([[1, 2], [3, 4]])
    gt = nd([[2, 2], [NAN, 8]])
    want = [math.exp(-5 * 1 / 2), 1.0, 0.0, math.exp(-5 * 4 / 8)]
    np.testing.assert_allclose(losses.confidence_target(F, pred, gt, 5).asnumpy().ravel(), want, rtol=1e-6)


def test_confidence_target_does_not_train_the_depth_net():
    """Eq. 1 treats E as a constant: no gradient flows from Y to the depth prediction."""
    pred = nd([[1, 2], [3, 4]])
    pred.attach_grad()
    with autograd.record():
        target = losses.confidence_target(F, pred, nd([[2, 2], [2, 2]]), 5)
    target.backward()
    assert np.all(pred.grad.asnumpy() == 0)


def test_confidence_loss_trains_the_confidence_only():
    """Eq. 2 on its own: Y is a constant target even when it arrives with a gradient path."""
    conf = nd([[0.5, 0.5], [0.5, 0.5]])
    target = nd([[0.2, 0.9], [0.7, 0.1]])
    gt = nd([[2, 2], [NAN, 2]])
    conf.attach_grad()
    target.attach_grad()
    with autograd.record():
        loss = losses.confidence_loss(F, conf, target, gt, 4)
    loss.backward()
    assert np.all(target.grad.asnumpy() == 0)
    # d|C - Y| / dC = sign(C - Y) / num_pixels on valid pixels: +, -, (invalid) 0, +
    np.testing.assert_allclose(conf.grad.asnumpy().ravel(), [0.25, -0.25, 0, 0.25])


def test_confidence_loss_of_the_target_does_not_train_the_depth_net():
    pred = nd([[1, 2], [3, 4]])
    pred.attach_grad()
    with autograd.record():
        target = losses.confidence_target(F, pred, nd([[2, 2], [2, 2]]), 5)
        loss = losses.confidence_loss(F, mx.nd.zeros_like(target), target, nd([[2, 2], [2, 2]]), 4)
    loss.backward()
    assert np.all(pred.grad.asnumpy() == 0)


def test_confidence_loss_eq2():
    conf = nd([[0.5, 0.5], [0.5, 0.5]])
    target = nd([[math.exp(-2.5), 1.0], [0.0, 0.3]])
    gt = nd([[2, 2], [NAN, 3]])  # third pixel invalid: excluded
    want = (abs(0.5 - math.exp(-2.5)) + 0.5 + 0.2) / 4
    assert losses.confidence_loss(F, conf, target, gt, 4).asscalar() == pytest.approx(want, rel=1e-6)


def test_confidence_mask_eq5_threshold_edge_counts():
    conf = mx.nd.array([0.8999, 0.9, 0.95, 1.0])
    np.testing.assert_array_equal(losses.confidence_mask(F, conf, 0.9).asnumpy(), [0, 1, 1, 1])


def test_semi_supervised_loss_eq6_and_constant_targets():
    pred = nd([[1, 2], [3, 4]])
    pseudo = nd([[2, 2], [2, 2]])
    mask = nd([[1, 0], [1, 0]])
    for x in (pred, pseudo, mask):
        x.attach_grad()
    with autograd.record():
        loss = losses.semi_supervised_loss(F, pred, pseudo, mask, 4)
    loss.backward()
    assert loss.asscalar() == pytest.approx((1 + 1) / 4)
    np.testing.assert_allclose(pred.grad.asnumpy().ravel(), [-0.25, 0, 0.25, 0])
    assert np.all(pseudo.grad.asnumpy() == 0) and np.all(mask.grad.asnumpy() == 0)


def test_depth_loss_eq3():
    assert losses.depth_loss(1.0, 2.0, 0.1) == pytest.approx(1.2)
    assert losses.depth_loss(1.0, 2.0, 0.0) == 1.0
