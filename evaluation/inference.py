"""Batched forward passes of both networks over a dataset (no gradients, no training state),
and ``score_depth``, the errors of the depth net on a dataset (training's validation and
``--track-test``).

Throughput: every batch has the same shape (the last one is padded by repeating its last
image, and the padded outputs are dropped), so a network hybridized with
``static_shape=True`` (``inference_mode``) builds one graph and one memory plan for the
whole set.  MXNet runs asynchronously: batch k + 1 is loaded and launched before batch k
is read back, so data loading and the caller's work on batch k (scoring, writing files)
overlap the forward pass of batch k + 1.  With BatchNorm on the stored statistics (any
forward outside ``autograd.record``) an image's output does not depend on the other
images of its batch, so padding changes no number.
"""
import sys

import mxnet as mx
import numpy as np
from mxnet import gluon
from mxnet.runtime import Features
from tqdm import tqdm

from data.dataset import TestDataset

from .metrics import ErrorAccumulator, upsample


def inference_mode(net, ctxs):
    """Hybridize ``net`` for inference only: static memory and shapes, and on CPU oneDNN's
    fused convolution + BatchNorm + ReLU when MXNet has oneDNN (the fusion folds the
    BatchNorm statistics into the weights when the graph is built: the parameters must not
    change afterwards, so never for a network that is still training)."""
    cpu_only = all(c.device_type == "cpu" for c in ctxs)
    backend = "MKLDNN" if cpu_only and Features().is_enabled("MKLDNN") else None
    net.hybridize(static_alloc=True, static_shape=True, backend=backend)
    return net


def padded(images, batch_size):
    """``images`` with its last row repeated up to ``batch_size`` rows (the same array if full)."""
    missing = batch_size - images.shape[0]
    if missing <= 0:
        return images
    return mx.nd.concat(images, mx.nd.repeat(images[-1:], repeats=missing, axis=0), dim=0)


def launched(loader, batch_size, launch):
    """``(batch, n, outputs)`` per batch of ``loader``: ``outputs = launch(padded images)``, with
    batch k + 1 loaded and launched before batch k is handed out (read back)."""
    pending = None
    for batch in loader:
        current = (batch, batch[0].shape[0], launch(padded(batch[0], batch_size)))
        if pending is not None:
            yield pending
        pending = current
    if pending is not None:
        yield pending


def predict(depth_net, conf_net, dataset, batch_size=8, ctxs=None, progress=True, desc="predict", flip=False,
            num_workers=0):
    """Depth and confidence at 1/4 resolution for every item of ``dataset``.

    Parameters
    ----------
    depth_net, conf_net : gluon.HybridBlock
        Initialised on every context of ``ctxs`` (for speed: ``inference_mode``).
    dataset : gluon.data.Dataset
        Items ``(image (3, H, W) float32 normalised, id int32)``, e.g.
        ``data.dataset.TestDataset`` or ``UnlabeledDataset``.
    batch_size : int
        Images per forward pass, split over ``ctxs``; every pass has this many
        (the last batch is padded).
    ctxs : list of mx.Context
        Default ``[mx.cpu()]``.
    progress : bool
        Show a tqdm bar on stderr.
    flip : bool
        Test-time augmentation: average both maps with those of the mirrored
        image, mirrored back.  Exact on the 1/4 grid because ``data.grid``'s
        pixel centres are symmetric: column j of w mirrors to w - 1 - j.
    num_workers : int
        DataLoader worker processes (0: load in this process, overlapped with the
        forward pass of the previous batch).

    Yields
    ------
    ids : np.ndarray
        (B,) int ids of the batch.
    depth : np.ndarray
        (B, H/4, W/4) float32 metres.
    conf : np.ndarray
        (B, H/4, W/4) float32 in (0, 1).
    """
    ctxs = ctxs or [mx.cpu()]

    def launch(images):
        # a batch smaller than the number of devices would leave some slices empty
        parts = gluon.utils.split_and_load(images, ctxs[:len(images)], even_split=False)
        outputs = []
        for x in parts:  # launched on every device before any result is read back
            depth = depth_net(x)
            conf = conf_net(x, depth)
            if flip:
                mirrored = x.flip(axis=3)
                depth_m = depth_net(mirrored)
                conf_m = conf_net(mirrored, depth_m)
                depth, conf = (depth + depth_m.flip(axis=3)) / 2, (conf + conf_m.flip(axis=3)) / 2
            outputs.append((depth, conf))
        return outputs

    loader = gluon.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, last_batch="keep",
                                   num_workers=num_workers)
    with tqdm(total=len(dataset), desc=desc, unit="img", disable=not progress, file=sys.stderr) as bar:
        for (_, ids), n, outputs in launched(loader, batch_size, launch):
            depth = np.concatenate([d.asnumpy()[:, 0] for d, _ in outputs])[:n]
            conf = np.concatenate([c.asnumpy()[:, 0] for _, c in outputs])[:n]
            bar.update(n)
            yield ids.asnumpy().astype(np.int64), depth, conf


def score_depth(depth_net, dataset, protocol, batch_size=4, ctx=None):
    """The errors of ``depth_net`` on ``dataset`` under ``protocol`` (``ErrorAccumulator.result``).

    ``dataset`` is either labeled rows, ``(image, depth)`` with depth at the prediction's
    1/4 resolution (``data.dataset.LabeledDataset``), scored there; or a
    ``TestDataset``, scored at full resolution against the protocol's ground truth (the
    filled depth of a test.h5 made before raw depth was stored).  Batches are padded to
    ``batch_size`` as in ``predict`` (one graph for the whole set).
    """
    accumulator = ErrorAccumulator(protocol)
    full = isinstance(dataset, TestDataset)
    gt = protocol.gt if full and dataset.has_raw else "filled"
    ctx = ctx or mx.cpu()
    loader = gluon.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, last_batch="keep")
    for (_, targets), n, preds in launched(loader, batch_size, lambda images: depth_net(images.as_in_context(ctx))):
        for pred, target in zip(preds.asnumpy()[:n, 0], targets.asnumpy()):
            truth = dataset.depth_full(int(target), gt) if full else target[0]
            accumulator.add(truth, upsample(pred, truth.shape))
    return accumulator.result()
