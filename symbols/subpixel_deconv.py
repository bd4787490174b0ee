"""A 4x4, stride-2, padding-1 transposed convolution rewritten as an ordinary convolution
and a pixel shuffle, computing the same function.

Why: MXNet 1.9.1's oneDNN quantizer makes INT8 kernels for Convolution but not for
Deconvolution, so in ``--int8`` inference the confidence net's two deconvolutions (about
4 of its 5 GMAC per 320x240 image) stayed float32 and took most of its time.  This form
lets them run in INT8 (``evaluation.quantize``).  Training keeps ``nn.Conv2DTranspose``:
in float32 this form is slower (the slices and the shuffle move memory).

The rewrite (one axis; the other is the same).  The transposed convolution with kernel
K[0..3] gives ``y[2i + a] = sum_j x[j] K[2i + a + 1 - 2j]``, so each output phase ``a``
is a 2-tap filter over the input::

    a = 0:  y[2i]     = K[3] x[i - 1] + K[1] x[i]
    a = 1:  y[2i + 1] = K[2] x[i]     + K[0] x[i + 1]

A 2x2 convolution with padding 1 reads ``x[m - 1], x[m]`` at its output position m
(H + 1 positions): phase 0 is it at m = i with taps (K[3], K[1]), phase 1 at m = i + 1
with taps (K[2], K[0]).  One convolution with 4 x C output channels computes all four
phases (a, b); phase (a, b) keeps its H x W window starting at (a, b), and the phases
are interleaved: phase (a, b) pixel (i, j) -> output pixel (2i + a, 2j + b).
"""
import numpy as np
from mxnet import gluon, nd
from mxnet.gluon import nn

# phase -> the transposed kernel's index for the 2x2 convolution's tap 0 and tap 1
TAPS = {0: (3, 1), 1: (2, 0)}


class SubPixelDeconv(gluon.HybridBlock):
    """(N, in_channels, H, W) -> (N, channels, 2H, 2W), as ``nn.Conv2DTranspose(channels, 4, 2, 1)``."""

    def __init__(self, channels, in_channels, **kwargs):
        super().__init__(**kwargs)
        self._channels = channels
        with self.name_scope():
            self.conv = nn.Conv2D(4 * channels, 2, padding=1, in_channels=in_channels)

    def hybrid_forward(self, F, x):
        # (N, 4, C, H + 1, W + 1): the phase gets its own axis, so no slice cuts through oneDNN's
        # channel blocks (slicing channels 0..C of a blocked conv output crashed for small C)
        y = F.reshape(self.conv(x), (0, -4, 4, -1, -2))
        window = F.expand_dims(x, 1)
        phase = [F.slice_like(F.slice(y, begin=(None, g, None, g // 2, g % 2), end=(None, g + 1, None, None, None)),
                              window, axes=(3, 4)) for g in range(4)]         # phase (a, b) is g = 2a + b
        # interleave: columns (b) within each row phase, then rows (a); stack + reshape is 2-3x
        # faster than MXNet's depth_to_space, which took more time than the convolutions
        rows = [F.reshape(F.stack(phase[2 * a], phase[2 * a + 1], axis=-1), (0, 0, 0, 0, -3)) for a in (0, 1)]
        return F.reshape(F.stack(*rows, axis=4), (0, -3, -3, -2))       # (N, C, 2H, 2W)

    def load_transposed(self, deconv):
        """Set the weights from an initialised ``nn.Conv2DTranspose(channels, 4, strides=2, padding=1)``."""
        kw = deconv._kwargs
        if (tuple(kw["kernel"]), tuple(kw["stride"]), tuple(kw["pad"])) != ((4, 4), (2, 2), (1, 1)):
            raise ValueError("only a 4x4 stride-2 padding-1 transposed convolution has this form, got kernel %s "
                             "stride %s padding %s" % (kw["kernel"], kw["stride"], kw["pad"]))
        weight = deconv.weight.data().asnumpy()              # (in, out, 4, 4)
        n_in, n_out = weight.shape[:2]
        if n_out != self._channels:
            raise ValueError("%d output channels, this block has %d" % (n_out, self._channels))
        conv = np.zeros((4, n_out, n_in, 2, 2), np.float32)
        for a in (0, 1):
            for b in (0, 1):
                for u, ku in enumerate(TAPS[a]):
                    for v, kv in enumerate(TAPS[b]):
                        conv[2 * a + b, :, :, u, v] = weight[:, :, ku, kv].T
        self.conv.weight.set_data(nd.array(conv.reshape(4 * n_out, n_in, 2, 2)))
        bias = deconv.bias.data() if deconv.bias is not None else nd.zeros(n_out)
        self.conv.bias.set_data(nd.tile(bias, 4))
