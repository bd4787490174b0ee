"""Eq. 3 weighs pixels: L_sup and L_semi share one normaliser whatever the batch composition."""
import mxnet as mx
import numpy as np
from mxnet import autograd

import train
from training.trainer import Trainer


def test_gradients_equal_the_papers_sums_up_to_one_constant(tiny_data, tmp_path):
    # 1/4 labeled of 8 sources x 2 rows: 4 labeled rows, 12 unlabeled; batch 2 -> 2 steps of 2 + 6 images
    lam = 0.1
    opts = train.parse_args(["--pretrained", "0", "--batch-size", "2", "--labeled-frac", "0.25", "--no-progress",
                             "--data", tiny_data, "--out", str(tmp_path / "r"), "--lambda-semi", str(lam),
                             "--t-semi", "0.5"])
    t = Trainer(opts)
    assert (len(t.labeled), len(t.unlabeled), t.unlabeled_batch) == (4, 12, 6)
    image, depth = (mx.nd.array(np.stack(a)) for a in zip(*[t.labeled[i] for i in range(2)]))
    ids = mx.nd.array([0, 3, 4, 7, 9, 11], dtype="int32")
    u_image = mx.nd.array(np.stack([t.unlabeled[i][0] for i in ids.asnumpy()]))
    h, w = depth.shape[2:]
    # cached pseudo-labels of the previous epoch: 2 m everywhere, confident on the left half only
    conf = mx.nd.zeros((6, 1, h, w))
    conf[:, :, :, : w // 2] = 0.95
    t.cache.write(ids, mx.nd.full((6, 1, h, w), 2.0), conf, epoch=0)
    params = [p for p in t.depth_net.collect_params().values() if p.grad_req != "null"]

    def grads(loss_fn):
        with autograd.record():
            loss = loss_fn()
        loss.backward()
        return [p.grad().asnumpy().copy() for p in params]

    implemented = grads(lambda: t.compute_losses((image, depth), (u_image, ids), epoch=1, phase="semi")[0]["depth"])

    def paper_sums():  # eqs. 3, 4, 6 as the paper writes them: plain sums over images and pixels
        pred = t.depth_net(mx.nd.concat(image, u_image, dim=0))
        valid = depth > 0
        sup = mx.nd.sum(mx.nd.abs(pred[:2] - mx.nd.where(valid, depth, mx.nd.ones_like(depth))) * valid)
        mask = conf >= 0.5
        semi = mx.nd.sum(mx.nd.abs(pred[2:] - 2.0) * mask)
        return sup + lam * semi

    paper = grads(paper_sums)
    constant = 2 * h * w  # the step's labeled pixels
    biggest = max(np.abs(g).max() for g in paper)
    for got, want in zip(implemented, paper):
        np.testing.assert_allclose(got * constant, want, rtol=1e-3, atol=1e-5 * biggest)
