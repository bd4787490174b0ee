"""One training step against a hand-written one: single backward pass, SGD / Adam updates, BatchNorm snapshot."""
import math

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

import train
from training.bn_snapshot import BatchNormSnapshot
from training.trainer import Trainer


def test_snapshot_restores_every_statistic_on_every_device():
    ctxs = [mx.cpu(0), mx.cpu(1)]
    params = []
    for name, shape in (("mean", (3,)), ("var", (2, 2)), ("other", (5,))):
        p = gluon.Parameter(name, shape=shape, grad_req="null", init=mx.init.Zero())
        p.initialize(ctx=ctxs)
        params.append(p)
    rng = np.random.RandomState(0)
    first = [rng.rand(*p.shape).astype("float32") for p in params]
    for p, value in zip(params, first):
        p.set_data(mx.nd.array(value))
    snapshot = BatchNormSnapshot(params)
    snapshot.take()
    for p in params:  # a forward pass moves them, differently per device
        for k, a in enumerate(p.list_data()):
            a[:] = a + 10 * (k + 1)
    snapshot.restore()
    for p, value in zip(params, first):
        for a in p.list_data():
            np.testing.assert_array_equal(a.asnumpy(), value)
    # the next take() copies the values of that moment, not those of the first
    for p in params:
        for a in p.list_data():
            a[:] = 7.0
    snapshot.take()
    for p in params:
        for a in p.list_data():
            a[:] = -1.0
    snapshot.restore()
    assert all((a.asnumpy() == 7.0).all() for p in params for a in p.list_data())
    BatchNormSnapshot([]).take()  # frozen BatchNorm: nothing to copy


def trainer(tiny_data, out):
    opts = train.parse_args(["--pretrained", "0", "--batch-size", "2", "--labeled-frac", "0.25", "--no-progress",
                             "--data", tiny_data, "--out", str(out), "--lambda-semi", "0.1", "--conf-lr", "1e-3"])
    return Trainer(opts)


def test_train_step_equals_a_hand_written_step(tiny_data, tmp_path):
    """train_step (one backward pass of both losses, SGD with momentum, Adam) against two backward
    passes and the SGD-momentum / Adam formulas written out, from the same initial weights."""
    got, ref = trainer(tiny_data, tmp_path / "a"), trainer(tiny_data, tmp_path / "b")
    image, depth = (mx.nd.array(np.stack(a)) for a in zip(*[got.labeled[i] for i in range(2)]))
    ids = mx.nd.array([1, 2, 5, 6, 8, 10], dtype="int32")
    u_image = mx.nd.array(np.stack([got.unlabeled[i][0] for i in ids.asnumpy()]))
    batch = (image, depth), (u_image, ids)

    _, finite = got.train_step(*batch, epoch=1, phase="semi")
    assert finite

    def trained(t):  # the parameters of both nets, in the same order for both trainers
        return {k: [p for p in net.collect_params().values() if p.grad_req != "null"]
                for k, net in (("depth", t.depth_net), ("conf", t.conf_net))}

    params, updated = trained(ref), trained(got)
    before = {k: [p.data().asnumpy().copy() for p in ps] for k, ps in params.items()}
    with autograd.record():
        terms = ref.compute_losses(*batch, epoch=1, phase="semi")[0]
    grads = {}
    for key in ("conf", "depth"):  # one loss at a time: each reaches only its own net
        autograd.backward(terms[key], retain_graph=key == "conf")
        grads[key] = [p.grad().asnumpy().copy() for p in params[key]]
    o = ref.opts
    lr = got.depth_trainer.learning_rate  # the poly schedule at update 1
    assert 0.99 * o.lr < lr <= o.lr
    for p, w, g in zip(updated["depth"], before["depth"], grads["depth"]):
        # first SGD step with momentum: mom = -lr (g + wd w), w += mom
        want = w - lr * (g + o.wd * w)
        np.testing.assert_allclose(p.data().asnumpy(), want, rtol=1e-5, atol=1e-7, err_msg=p.name)
    b1, b2, eps = 0.9, 0.999, 1e-8
    lr_t = o.conf_lr * math.sqrt(1 - b2) / (1 - b1)
    for p, w, g in zip(updated["conf"], before["conf"], grads["conf"]):
        # first Adam step: m = (1 - b1) g, v = (1 - b2) g^2, w -= lr_t m / (sqrt(v) + eps)
        want = w - lr_t * ((1 - b1) * g) / (np.sqrt((1 - b2) * g * g) + eps)
        np.testing.assert_allclose(p.data().asnumpy(), want, rtol=1e-5, atol=1e-6, err_msg=p.name)
    # the finite step keeps what its forward pass did to the BatchNorm statistics
    stats = [[p for p in t.depth_net.collect_params().values() if p.grad_req == "null"] for t in (got, ref)]
    assert len(stats[0]) == len(stats[1]) > 0
    for a, b in zip(*stats):
        np.testing.assert_allclose(a.data().asnumpy(), b.data().asnumpy(), rtol=1e-6, err_msg=a.name)
        assert not np.array_equal(b.data().asnumpy(), np.zeros(b.shape))
