"""The pseudo-label cache of §4.2.3: {D^_m, C_m} for every unlabeled image m.

"the self-training ground truth is denoted as the masked estimation results
{D^_m, B_m} which will be used in the next training epoch" (§4.2.3, §5.1).

One ``mx.nd`` array per quantity, indexed by the sample's slot (its position in the
unlabeled set): the depth prediction and the confidence at 1/4 resolution, and the
epoch each slot was last written in.  We store the confidence, not the binary mask,
so the mask B = C >= T can be taken at read time (and Table 1 can vary T).

Which entries ``read`` in epoch e uses ("the previous epoch's pseudo-label"):

* ``rule="previous"`` (the paper, the default pairing where every epoch visits every
  unlabeled image once): only entries written in epoch e - 1.  Every other slot is
  masked out, including slots never written (``written`` = -1) and older entries.
* ``rule="earlier"`` (``--unlabeled-per-step K``, where an epoch visits steps x K
  images, so an image's previous visit may lie several epochs back, or in the same
  epoch when steps x K > M): the entry of the last visit in any earlier epoch,
  0 <= written < e.  An entry written in epoch e itself is not used (it comes from
  this epoch's networks, which the paper never uses as a target), nor a slot never written.
  The age of a used entry is e - written epochs (1 under the paper's rule);
  ``read(..., ages=True)`` returns it per slot, and the trainer records the mean age
  of the kept pixels in metrics.jsonl (``pseudo_label_age``).

All operations are asynchronous NDArray ops: no host synchronisation (but for --keep-share,
whose threshold depends on the rows read).

``dtype='float16'`` halves the memory of depth and confidence; reads return float32.
``training.disk_cache.DiskPseudoLabelCache`` has the same interface with the arrays
in files (``--cache-on disk``).  Both save to and load from the same ``.npy`` shard
layout (``save_files`` / ``load_files``), so a run may switch between them on resume.
"""
import math
import os

import mxnet as mx
import numpy as np

from .losses import confidence_mask

NEVER = -1
DTYPES = ("float32", "float16")
RULES = ("previous", "earlier")  # which written epochs read() uses (module docstring)
# The shard layout shared by the memory and the disk cache: one .npy file per quantity.
SHARD_FILES = {"depth": "depth.npy", "conf": "conf.npy", "written": "written.npy"}


def check_rule(rule):
    if rule not in RULES:
        raise ValueError("cache rule must be one of %s, got %r" % (", ".join(RULES), rule))
    return rule


def share_threshold(conf, usable, share):
    """--keep-share: the T that keeps the ``share`` most confident of the usable pixels, i.e. the
    confidence of the ceil(share x n)-th most confident of the n pixels in rows with ``usable``
    (shape (rows, 1, 1, 1)); C = T counts as kept, so ties at T keep a few more.  +inf (nothing
    kept) when no row is usable.  One host synchronisation per read."""
    per_row = conf[0].size
    n = int(round(float(usable.sum().asscalar()))) * per_row
    if n == 0:
        return float("inf")
    k = min(n, max(1, int(math.ceil(round(share * n, 6)))))  # round: 0.3 x 10 is 3.0000000000000004
    scores = mx.nd.where(mx.nd.broadcast_mul(mx.nd.ones_like(conf), usable) > 0, conf, -mx.nd.ones_like(conf))
    return float(mx.nd.topk(scores.reshape((-1,)), k=k, ret_typ="value")[k - 1].asscalar())


def masked_pseudo_labels(depth, conf, written, epoch, threshold, ctx, rule="previous", ages=False, share=None):
    """D^ and B (eq. 5) from gathered cache rows (float32 ``written``).

    B = 0 where the entry is not usable in ``epoch`` under ``rule``: ``written != epoch - 1``
    ("previous"), or not 0 <= written < epoch ("earlier").  With ``ages``, also the age
    epoch - written of each row, shape (n, 1, 1, 1) (meaningful where B > 0).  With ``share``
    (--keep-share, not the paper's), ``threshold`` is replaced by ``share_threshold`` of these rows.
    """
    if depth.dtype != np.float32:
        depth, conf = depth.astype("float32"), conf.astype("float32")
    if rule == "previous":
        fresh = (written == epoch - 1)
    else:
        fresh = (written >= 0) * (written < epoch)
    fresh = fresh.reshape((-1, 1, 1, 1))
    if share is not None:
        threshold = share_threshold(conf, fresh, share)
    mask = mx.nd.broadcast_mul(confidence_mask(mx.nd, conf, threshold), fresh)
    if ages:
        age = (epoch - written).reshape((-1, 1, 1, 1))
        return depth.as_in_context(ctx), mask.as_in_context(ctx), age.as_in_context(ctx)
    return depth.as_in_context(ctx), mask.as_in_context(ctx)


def check_shard(directory, shapes):
    """The shapes of a saved shard, or ValueError naming the mismatch.

    Parameters
    ----------
    directory : str
        A directory written by ``save_files``.
    shapes : dict
        Expected shape per key of ``SHARD_FILES``.
    """
    for key, name in SHARD_FILES.items():
        path = os.path.join(directory, name)
        try:
            stored = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ValueError("cache shard %s is unreadable (%s)" % (path, err))
        if stored.shape != tuple(shapes[key]):
            raise ValueError("checkpoint cache %r does not match this run (%s vs %s)"
                             % (key, stored.shape, tuple(shapes[key])))


class PseudoLabelCache:
    """Pseudo-labels of ``num_samples`` unlabeled images at ``height x width``, in memory.

    Parameters
    ----------
    num_samples, height, width : int
    ctx : mx.Context, optional
        Where the arrays live (default CPU).
    dtype : {'float32', 'float16'}
        Storage type of depth and confidence.
    rule : {'previous', 'earlier'}
        Which entries ``read`` uses (module docstring).
    """

    KEYS = ("depth", "conf", "written")

    def __init__(self, num_samples, height, width, ctx=None, dtype="float32", rule="previous"):
        self.ctx = ctx or mx.cpu()
        self.dtype, self.rule = dtype, check_rule(rule)
        shape = (max(num_samples, 1), 1, height, width)
        self.depth = mx.nd.zeros(shape, ctx=self.ctx, dtype=dtype)
        self.conf = mx.nd.zeros(shape, ctx=self.ctx, dtype=dtype)
        self.written = mx.nd.full((shape[0],), NEVER, ctx=self.ctx)
        self.num_samples = num_samples

    def write(self, ids, depth, conf, epoch):
        """Store the predictions of epoch ``epoch`` for slots ``ids`` (int NDArray)."""
        ids = ids.as_in_context(self.ctx).astype("int64")
        self.depth[ids] = depth.as_in_context(self.ctx).astype(self.dtype)
        self.conf[ids] = conf.as_in_context(self.ctx).astype(self.dtype)
        self.written[ids] = mx.nd.full(ids.shape, epoch, ctx=self.ctx)

    def flush(self):
        """Nothing to do: writes are engine ops (the disk cache applies queued writes here)."""

    def read(self, ids, epoch, threshold, ctx=None, ages=False, share=None):
        """Pseudo depth D^ and mask B (eq. 5) for slots ``ids`` in epoch ``epoch``, float32.

        B is 0 for slots whose entry ``self.rule`` does not allow (module docstring);
        ``ages``: also each slot's age in epochs; ``share``: --keep-share (``masked_pseudo_labels``).
        """
        ids = ids.as_in_context(self.ctx).astype("int64")
        return masked_pseudo_labels(mx.nd.take(self.depth, ids), mx.nd.take(self.conf, ids),
                                    mx.nd.take(self.written, ids), epoch, threshold, ctx or self.ctx,
                                    self.rule, ages, share)

    def shapes(self):
        return {key: getattr(self, key).shape for key in self.KEYS}

    def arrays(self):
        """The cache as a dict for ``mx.nd.save`` (checkpoints)."""
        return {"depth": self.depth, "conf": self.conf, "written": self.written}

    def load(self, arrays):
        """Restore from ``arrays()`` of a checkpoint; shapes must match."""
        for key in self.KEYS:
            if key not in arrays or arrays[key].shape != getattr(self, key).shape:
                raise ValueError("checkpoint cache %r does not match this run (%s vs %s)"
                                 % (key, arrays[key].shape if key in arrays else None,
                                    getattr(self, key).shape))
        for key in self.KEYS:
            dtype = "float32" if key == "written" else self.dtype
            setattr(self, key, arrays[key].as_in_context(self.ctx).astype(dtype))

    def to_numpy(self):
        """{'depth', 'conf', 'written'} as numpy arrays (tests, inspection)."""
        out = {key: getattr(self, key).asnumpy() for key in self.KEYS}
        out["written"] = out["written"].astype(np.int32)
        return out

    def save_files(self, directory):
        """Write the cache as the ``.npy`` shard layout into ``directory`` (created)."""
        os.makedirs(directory, exist_ok=True)
        for key, value in self.to_numpy().items():
            np.save(os.path.join(directory, SHARD_FILES[key]), value)

    def load_files(self, directory):
        """Restore from a shard written by ``save_files`` (of either cache)."""
        check_shard(directory, self.shapes())
        arrays = {}
        for key, name in SHARD_FILES.items():
            value = np.load(os.path.join(directory, name), allow_pickle=False)
            arrays[key] = mx.nd.array(value, dtype=value.dtype)
        self.load(arrays)

    def nbytes(self):
        return sum(a.size * np.dtype(a.dtype).itemsize for a in (self.depth, self.conf, self.written))
