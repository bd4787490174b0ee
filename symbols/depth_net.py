"""Depth network of §4.2.4: ImageNet ResNet-50 with a top-down pathway.

Bottom-up: gluoncv's ``resnet50_v1b`` (torchvision-style ResNet-50: stride in the
3x3 conv of each bottleneck; ImageNet top-1 77.67% in gluoncv's model zoo).

BatchNorm (``freeze_bn``): with ImageNet weights the backbone keeps the ImageNet
statistics (``use_global_stats=True``): the small batches a 320x240 depth net
trains with give noisy batch statistics, and frozen statistics make the result
independent of how a batch is split across devices and of which images share a
batch.  Trained from scratch (``pretrained=False``) a ResNet-50 needs batch
statistics to train at all, so there BatchNorm is left on by default.

Top-down: the paper cites [16] (SharpMask, Pinheiro et al.) for "a top-down architecture
with lateral connection to build an in-network feature pyramid and makes prediction on the
finest level"; it is built here in FPN's form (Lin et al., 2017), which that sentence
describes: a 1x1 lateral conv (256 ch) on each of C2..C5, the
coarser map upsampled x2 (nearest) and added, then a 3x3 conv (256 ch) + ReLU.
The finest level (stride 4) goes through a last 3x3 conv with 1 channel (§4.2.4).

Stage shapes for a 240x320 input::

    C2 256 x 60 x 80     C3 512 x 30 x 40     C4 1024 x 15 x 20     C5 2048 x 8 x 10

240 is not a multiple of 32, so C5 is 8 rows high and upsampled to 16 while C4 has
15: the upsampled map is cropped to the lateral's size (``F.slice_like``).

Positive depth: the paper does not say how; we use softplus(x) + MIN_DEPTH, which is
smooth, never zero (eq. 1 divides by depth, log10 is taken at evaluation) and,
unlike exp, grows linearly so large errors give bounded gradients.  The last conv's
bias starts at softplus^-1(INIT_DEPTH), so training starts from a typical indoor
depth instead of spending its first epochs on the scale.
"""
import math
import os

import mxnet as mx
from mxnet import autograd, gluon
from mxnet import init as mx_init
from mxnet.gluon import nn
from gluoncv.model_zoo import resnet50_v1b
from gluoncv.model_zoo import model_store

import config
from data.errors import one_line

BACKBONE = "resnet50_v1b"
TOPDOWN_CHANNELS = 256  # §4.2.4: "all the 3x3 and 1x1 convolutional layers have 256 channels"
MIN_DEPTH = config.DEPTH_FLOOR  # metres; keeps depth strictly positive
INPUT_MULTIPLE = 16     # H and W must be multiples of 16 (see check_input_size)
INIT_DEPTH = 3.0        # metres; about the mean depth of NYU Depth v2's labeled frames


class WeightsError(Exception):
    """Pretrained weights that cannot be found or loaded (one-line message)."""


def check_input_size(height, width):
    """Both networks need H and W divisible by 16.

    The depth output is exactly H/4 x W/4, and the confidence net halves that map
    twice and doubles it twice, which is exact only if H/4 and W/4 are even twice.
    """
    if height % INPUT_MULTIPLE or width % INPUT_MULTIPLE:
        raise ValueError("input size %dx%d (width x height) is not a multiple of %d in both; "
                         "use e.g. 320x240 or 160x128" % (width, height, INPUT_MULTIPLE))


def model_store_path(name=BACKBONE):
    """Where gluoncv's model store looks for ImageNet weights ($MXNET_HOME/models)."""
    root = os.path.join(os.environ.get("MXNET_HOME", os.path.join("~", ".mxnet")), "models")
    return os.path.expanduser(os.path.join(root, "%s-%s.params" % (name, model_store.short_hash(name))))


def load_backbone(pretrained=False, backbone_params=None, freeze_bn=True):
    """ResNet-50 v1b, optionally with ImageNet weights and frozen BN statistics.

    ``backbone_params`` (a local .params of resnet50_v1b) wins over ``pretrained``,
    which goes through gluoncv's model store and needs the file in $MXNET_HOME.
    """
    net = resnet50_v1b(pretrained=False, norm_kwargs={"use_global_stats": bool(freeze_bn)})
    if backbone_params:
        if not os.path.isfile(backbone_params):
            raise WeightsError("backbone weights %s not found" % backbone_params)
        path = backbone_params
    elif pretrained:
        path = model_store_path()
        if not os.path.isfile(path):
            raise WeightsError("ImageNet weights for %s not found: put %s there (set MXNET_HOME to "
                               "change the folder) or pass --backbone-params PATH"
                               % (BACKBONE, path))
        try:
            path = model_store.get_model_file(BACKBONE)  # verifies the checksum
        except Exception as err:  # a bad checksum makes gluoncv try a download
            raise WeightsError("%s does not match gluoncv's checksum for %s (%s)"
                               % (path, BACKBONE, one_line(err)[:160]))
    else:
        return net
    try:
        net.load_parameters(path)
    except Exception as err:
        raise WeightsError("cannot load %s as %s weights: %s" % (path, BACKBONE, one_line(err)[:160]))
    return net


class DepthNet(gluon.HybridBlock):
    """ResNet-50 + top-down lateral pathway; 3xHxW image -> 1x(H/4)x(W/4) depth (m).

    Parameters
    ----------
    pretrained : bool
        Load ImageNet weights from gluoncv's model store ($MXNET_HOME/models).
    backbone_params : str, optional
        Local .params file of an ImageNet resnet50_v1b (wins over ``pretrained``).
    freeze_bn : bool, optional
        Use the stored BatchNorm statistics instead of the batch's; default: freeze
        exactly when ImageNet weights are loaded (see the module docstring).

    Examples
    --------
    >>> net = get_depth_net(pretrained=False); net.initialize()
    >>> net(mx.nd.zeros((1, 3, 240, 320))).shape
    (1, 1, 60, 80)
    """

    def __init__(self, pretrained=False, backbone_params=None, freeze_bn=None, **kwargs):
        super().__init__(**kwargs)
        self.backbone_loaded = bool(pretrained or backbone_params)
        self.freeze_bn = self.backbone_loaded if freeze_bn is None else bool(freeze_bn)
        resnet = load_backbone(pretrained, backbone_params, self.freeze_bn)
        with self.name_scope():
            self.stem = nn.HybridSequential(prefix="stem_")
            self.stem.add(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
            self.layer1, self.layer2 = resnet.layer1, resnet.layer2
            self.layer3, self.layer4 = resnet.layer3, resnet.layer4
            c = TOPDOWN_CHANNELS
            self.lateral = nn.HybridSequential(prefix="lateral_")
            for in_ch in (256, 512, 1024, 2048):  # C2..C5
                self.lateral.add(nn.Conv2D(c, 1, in_channels=in_ch))
            self.smooth = nn.HybridSequential(prefix="smooth_")
            for _ in range(3):  # P4, P3, P2 after each addition
                self.smooth.add(nn.Conv2D(c, 3, padding=1, in_channels=c))
            self.head = nn.Conv2D(1, 3, padding=1, in_channels=c, bias_initializer=mx_init.Constant(
                math.log(math.expm1(INIT_DEPTH - MIN_DEPTH))))

    def forward(self, x, *args):
        if hasattr(x, "shape"):  # an NDArray, not a Symbol: shapes are known
            check_input_size(*x.shape[2:4])
        return super().forward(x, *args)

    def hybrid_forward(self, F, x):
        c2 = self.layer1(self.stem(x))  # stride 4
        c3 = self.layer2(c2)            # stride 8
        c4 = self.layer3(c3)            # stride 16
        c5 = self.layer4(c4)            # stride 32
        top = self.lateral[3](c5)
        for i, lat in enumerate((c4, c3, c2)):
            lateral = self.lateral[2 - i](lat)
            up = F.slice_like(F.UpSampling(top, scale=2, sample_type="nearest"), lateral, axes=(2, 3))
            # Activation, not F.relu: the same max(x, 0), but oneDNN's (F.relu took 0.13 s a call at 320x240)
            top = F.Activation(self.smooth[i](lateral + up), act_type="relu")
        return F.Activation(self.head(top), act_type="softrelu") + MIN_DEPTH

    def initialize_new_layers(self, ctx=None):
        """Xavier-initialise what did not come with ImageNet weights; move all to ``ctx``."""
        new = gluon.ParameterDict()
        for block in (self.lateral, self.smooth, self.head):
            new.update(block.collect_params())
        if not self.backbone_loaded:
            for block in (self.stem, self.layer1, self.layer2, self.layer3, self.layer4):
                new.update(block.collect_params())
        new.initialize(mx_init.Xavier(magnitude=2), ctx=ctx)
        if ctx is not None:
            self.collect_params().reset_ctx(ctx)
        # gluoncv's backbone convs defer their shapes; one small forward pass finishes the
        # initialisation now, so the weights depend on the seed alone and not on what
        # else drew random numbers before the first training step.
        first = ctx[0] if isinstance(ctx, (list, tuple)) else (ctx or mx.cpu())
        with autograd.pause():
            self(mx.nd.zeros((1, 3, INPUT_MULTIPLE * 2, INPUT_MULTIPLE * 2), ctx=first))


def get_depth_net(pretrained=False, backbone_params=None, ctx=None, freeze_bn=None):
    """Factory in gluoncv's style: a DepthNet with every parameter initialised on ``ctx``."""
    net = DepthNet(pretrained=pretrained, backbone_params=backbone_params, freeze_bn=freeze_bn)
    net.initialize_new_layers(ctx)
    return net
