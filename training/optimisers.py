"""The optimisers of §5.1: SGD with momentum, weight decay and poly decay for the depth net, Adam for
the confidence net."""
import mxnet as mx
from gluoncv.utils import LRScheduler
from mxnet import gluon

# SGD arrays per update call on CPU.  MXNet's default (4, MXNET_OPTIMIZER_AGGREGATION_SIZE) updates
# 4 arrays per multi_sgd_mom_update call; 0 makes one call per array (still multi_sgd_mom_update,
# with one array).  The depth net's update took 0.089 s with 4, 0.124 s with 60 and 0.045 s with 0
# (160x128, 1 thread); with 2 threads at 320x240 the kernels took the same time either way
# (130 ms a step, MXNet's profiler, 2026-12-03), and one call per array costs ~15 ms more Python.
CPU_SGD_AGGREGATION = 0


def make_optimisers(opts, depth_net, conf_net, steps, ctx, kvstore):
    """(depth, conf) ``gluon.Trainer``s: SGD + poly decay over ``opts.epochs`` x ``steps`` updates, Adam.

    ``kvstore`` None: the Trainers update locally (distributed: after World.allreduce_grads,
    training/distributed.py)."""
    poly = LRScheduler("poly", base_lr=opts.lr, nepochs=opts.epochs, iters_per_epoch=steps, power=opts.poly_power) \
        if opts.epochs * steps > 1 else LRScheduler("constant", base_lr=opts.lr, niters=1)  # poly: 1 - T / 0
    sgd = mx.optimizer.SGD(learning_rate=opts.lr, momentum=opts.momentum, wd=opts.wd, lr_scheduler=poly)
    if all(c.device_type == "cpu" for c in ctx):  # GPUs keep MXNet's multi-tensor default
        sgd.aggregate_num = CPU_SGD_AGGREGATION
    depth = gluon.Trainer(depth_net.collect_params(), sgd, kvstore=kvstore)
    conf = gluon.Trainer(conf_net.collect_params(), "adam", {"learning_rate": opts.conf_lr}, kvstore=kvstore)
    return depth, conf
