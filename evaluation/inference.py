"""Batched forward passes of both networks over a dataset (no gradients, no training state),
and ``score_depth``, the errors of the depth net on a dataset (training's validation and
``--track-test``)."""
import sys

import mxnet as mx
import numpy as np
from mxnet import gluon
from tqdm import tqdm

from data.dataset import TestDataset

from .metrics import ErrorAccumulator, upsample


def predict(depth_net, conf_net, dataset, batch_size=4, ctxs=None, progress=True, desc="predict", flip=False):
    """Depth and confidence at 1/4 resolution for every item of ``dataset``.

    Parameters
    ----------
    depth_net, conf_net : gluon.HybridBlock
        Initialised on every context of ``ctxs`` (hybridized or not).
    dataset : gluon.data.Dataset
        Items ``(image (3, H, W) float32 normalised, id int32)``, e.g.
        ``data.dataset.TestDataset`` or ``UnlabeledDataset``.
    batch_size : int
        Images per forward pass, split over ``ctxs``.
    ctxs : list of mx.Context
        Default ``[mx.cpu()]``.
    progress : bool
        Show a tqdm bar on stderr.
    flip : bool
        Test-time augmentation: average both maps with those of the mirrored
        image, mirrored back.  Exact on the 1/4 grid because ``data.grid``'s
        pixel centres are symmetric: column j of w mirrors to w - 1 - j.

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
    loader = gluon.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, last_batch="keep")
    with tqdm(total=len(dataset), desc=desc, unit="img", disable=not progress, file=sys.stderr) as bar:
        for images, ids in loader:
            # a last batch smaller than the number of devices would leave some slices empty
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
            depth = np.concatenate([d.asnumpy()[:, 0] for d, _ in outputs])
            conf = np.concatenate([c.asnumpy()[:, 0] for _, c in outputs])
            bar.update(len(depth))
            yield ids.asnumpy().astype(np.int64), depth, conf


def score_depth(depth_net, dataset, protocol, batch_size=4, ctx=None):
    """The errors of ``depth_net`` on ``dataset`` under ``protocol`` (``ErrorAccumulator.result``).

    ``dataset`` is either labeled rows, ``(image, depth)`` with depth at the prediction's
    1/4 resolution (``data.dataset.LabeledDataset``), scored there; or a
    ``TestDataset``, scored at full resolution against the protocol's ground truth (the
    filled depth of a test.h5 made before raw depth was stored).
    """
    accumulator = ErrorAccumulator(protocol)
    full = isinstance(dataset, TestDataset)
    gt = protocol.gt if full and dataset.has_raw else "filled"
    loader = gluon.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, last_batch="keep")
    for images, targets in loader:
        preds = depth_net(images.as_in_context(ctx or mx.cpu())).asnumpy()[:, 0]
        for pred, target in zip(preds, targets.asnumpy()):
            truth = dataset.depth_full(int(target), gt) if full else target[0]
            accumulator.add(truth, upsample(pred, truth.shape))
    return accumulator.result()
