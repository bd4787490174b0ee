"""Opt-in INT8 inference (``evaluate.py --int8``, ``predict.py --int8``): both networks
quantized by oneDNN, calibrated on the run's labeled training images.

Calibration: ``calib_images`` rows evenly spaced over the run's ``split.json``
``labeled_rows`` of ``train.h5`` (never test, validation or unlabeled rows), in that
order, batches of ``CALIB_BATCH``.  Naive calibration: each quantized tensor's range
is the min..max that tensor reached on those images, so the same run, rows and MXNet
give the same graph.  The confidence net is calibrated on the float32 depth net's
output for the same images (its log-depth input).

Kept in float32 (``exclude_layers``): the last convolution of each network, whose
output becomes the metres (softplus) or the confidence (sigmoid); one output channel,
so int8 would save nothing there, and on the demo run it cut the confidence net's
deviation from float32 ten-fold (mean 1e-3 -> 7e-5).  log, softplus and sigmoid have
no int8 kernels and stay float32 anyway.  Every other convolution (backbone with its
BatchNorm and ReLU folded in, top-down pathway, confidence body) runs in int8, with
VNNI where the CPU has it.  The quantizer has no INT8 deconvolution, so the confidence
net is quantized in its ``symbols.subpixel_copy`` form, where each deconv is a
convolution and a pixel shuffle computing the same function: its INT8 time at 320x240
fell from 0.026 to 0.015 s per image, and on the demo run its mean deviation from
float32 rose from 7e-5 to 7e-4 (max 2e-3 -> 4e-3; ``scripts/int8_validation.py``).
The graph is built once per process and is not saved.
"""
import os
import warnings

import mxnet as mx
import numpy as np
from mxnet.runtime import Features

import config

from . import EvaluationError

DEFAULT_CALIB_IMAGES = config.INT8_CALIB_IMAGES
CALIB_BATCH = 8
CALIB_MODE = "naive"
INT8_CPU_ONLY = "--int8 runs on CPU only (oneDNN); drop --gpus"


def check_int8(ctxs):
    """EvaluationError unless ``ctxs`` are CPUs and MXNet has oneDNN (INT8 kernels exist only there)."""
    if any(c.device_type != "cpu" for c in ctxs):
        raise EvaluationError(INT8_CPU_ONLY)
    if not Features().is_enabled("MKLDNN"):
        raise EvaluationError("--int8 needs an MXNet build with oneDNN (MKLDNN); this one has none")


def calibration_rows(labeled_rows, n):
    """``n`` rows evenly spaced over ``labeled_rows`` (sorted), first and last included; all if fewer."""
    rows = np.sort(np.asarray(labeled_rows, np.int64))
    if n >= len(rows):
        return rows
    return rows[np.unique(np.linspace(0, len(rows) - 1, n).round().astype(np.int64))]


def calibration_images(train_h5, labeled_rows, n):
    """(images (k, 3, h, w) NDArray, rows) of the calibration set; EvaluationError if there is none."""
    from data.dataset import LabeledDataset
    rows = calibration_rows(labeled_rows, n)
    if len(rows) == 0:
        raise EvaluationError("--int8 calibrates on labeled training rows and the run's split.json has none")
    dataset = LabeledDataset(train_h5, rows)
    return mx.nd.array(np.stack([dataset[i][0] for i in range(len(dataset))])), rows


def _batches(arrays):
    """An ``mx.io.NDArrayIter`` over ``arrays`` (named as exported HybridBlocks name their inputs)."""
    names = ["data"] if len(arrays) == 1 else ["data%d" % i for i in range(len(arrays))]
    batch = min(CALIB_BATCH, arrays[0].shape[0])
    # 'pad' repeats leading rows in the last batch: a repeated image changes no min or max
    return mx.io.NDArrayIter(dict(zip(names, arrays)), batch_size=batch, shuffle=False, last_batch_handle="pad")


def float32_layers(depth_net, conf_net):
    """Names of the layers kept in float32 (as in the exported symbols): each network's last convolution."""
    return [depth_net.head.name + "_fwd"], [conf_net.last.name + "_fwd"]


def _quantized(net, arrays, excluded):
    from mxnet.contrib.quantization import quantize_net_v2
    with warnings.catch_warnings():  # "cannot decide type" of the inputs: they are float32
        warnings.simplefilter("ignore", UserWarning)
        qnet = quantize_net_v2(net, quantized_dtype="auto", quantize_mode="full", exclude_layers=list(excluded),
                               calib_data=_batches(arrays), calib_mode=CALIB_MODE,
                               num_calib_examples=arrays[0].shape[0], ctx=mx.cpu())
    qnet.hybridize(static_alloc=True, static_shape=True)
    return qnet


def quantize_nets(depth_net, conf_net, images):
    """INT8 ``(depth_net, conf_net)`` calibrated on ``images`` (NDArray (k, 3, h, w)), and the names
    of the layers kept in float32; call the nets as the float32 ones.  The float32 depth net is
    re-hybridized by MXNet's quantizer: use the returned ones."""
    from symbols import subpixel_copy
    depths = mx.nd.concat(*[depth_net(images[i:i + CALIB_BATCH]) for i in range(0, images.shape[0], CALIB_BATCH)],
                          dim=0)
    conf_net = subpixel_copy(conf_net)
    excluded = float32_layers(depth_net, conf_net)
    qdepth = _quantized(depth_net, [images], excluded[0])
    qconf = _quantized(conf_net, [images, depths], excluded[1])
    return (qdepth, qconf), excluded


def int8_nets(run, run_dir, n_images, verbose=False):
    """The run's networks (``evaluation.runs.load_run`` dict) quantized on ``n_images`` labeled training rows;
    returns ``(nets, record)``, ``record`` what eval.json stores under ``int8``.  MXNet's own log lines
    of the quantization are shown only if ``verbose``."""
    from common.files import native_stderr_silenced, read_json
    from rundir.layout import RunError
    check_int8(run["ctxs"])
    if n_images < 1:
        raise EvaluationError("--calib-images must be >= 1")
    train_h5 = os.path.join(run["data"], "train.h5")
    if not os.path.isfile(train_h5):
        raise EvaluationError("--int8 calibrates on the run's labeled training images: %s has no train.h5"
                              % run["data"])
    split = run.get("split") or read_json(os.path.join(run_dir, "split.json"), error=RunError)
    images, rows = calibration_images(train_h5, split.get("labeled_rows") or [], n_images)
    with native_stderr_silenced(not verbose):
        nets, (depth_excluded, conf_excluded) = quantize_nets(*run["nets"], images)
    return nets, {"calibration": CALIB_MODE, "calib_images": len(rows), "calib_rows": [int(r) for r in rows],
                  "calib_source": "labeled_rows of split.json in train.h5",
                  "float32_layers": {"depth_net": depth_excluded, "conf_net": conf_excluded}}
