"""Rotation pretraining: a stand-in for ImageNet weights that knows no depth.

    python -m training.pretext --data PREPARED_DIR --out FILE.params [--epochs 4] [--lr 0.003]
                               [--batch-size 16] [--seed 0] [--no-progress]

gluoncv's ``resnet50_v1b`` learns from scratch to tell how far an image was turned: 0, 90,
180 or 270 degrees counter-clockwise, 4 classes (rotation prediction, Gidaris et al., ICLR
2018).  A label is the number of quarter turns alone: no depth, normals, disparity or layout
is read or computed (the ``depths`` of train.h5 are never read).  Every row of
PREPARED_DIR/train.h5 is used in all four rotations in each epoch, in an order shuffled from
(seed, epoch), cropped to its centred square of side min(h, w) so that the four rotations
share one shape.  SGD, momentum 0.9, weight decay 5e-4, poly decay (power 0.9) as the depth
net's (§5.1), to 0 at the end, so the last steps barely move the weights and the BatchNorm
statistics the file keeps match them (``train.py --backbone-params`` freezes them).

Writes FILE.params, a resnet50_v1b weights file laid out like gluoncv's ImageNet one
(``symbols.backbone.save_layers``, as ``python -m training.save_backbone`` writes), so
``train.py --backbone-params FILE.params`` loads it exactly as it loads ImageNet weights;
and FILE.json beside it: the settings, the rotation accuracy on the training images (last
epoch, as trained) and on every row of PREPARED_DIR/test.h5 in its four rotations
(measured once at the end; it selects nothing), and the time.  Both are written under a
temporary name and renamed, the JSON first: FILE.params exists only when both are whole.
Deterministic for a fixed seed and OMP_NUM_THREADS.
"""
import argparse
import math
import os
import sys
import time

from common.threads import set_omp_threads

set_omp_threads()  # before mxnet loads (common/threads.py)
import h5py  # noqa: E402
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from gluoncv.model_zoo import resnet50_v1b  # noqa: E402
from gluoncv.utils import LRScheduler  # noqa: E402
from mxnet import autograd, gluon  # noqa: E402
from tqdm import tqdm  # noqa: E402

import config  # noqa: E402
from common.cli import OneLineParser  # noqa: E402
from common.files import write_json_atomic  # noqa: E402
from data.dataset import normalize_image, read_prepared  # noqa: E402
from data.errors import DataError, edge_errors, one_line  # noqa: E402
from symbols.backbone import resnet_layers, save_layers  # noqa: E402
from symbols.depth_net import INPUT_MULTIPLE  # noqa: E402

from .optimisers import CPU_SGD_AGGREGATION  # noqa: E402

ROTATIONS = 4  # classes: k = 0, 1, 2, 3 quarter turns counter-clockwise (0, 90, 180, 270 degrees)
EPOCHS = 4
# Chosen by a check on train.h5's images only, never test.h5 (experiments/claims' pretraining
# scenes: 608 rows at 128x96; rows 0-479 trained, rows 480-607 scored in their 4 rotations;
# seed 0, batch 16, 1 thread).  Rotation accuracy of the 128 after 1 epoch: lr 0.001 0.697,
# 0.003 0.697, 0.01 0.680, 0.03 0.646; after 2 epochs: 0.003 0.785, 0.01 0.771.
LR = 0.003
MOMENTUM = 0.9
WD = 5e-4  # §5.1's depth-net value; a common choice for ResNets trained from scratch too
BATCH_SIZE = 16
INIT = mx.init.Xavier(magnitude=2)  # what DepthNet gives a backbone trained from scratch
WHAT_IT_DID_NOT = "no depth, normals, disparity or layout labels"


def rotate(image, k):
    """``image`` (h, w, ...) turned ``k`` quarter turns counter-clockwise: the example of label ``k``."""
    return np.rot90(image, k, axes=(0, 1))


def centre_square(images):
    """(N, h, w, 3) -> (N, s, s, 3), s = min(h, w): the centred square, which every rotation keeps."""
    height, width = images.shape[1:3]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return images[:, top:top + side, left:left + side]


def read_images(h5_path):
    """Centre squares of every row of a prepared file's ``images``, (N, s, s, 3) uint8."""
    with h5py.File(h5_path, "r") as h5:
        return np.ascontiguousarray(centre_square(h5["images"]))


def all_pairs(n_images):
    """(4 n, 2) int64: every (image, quarter turns) pair once, image-major."""
    return np.stack(np.meshgrid(np.arange(n_images), np.arange(ROTATIONS), indexing="ij"), -1).reshape(-1, 2)


def epoch_pairs(n_images, seed, epoch):
    """``all_pairs`` in an order shuffled from (seed, epoch): an epoch sees each image in all 4 rotations."""
    pairs = all_pairs(n_images)
    return pairs[np.random.RandomState([seed, epoch]).permutation(len(pairs))]


def rotation_batch(images, pairs):
    """Images ``pairs[:, 0]`` turned ``pairs[:, 1]`` times, and their labels.

    Returns
    -------
    x : np.ndarray
        (B, 3, s, s) float32, ImageNet-normalised (``normalize_image``, as the depth net's input).
    y : np.ndarray
        (B,) float32 labels: the quarter turns.
    """
    x = np.stack([normalize_image(np.ascontiguousarray(rotate(images[i], k))) for i, k in pairs])
    return x, pairs[:, 1].astype(np.float32)


def batches(pairs, batch_size):
    """Consecutive slices of ``pairs``; the last may be smaller (every pair is used)."""
    return [pairs[i:i + batch_size] for i in range(0, len(pairs), batch_size)]


def get_rotation_net(seed):
    """A resnet50_v1b with a 4-way classifier, every parameter initialised from ``seed``.

    4 outputs, not ImageNet's 1000 with 4 of them used: only conv1, bn1 and layer1..4 go
    into the weights file (``save_layers``, whose ``fc`` is fresh: train.py never loads it),
    so the classifier's size is free, and 996 logits nobody trains would only cost time.
    BatchNorm trains on batch statistics, as from scratch it must (symbols/depth_net.py).
    ``last_gamma``: each bottleneck's last BatchNorm scale starts at 0, so every residual
    block starts as the identity (Goyal et al. 2017; gluoncv's ImageNet recipe): without
    it the 16 blocks' outputs add up and the first losses are ~10 instead of ln 4.  It
    changes initial values only, not the layout of the weights file.
    """
    mx.random.seed(seed)
    np.random.seed(seed)
    net = resnet50_v1b(pretrained=False, classes=ROTATIONS, last_gamma=True)
    net.initialize(INIT)
    with autograd.pause():  # finish the deferred shapes now: the weights depend on the seed alone
        net(mx.nd.zeros((1, 3, INPUT_MULTIPLE * 2, INPUT_MULTIPLE * 2)))
    net.hybridize(static_alloc=True, static_shape=True)  # 1.5 s a step instead of 2.1 (96x96, batch 16, 1 thread)
    return net


def make_trainer(net, lr, epochs, steps_per_epoch):
    """SGD with momentum and weight decay, poly decay per step to 0 at the end (config.POLY_POWER)."""
    schedule = LRScheduler("poly", base_lr=lr, nepochs=epochs, iters_per_epoch=steps_per_epoch,
                           power=config.POLY_POWER)
    sgd = mx.optimizer.SGD(learning_rate=lr, momentum=MOMENTUM, wd=WD, lr_scheduler=schedule)
    sgd.aggregate_num = CPU_SGD_AGGREGATION  # faster on CPU (training/optimisers.py)
    return gluon.Trainer(net.collect_params(), sgd, kvstore=None)


def run_epoch(net, trainer, images, pairs, batch_size, progress=True, desc=""):
    """One pass over ``pairs`` (image, quarter turns); returns (mean loss, accuracy) as trained.

    The loss is summed over a batch and ``trainer.step(len(batch))`` divides by its size:
    each step follows the batch's mean loss, the smaller last batch included.
    """
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    loss_sum, correct = mx.nd.zeros((1,)), mx.nd.zeros((1,))
    previous = None
    with tqdm(total=len(pairs), desc=desc, unit="img", disable=not progress, leave=False,
              dynamic_ncols=True, file=sys.stderr) as bar:
        for chunk in batches(pairs, batch_size):
            x, y = (mx.nd.array(a) for a in rotation_batch(images, chunk))
            with autograd.record():
                logits = net(x)
                loss = loss_fn(logits, y)
            loss.backward()
            trainer.step(len(chunk))
            loss_sum += loss.sum()
            correct += (logits.argmax(axis=1) == y).sum()
            if previous is not None:  # one step in flight: the bar counts finished steps, memory stays bounded
                previous.wait_to_read()
            previous = loss
            bar.update(len(chunk))
    return float(loss_sum.asscalar()) / len(pairs), float(correct.asscalar()) / len(pairs)


def accuracy(net, images, batch_size):
    """Rotation accuracy over every image in its 4 rotations, inference mode (stored BatchNorm statistics)."""
    correct = mx.nd.zeros((1,))
    for chunk in batches(all_pairs(len(images)), batch_size):
        x, y = (mx.nd.array(a) for a in rotation_batch(images, chunk))
        correct += (net(x).argmax(axis=1) == y).sum()
    return float(correct.asscalar()) / (ROTATIONS * len(images))


def pretrain(train_images, heldout_images, epochs=EPOCHS, lr=LR, batch_size=BATCH_SIZE, seed=0,
             progress=True, log=print):
    """Train a rotation net on ``train_images``, score it on ``heldout_images`` (both (N, s, s, 3) uint8).

    Returns
    -------
    net : gluon.HybridBlock
        The trained resnet50_v1b (4-way classifier).
    summary : dict
        ``accuracy_train`` (last epoch, as trained), ``accuracy_heldout``, ``loss_train``, ``seconds``.
    """
    tic = time.time()
    net = get_rotation_net(seed)
    steps = math.ceil(ROTATIONS * len(train_images) / batch_size)
    trainer = make_trainer(net, lr, epochs, steps)
    loss, acc = float("nan"), float("nan")
    for epoch in range(epochs):
        start = time.time()
        loss, acc = run_epoch(net, trainer, train_images, epoch_pairs(len(train_images), seed, epoch),
                              batch_size, progress, desc="rotation epoch %d of 0..%d" % (epoch, epochs - 1))
        log("epoch %d of 0..%d  loss %.4f  train accuracy %.4f  %.1f s"
            % (epoch, epochs - 1, loss, acc, time.time() - start))
    heldout = accuracy(net, heldout_images, batch_size) if len(heldout_images) else None
    return net, {"accuracy_train": acc, "loss_train": loss, "accuracy_heldout": heldout,
                 "seconds": round(time.time() - tic, 1)}


def json_path(params_path):
    """FILE.params -> FILE.json."""
    return params_path[:-len(".params")] + ".json"


def check_out(path):
    """Refuse before training an --out that is not FILE.params or cannot be written."""
    if not path.endswith(".params"):
        raise DataError("--out %s: give a FILE.params (FILE.json is written beside it)" % path)
    if os.path.isdir(path):
        raise DataError("--out %s is a directory" % path)
    probe = path + ".tmp"
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as err:
        raise DataError("--out %s: cannot write there (%s)" % (path, one_line(err)))


def write_outputs(net, record, out):
    """FILE.json, then FILE.params (both atomically): the .params file marks a finished run."""
    write_json_atomic(json_path(out), record)
    return save_layers(resnet_layers(net), out)


def positive(kind):
    def parse(text):
        value = kind(text)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(text)
        return value
    parse.__name__ = "positive %s" % kind.__name__  # argparse names the type in its error
    return parse


def build_parser():
    parser = OneLineParser(prog="python -m training.pretext", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True,
                        help="a prepared directory (train.h5, test.h5; python -m data.prepare)")
    parser.add_argument("--out", required=True, help="the FILE.params to write (and FILE.json beside it)")
    parser.add_argument("--epochs", type=positive(int), default=EPOCHS, help="default: %(default)s")
    parser.add_argument("--lr", type=positive(float), default=LR,
                        help="SGD learning rate, poly-decayed to 0 (chosen on train images: see LR in "
                             "training/pretext.py). default: %(default)s")
    parser.add_argument("--batch-size", type=positive(int), default=BATCH_SIZE, help="default: %(default)s")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and shuffling. default: %(default)s")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        prepared = read_prepared(args.data)
        check_out(args.out)
        train_images, heldout_images = read_images(prepared.train_path), read_images(prepared.test_path)
        if not len(train_images):
            raise DataError("%s has no rows to train on" % prepared.train_path)
        print("rotation pretraining: %d train images x %d rotations at %dx%d, %d held-out, %d epochs, "
              "lr %g, batch %d, seed %d, %d thread(s)" % (
                  len(train_images), ROTATIONS, train_images.shape[2], train_images.shape[1],
                  len(heldout_images), args.epochs, args.lr, args.batch_size, args.seed, set_omp_threads()))
        net, summary = pretrain(train_images, heldout_images, args.epochs, args.lr, args.batch_size,
                                args.seed, progress=not args.no_progress)
        heldout = summary["accuracy_heldout"]
        record = {"task": "rotation", "classes": ROTATIONS, "epochs": args.epochs, "lr": args.lr,
                  "batch_size": args.batch_size, "seed": args.seed, "momentum": MOMENTUM, "wd": WD,
                  "lr_schedule": "poly, power %g, per step, to 0" % config.POLY_POWER,
                  "crop": "centred square %dx%d" % train_images.shape[1:3],
                  "n_train_images": len(train_images), "n_heldout_images": len(heldout_images),
                  "accuracy_train": summary["accuracy_train"], "loss_train": summary["loss_train"],
                  "accuracy_heldout": heldout, "seconds": summary["seconds"],
                  "omp_num_threads": set_omp_threads(), "data": os.path.abspath(args.data),
                  "what_it_learned": "To tell by how many quarter turns (0, 90, 180 or 270 degrees) an image "
                                     "of the scenes was rotated, from its pixels alone%s." % (
                                         "" if heldout is None else ": %.1f %% right on %d held-out images "
                                         "in 4 rotations each" % (100 * heldout, len(heldout_images))),
                  "what_it_did_not": WHAT_IT_DID_NOT}
        print("held-out rotation accuracy %s on %d images x %d rotations; %.0f s" % (
            "n/a" if heldout is None else "%.4f" % heldout, len(heldout_images), ROTATIONS, summary["seconds"]))
        print(write_outputs(net, record, args.out))
    except edge_errors() as err:
        print("error: %s" % one_line(err), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
