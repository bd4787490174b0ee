"""The project's reference for one training step: a plain MXNet/Gluon script of the method's work.

Both nets (gluoncv resnet50_v1b + the top-down pathway; the confidence net of §4.1.2), the
labeled + unlabeled batch through the depth net in one pass, L1 losses (L_sup + 0.1 L_semi
with a mask), SGD + Adam, the confidence target and L_conf on the labeled images, and the
unlabeled images' confidence (inference only, what fills the pseudo-label cache).  No data
pipeline, cache, finite check or bookkeeping.  Adapted from ../shared/bench/plain_step.py
(the same work and nets; the unlabeled count may differ from the labeled one, as in the
trainer).  ``bench/train_step.py`` times ``Trainer.train_step`` against ``PlainStep.step``
at the same shapes, threads and process, steps alternating.

    python bench/plain_step.py [--batch 4] [--unlabeled 4] [--height 240] [--width 320] [--steps 3]

Prints ``mx_step_s <median seconds per step>``.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.threads import set_omp_threads  # noqa: E402

set_omp_threads()  # before mxnet loads (common/threads.py)
import mxnet as mx  # noqa: E402
from gluoncv.model_zoo import resnet50_v1b  # noqa: E402
from mxnet import autograd, gluon  # noqa: E402
from mxnet.gluon import nn  # noqa: E402


class DepthNet(gluon.HybridBlock):
    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            r = resnet50_v1b(pretrained=False)
            self.stem = nn.HybridSequential()
            self.stem.add(r.conv1, r.bn1, r.relu, r.maxpool)
            self.stages = [r.layer1, r.layer2, r.layer3, r.layer4]
            for i, s in enumerate(self.stages):
                self.register_child(s, "stage%d" % i)
            self.lat = nn.HybridSequential()
            self.smooth = nn.HybridSequential()
            for _ in range(4):
                self.lat.add(nn.Conv2D(256, 1))
            for _ in range(3):
                self.smooth.add(nn.Conv2D(256, 3, padding=1, activation="relu"))
            self.head = nn.Conv2D(1, 3, padding=1)

    def hybrid_forward(self, F, x):
        x = self.stem(x)
        feats = []
        for s in self.stages:
            x = s(x)
            feats.append(x)
        top = self.lat[3](feats[3])
        for i in (2, 1, 0):
            lateral = self.lat[i](feats[i])
            top = self.smooth[i](F.slice_like(F.UpSampling(top, scale=2, sample_type="nearest"), lateral,
                                              axes=(2, 3)) + lateral)
        return self.head(top)


class ConfNet(gluon.HybridBlock):
    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.body = nn.HybridSequential()
            for layer in (nn.Conv2D(128, 3, 1, 1), nn.Conv2D(256, 4, 2, 1), nn.Conv2D(512, 4, 2, 1),
                          nn.Conv2DTranspose(512, 4, 2, 1), nn.Conv2DTranspose(256, 4, 2, 1)):
                self.body.add(layer, nn.LeakyReLU(0.2))
            self.body.add(nn.Conv2D(1, 3, 1, 1))

    def hybrid_forward(self, F, img4, depth):
        return F.sigmoid(self.body(F.concat(img4, depth, dim=1)))


class PlainStep:
    """Nets, optimisers and random inputs of ``batch`` labeled + ``unlabeled`` images at ``height x width``."""

    def __init__(self, batch, unlabeled, height, width, hybridize=True):
        mx.random.seed(0)
        self.dn, self.cn = DepthNet(), ConfNet()
        self.dn.initialize(mx.init.Xavier())
        self.cn.initialize(mx.init.Xavier())
        if hybridize:
            self.dn.hybridize(static_alloc=True, static_shape=True)
            self.cn.hybridize(static_alloc=True, static_shape=True)
        self.td = gluon.Trainer(self.dn.collect_params(), "sgd", {"learning_rate": 1e-3, "momentum": 0.9, "wd": 5e-4})
        self.tc = gluon.Trainer(self.cn.collect_params(), "adam", {"learning_rate": 2e-4})
        self.B, self.h4, self.w4 = batch, height // 4, width // 4
        U = mx.nd.random.uniform
        self.xl, self.xu = U(shape=(batch, 3, height, width)), U(shape=(unlabeled, 3, height, width))
        self.dl = U(0.5, 9.5, shape=(batch, 1, self.h4, self.w4))
        self.pu = U(0.5, 9.5, shape=(unlabeled, 1, self.h4, self.w4))
        self.mu = U(shape=(unlabeled, 1, self.h4, self.w4)) > 0.5

    def step(self):
        """One step, queued (the caller waits for it)."""
        B, h4, w4 = self.B, self.h4, self.w4
        with autograd.record():
            e = self.dn(mx.nd.concat(self.xl, self.xu, dim=0))
            el, eu = e[:B], e[B:]
            loss = (el - self.dl).abs().mean() + 0.1 * ((eu - self.pu).abs() * self.mu).mean()
        loss.backward()
        self.td.step(1)
        y = mx.nd.exp(-5 * (el.detach() - self.dl).abs() / self.dl)
        img4 = mx.nd.contrib.BilinearResize2D(self.xl, height=h4, width=w4)
        with autograd.record():
            lc = (self.cn(img4, el.detach()) - y).abs().mean()
        lc.backward()
        self.tc.step(1)
        # the unlabeled images' confidence (inference only) fills the pseudo-label cache: part of the method
        self.cn(mx.nd.contrib.BilinearResize2D(self.xu, height=h4, width=w4), eu.detach())


def main(argv=None):
    p = argparse.ArgumentParser(prog="python bench/plain_step.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=4, help="labeled images per step. default: %(default)s")
    p.add_argument("--unlabeled", type=int, default=None, help="unlabeled images per step. default: --batch")
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--no-hybridize", action="store_true")
    a = p.parse_args(argv)
    plain = PlainStep(a.batch, a.unlabeled or a.batch, a.height, a.width, not a.no_hybridize)
    times = []
    for i in range(a.steps + 1):
        t = time.perf_counter()
        plain.step()
        mx.nd.waitall()
        if i:  # the first step builds the graphs
            times.append(time.perf_counter() - t)
    print("mx_step_s", round(statistics.median(times), 4))
    return 0


if __name__ == "__main__":
    sys.exit(main())
