"""The paper's two networks as Gluon HybridBlocks (one per file)."""
from common.threads import set_omp_threads

set_omp_threads()  # before mxnet loads (common/threads.py)

from .depth_net import DepthNet, get_depth_net, check_input_size, WeightsError
from .confidence_net import ConfidenceNet, get_confidence_net, confidence_input

__all__ = ["DepthNet", "get_depth_net", "ConfidenceNet", "get_confidence_net",
           "confidence_input", "check_input_size", "WeightsError"]
