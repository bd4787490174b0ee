"""Confidence network of §4.1.2: a small Conv-Deconv net predicting per-pixel confidence.

Call: ``conf_net(image, depth)`` with the normalised image (N, 3, H, W) and the depth
net's output (N, 1, H/4, W/4) in metres; output (N, 1, H/4, W/4) in (0, 1).  The
network builds its own 4-channel input (``confidence_input``, part of its graph, so
training, inference, the benchmark and the exported symbol all use the same one):
the image averaged over 4x4 blocks (3 ch) concatenated with log(depth) (1 ch).

The depth channel enters as log(depth): the target of eq. 1 depends on the
*relative* error |E - D| / D, which is scale-free in log space, and metres
(0.7-10) next to a normalised image (about N(0, 1)) would dominate the first layer
and shift its activations whenever the depth net changes scale.  The last conv
starts at zero, so every confidence starts at 0.5, away from the flat ends of the
sigmoid where an L1 gradient vanishes (the paper gives neither detail).

Layers (§4.1.2), each followed by LeakyReLU (slope 0.2, the paper does not give it)::

    conv    128  k3 s1 p1   ->  H/4  x W/4
    conv    256  k4 s2 p1   ->  H/8  x W/8
    conv    512  k4 s2 p1   ->  H/16 x W/16
    deconv  512  k4 s2 p1   ->  H/8  x W/8
    deconv  256  k4 s2 p1   ->  H/4  x W/4
    conv      1  k3 s1 p1   + sigmoid

Padding 1 with k4/s2 halves a map exactly and its transposed form doubles it
exactly, so the output is the input's size whenever H/4 and W/4 are multiples of 4
(inputs that are multiples of 16, see ``symbols.depth_net.check_input_size``).  The
paper gives no kernel for the last conv; 3x3 matches the first layer.
"""
from mxnet import gluon, init
from mxnet.gluon import nn

import config

from .depth_net import check_input_size
from .subpixel_deconv import SubPixelDeconv

# (kind, channels, kernel, stride, padding), in the order of §4.1.2
LAYERS = (
    ("conv", 128, 3, 1, 1),
    ("conv", 256, 4, 2, 1),
    ("conv", 512, 4, 2, 1),
    ("deconv", 512, 4, 2, 1),
    ("deconv", 256, 4, 2, 1),
)
LAST_KERNEL = 3
IN_CHANNELS = 4          # RGB at 1/4 resolution + predicted depth
# What ConfidenceNet builds from its two inputs; recorded in each run's config.json
# ("nets"), so a checkpoint made for another input is refused in one line.
INPUT_TRANSFORM = "concat([avg_pool(image, 4x4, stride 4), log(depth)], channel axis)"
LEAKY_SLOPE = 0.2
DOWNSAMPLE = config.OUTPUT_STRIDE  # the image is averaged over 4x4 blocks to meet the depth map


def confidence_input(F, image, depth):
    """Concatenate the image averaged over 4x4 blocks with log(depth) (4 channels)."""
    small = F.Pooling(image, kernel=(DOWNSAMPLE, DOWNSAMPLE), stride=(DOWNSAMPLE, DOWNSAMPLE), pool_type="avg")
    return F.concat(small, F.log(depth), dim=1)


class ConfidenceNet(gluon.HybridBlock):
    """(image 3 x H x W, depth 1 x H/4 x W/4) -> confidence 1 x H/4 x W/4 in (0, 1).

    ``subpixel=True`` builds each deconv as ``SubPixelDeconv`` (the same function, for INT8;
    see ``subpixel_copy``)."""

    def __init__(self, subpixel=False, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            in_ch = IN_CHANNELS
            for kind, ch, k, s, p in LAYERS:
                if kind == "conv":
                    self.body.add(nn.Conv2D(ch, k, strides=s, padding=p, in_channels=in_ch))
                elif subpixel:
                    self.body.add(SubPixelDeconv(ch, in_ch))
                else:
                    self.body.add(nn.Conv2DTranspose(ch, k, strides=s, padding=p, in_channels=in_ch))
                self.body.add(nn.LeakyReLU(LEAKY_SLOPE))
                in_ch = ch
            self.last = nn.Conv2D(1, LAST_KERNEL, padding=LAST_KERNEL // 2, in_channels=in_ch,
                                  weight_initializer=init.Zero())

    def forward(self, image, depth):
        if hasattr(image, "shape"):  # NDArrays, not Symbols: shapes are known
            check_input_size(*image.shape[2:4])
            if tuple(depth.shape[2:4]) != (image.shape[2] // DOWNSAMPLE, image.shape[3] // DOWNSAMPLE):
                raise ValueError("depth %s does not match image %s: the depth net's output is 1/%d of the image"
                                 % ("x".join(map(str, depth.shape[2:4])), "x".join(map(str, image.shape[2:4])),
                                    DOWNSAMPLE))
        return super().forward(image, depth)

    def hybrid_forward(self, F, image, depth):
        return F.sigmoid(self.last(self.body(confidence_input(F, image, depth))))


def subpixel_copy(conf_net):
    """A new ConfidenceNet computing what ``conf_net`` computes, its deconvs as ``SubPixelDeconv``
    (convolutions, which MXNet's oneDNN quantizer turns into INT8 kernels; deconvolutions it leaves
    in float32).  The weights are copied: later changes to ``conf_net`` do not reach it."""
    ctx = conf_net.last.weight.list_ctx()
    copy = ConfidenceNet(subpixel=True)
    copy.initialize(ctx=ctx)
    layers = [conf_net.body[i] for i in range(len(conf_net.body))] + [conf_net.last]
    for src, dst in zip(layers, [copy.body[i] for i in range(len(copy.body))] + [copy.last]):
        if isinstance(dst, SubPixelDeconv):
            dst.load_transposed(src)
        else:
            for p, q in zip(src.collect_params().values(), dst.collect_params().values()):
                q.set_data(p.data())
    return copy


def get_confidence_net(ctx=None):
    """Factory: a ConfidenceNet, Xavier-initialised on ``ctx``."""
    net = ConfidenceNet()
    net.initialize(init.Xavier(magnitude=2), ctx=ctx)
    return net
