"""The data a run trains on: the split of the prepared train.h5 (§5.3) and the datasets of its sides.

``RunData(opts)`` reads what the flags name; ``extra_unlabeled`` replaces the ``--unlabeled`` folder by
any dataset of the same interface (``bench/unlabeled_scale.py`` passes virtual images).
"""
import mxnet as mx
import numpy as np

from data.dataset import (LabeledDataset, TestDataset, UnlabeledDataset, read_depths, read_prepared, rows_for_sources,
                          split_sources)
from data.unlabeled_dir import ConcatUnlabeled, ExtraUnlabeledDataset
from rundir.layout import RunError
from symbols import check_input_size


class RunData:
    """``height``, ``width``, ``train_h5``, ``split`` and the datasets ``labeled``, ``unlabeled`` (every
    unlabeled image: train.h5's unlabeled rows, then the extra ones), ``val`` and ``test`` (or None)."""

    def __init__(self, opts, extra_unlabeled=None):
        prepared = read_prepared(opts.data)
        self.train_h5 = prepared.train_path
        self.height, self.width = prepared.height, prepared.width
        extra = extra_unlabeled
        if extra is None and opts.unlabeled:
            extra = ExtraUnlabeledDataset(opts.unlabeled, (self.width, self.height), progress=not opts.no_progress)
        self.has_extra = extra is not None
        self.split = make_split(opts, prepared.train_source, extra)
        self.labeled = LabeledDataset(self.train_h5, self.split["labeled_rows"])
        if opts.batch_size > len(self.labeled):  # checked before anything is written
            raise ValueError("--batch-size %d is larger than the %d labeled training rows of this split (--data %s, "
                             "--labeled-frac %g)" % (opts.batch_size, len(self.labeled), opts.data, opts.labeled_frac))
        unlabeled = UnlabeledDataset(self.train_h5, self.split["unlabeled_rows"])
        self.unlabeled = ConcatUnlabeled([unlabeled, extra]) if extra is not None else unlabeled
        self.val = LabeledDataset(self.train_h5, self.split["val_rows"]) if self.split["val_rows"] else None
        self.test = TestDataset(prepared.test_path) if opts.track_test else None
        check_input_size(self.height, self.width)

    def pseudo_labels(self, source, slots=None):
        """``pseudo_labels(ids, pred)``: what the cache stores for the unlabeled images of cache ``ids``.
        ``source`` 'model': the prediction (§4.2.3); 'oracle' (not the paper's method): their ground truth
        at 1/4 resolution where valid, the prediction elsewhere, as the model would (cache ``slots`` of
        this worker, default all); refused where some image has none."""
        if source == "model":
            return lambda ids, pred: pred
        if self.has_extra:
            raise RunError("--pseudo-labels oracle needs the ground truth of every unlabeled image; "
                           "the --unlabeled images have none")
        depths = read_depths(self.train_h5, self.split["unlabeled_rows"], quarter=True)
        oracle = mx.nd.array(depths if slots is None else depths[np.asarray(slots)], ctx=mx.cpu())

        def ground_truth(ids, pred):
            gt = oracle.take(ids.as_in_context(mx.cpu()).astype("int64")).expand_dims(1).as_in_context(pred.context)
            return mx.nd.where(gt > 0, gt, pred)  # NaN > 0 is false
        return ground_truth


def make_split(opts, source, extra=None):
    """Labeled / unlabeled / val source ids (§5.3), their rows in train.h5 and the extra images."""
    sides = split_sources(source, opts.labeled_frac, opts.seed, opts.val_frac)
    rows = {side + "_rows": rows_for_sources(source, ids).tolist() for side, ids in sides.items()}
    split = dict(sides, **rows)
    if extra is not None:
        split["extra_unlabeled"] = extra.record()
    return split
