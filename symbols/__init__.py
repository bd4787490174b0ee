"""The paper's two networks as Gluon HybridBlocks (one per file).

Modules
-------
depth_net        ResNet-50 + top-down lateral pathway, depth at 1/4 resolution (§4.2.4)
confidence_net   the confidence net of §4.1.2, its input built inside its own graph
subpixel_deconv  a 4x4 stride-2 deconvolution as convolution + pixel shuffle (for --int8)
backbone         a trained depth net's backbone as resnet50_v1b weights (``python -m training.save_backbone``)
"""
from common.threads import set_omp_threads

set_omp_threads()  # before mxnet loads (common/threads.py)

from .depth_net import DepthNet, get_depth_net, check_input_size, WeightsError
from .confidence_net import INPUT_TRANSFORM, ConfidenceNet, get_confidence_net, confidence_input, subpixel_copy

# What the two networks take and give; each run records it in config.json ("nets") and
# rundir.nets.load_nets refuses a run recorded for other networks.
NETS = {"depth_net": "depth_net(image (N, 3, H, W) normalised RGB) -> depth (N, 1, H/4, W/4) in metres",
        "conf_net": "conf_net(image (N, 3, H, W), depth (N, 1, H/4, W/4)) -> confidence (N, 1, H/4, W/4) "
                    "in (0, 1); its input: " + INPUT_TRANSFORM}

__all__ = ["NETS", "DepthNet", "get_depth_net", "ConfidenceNet", "get_confidence_net",
           "confidence_input", "subpixel_copy", "check_input_size", "WeightsError"]
