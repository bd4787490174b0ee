"""A cheap copy of the BatchNorm running statistics, restored only when a step is skipped.

Trained from scratch, every forward pass in training mode moves the running mean and
variance of each BatchNorm layer, before the step knows whether its loss is finite.  A
skipped step must leave them as they were, so each step first copies them: into one
preallocated buffer per device with a single ``concat`` (one engine operation instead of
one copy per array, and no allocation), read back into the arrays only on a skip.
"""
import mxnet as mx


class BatchNormSnapshot:
    """``take()`` before the forward pass, ``restore()`` if the step is skipped.

    Parameters
    ----------
    params : list of gluon.Parameter
        The running statistics (``grad_req == 'null'``); empty when BatchNorm is
        frozen, which makes both calls free.
    """

    def __init__(self, params):
        # arrays[k]: the statistics on device k, in a fixed order
        self.arrays = [list(arrays) for arrays in zip(*[p.list_data() for p in params])] if params else []
        self.buffers = [mx.nd.zeros((sum(a.size for a in arrays),), ctx=arrays[0].context, dtype=arrays[0].dtype)
                        for arrays in self.arrays]

    def take(self):
        for arrays, buffer in zip(self.arrays, self.buffers):
            mx.nd.concat(*[a.reshape((-1,)) for a in arrays], dim=0, out=buffer)

    def restore(self):
        for arrays, buffer in zip(self.arrays, self.buffers):
            start = 0
            for a in arrays:
                buffer[start:start + a.size].reshape(a.shape).copyto(a)
                start += a.size
