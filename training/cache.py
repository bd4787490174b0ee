"""The pseudo-label cache of §4.2.3: {D^_m, C_m} for every unlabeled image m.

"the self-training ground truth is denoted as the masked estimation results
{D^_m, B_m} which will be used in the next training epoch" (§4.2.3, §5.1).

One ``mx.nd`` array per quantity, indexed by the sample's slot (its position in the
unlabeled set): the depth prediction and the confidence at 1/4 resolution, and the
epoch each slot was last written in.  We store the confidence, not the binary mask,
so the mask B = C >= T can be taken at read time (and Table 1 can vary T).

Entries are written in epoch e from the forward pass that computes the unlabeled
loss and are used only in epoch e + 1: ``read`` masks out every slot whose
``written`` epoch is not exactly e - 1, including slots never written (-1).
All operations are asynchronous NDArray ops: no host synchronisation.
"""
import mxnet as mx

from .losses import confidence_mask

NEVER = -1


class PseudoLabelCache:
    """Pseudo-labels of ``num_samples`` unlabeled images at ``height x width``."""

    KEYS = ("depth", "conf", "written")

    def __init__(self, num_samples, height, width, ctx=None):
        self.ctx = ctx or mx.cpu()
        shape = (max(num_samples, 1), 1, height, width)
        self.depth = mx.nd.zeros(shape, ctx=self.ctx)
        self.conf = mx.nd.zeros(shape, ctx=self.ctx)
        self.written = mx.nd.full((shape[0],), NEVER, ctx=self.ctx)
        self.num_samples = num_samples

    def write(self, ids, depth, conf, epoch):
        """Store the predictions of epoch ``epoch`` for slots ``ids`` (int NDArray)."""
        ids = ids.as_in_context(self.ctx).astype("int64")
        self.depth[ids] = depth.as_in_context(self.ctx)
        self.conf[ids] = conf.as_in_context(self.ctx)
        self.written[ids] = mx.nd.full(ids.shape, epoch, ctx=self.ctx)

    def read(self, ids, epoch, threshold, ctx=None):
        """Pseudo depth D^ and mask B (eq. 5) for slots ``ids`` in epoch ``epoch``.

        B is 0 for slots not written in epoch - 1.
        """
        ids = ids.as_in_context(self.ctx).astype("int64")
        depth = mx.nd.take(self.depth, ids)
        conf = mx.nd.take(self.conf, ids)
        fresh = (mx.nd.take(self.written, ids) == epoch - 1).reshape((-1, 1, 1, 1))
        mask = mx.nd.broadcast_mul(confidence_mask(mx.nd, conf, threshold), fresh)
        ctx = ctx or self.ctx
        return depth.as_in_context(ctx), mask.as_in_context(ctx)

    def arrays(self):
        """The cache as a dict for ``mx.nd.save`` (checkpoints)."""
        return {"depth": self.depth, "conf": self.conf, "written": self.written}

    def load(self, arrays):
        """Restore from ``arrays()`` of a checkpoint; shapes must match."""
        for key in self.KEYS:
            if key not in arrays or arrays[key].shape != getattr(self, key).shape:
                raise ValueError("checkpoint cache %r does not match this run (%s vs %s)"
                                 % (key, arrays[key].shape if key in arrays else None,
                                    getattr(self, key).shape))
            setattr(self, key, arrays[key].as_in_context(self.ctx))

    def nbytes(self):
        return sum(a.size * 4 for a in (self.depth, self.conf, self.written))
