"""Turn the official NYU files into the ``train.h5`` / ``test.h5`` the models read.

Usage::

    python -m data.prepare --mat nyu_depth_v2_labeled.mat --splits splits.mat \
        --out datasets/nyu [--seed 0] [--size 320x240] [--copies 9]
    python -m data.prepare --mat nyu_depth_v2_labeled.mat --splits splits.mat \
        --out datasets/nyu --add-raw     # upgrade a test.h5 made without raw_depths

Paper §5: the RGB inputs are downsampled to 320 x 240 and the 795 training
pairs are augmented following Eigen et al. into 7155 = 795 x 9 pairs.  Each
source image yields ``copies`` consecutive rows: the first is the plain
resize (so every photograph is also seen undistorted), the others are random
Eigen augmentations (``data.augment``) drawn from ``RandomState([seed,
source])``, so a row depends only on the seed and its source image.

``train.h5``
    ``images`` (N, h, w, 3) uint8, ``depths`` (N, h, w) float32 metres,
    ``source`` (N,) int64 0-based index into the .mat; attrs seed, copies,
    width, height.
``test.h5``
    ``images`` (M, h, w, 3) uint8 resized, ``depths`` (M, H, W) float32 at
    the original resolution (NYU's in-painted depth: ``evaluate.py --gt
    filled``), ``raw_depths`` (M, H, W) float32 the .mat's ``rawDepths``,
    the sensor's own measurements with 0 where there is none (``--gt raw``,
    the ground truth of BTS, AdaBins, ZoeDepth and Depth Anything),
    ``source`` (M,).  ``--add-raw`` adds ``raw_depths`` to a ``test.h5``
    written before it existed, in place, leaving the other datasets as they are.

Invalid depth pixels (non-finite or <= 0) are stored as 0.  Datasets are
chunked one image per chunk and carry no timestamps, so the same inputs and
seed give byte-identical files.  Both files are written under a ``.tmp``
name and renamed only after everything succeeded: a failed or interrupted
run leaves existing outputs untouched and creates none.
"""
import argparse
import json
import os
import sys

import h5py
import numpy as np
from tqdm import tqdm

import config
from common.cli import OneLineParser
from common.memory import PREPARE_BYTES_PER_PIXEL, check_fits
from config import parse_size

from .augment import IDENTITY, apply_augment, eigen_augment
from .errors import DataError, edge_errors, one_line
from .nyu import LabeledMat, read_splits

PAPER_SIZE = (config.INPUT_WIDTH, config.INPUT_HEIGHT)  # §5.2, owned by config.py
PAPER_COPIES = config.AUG_COPIES
RAW_DATASET = "raw_depths"  # test.h5: the .mat's rawDepths at full resolution
SIZE_MULTIPLE = 16  # symbols.depth_net.INPUT_MULTIPLE, without loading MXNet here


def network_size(text):
    """argparse type: WIDTHxHEIGHT, both multiples of 16, which training requires (the function
    itself takes any size: the tests prepare tiny odd ones)."""
    width, height = parse_size(text)
    if width % SIZE_MULTIPLE or height % SIZE_MULTIPLE:
        raise argparse.ArgumentTypeError(f"{text} (width x height): both must be multiples of {SIZE_MULTIPLE}, "
                                         f"e.g. 320x240 or 160x128")
    return width, height


def positive_int(text):
    """argparse type for an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def checked_depth(mat, index):
    """Depth ``index`` of ``mat`` with invalid pixels set to 0; DataError if none is valid."""
    depth = mat.depth(index)
    valid = np.isfinite(depth) & (depth > 0)
    if not valid.any():
        raise DataError(f"{mat.path}: depth map of image {index} (0-based) has no valid pixel")
    return np.where(valid, depth, np.float32(0)).astype(np.float32)


def _create_rows(h5, name, shape, dtype):
    # One image per chunk: training reads random single rows.
    return h5.create_dataset(name, shape=shape, dtype=dtype, chunks=(1,) + tuple(shape[1:]),
                             track_times=False)


class _DepthRange:
    """Running min/max over valid (> 0) depths."""

    def __init__(self):
        self.low, self.high = np.inf, -np.inf

    def update(self, depth):
        valid = depth[depth > 0]
        if valid.size:
            self.low, self.high = min(self.low, valid.min()), max(self.high, valid.max())


def _write_train(path, mat, sources, seed, size, copies, bar, depth_range):
    width, height = size
    n_rows = len(sources) * copies
    with h5py.File(path, "w") as h5:
        images = _create_rows(h5, "images", (n_rows, height, width, 3), np.uint8)
        depths = _create_rows(h5, "depths", (n_rows, height, width), np.float32)
        h5.create_dataset("source", data=np.repeat(sources, copies).astype(np.int64),
                          track_times=False)
        h5.attrs.update(seed=seed, copies=copies, width=width, height=height, dataset=mat.dataset_name)
        for k, source in enumerate(sources):
            image, depth = mat.image(source), checked_depth(mat, source)
            rng = np.random.RandomState([seed, int(source)])
            for copy in range(copies):
                if copy == 0:
                    out_image, out_depth = apply_augment(IDENTITY, image, depth, size)
                else:
                    out_image, out_depth = eigen_augment(rng, image, depth, size)
                images[k * copies + copy] = out_image
                depths[k * copies + copy] = out_depth
                depth_range.update(out_depth)
            bar.update(1)
    return {"rows": n_rows, "sources": len(sources), "images": [n_rows, height, width, 3],
            "depths": [n_rows, height, width]}


def _write_test(path, mat, sources, seed, size, bar, depth_range):
    width, height = size
    n_rows = len(sources)
    with h5py.File(path, "w") as h5:
        images = _create_rows(h5, "images", (n_rows, height, width, 3), np.uint8)
        depths = _create_rows(h5, "depths", (n_rows, mat.height, mat.width), np.float32)
        raw = _create_rows(h5, RAW_DATASET, (n_rows, mat.height, mat.width), np.float32)
        h5.create_dataset("source", data=np.asarray(sources, np.int64), track_times=False)
        h5.attrs.update(seed=seed, copies=1, width=width, height=height, dataset=mat.dataset_name)
        for k, source in enumerate(sources):
            depth = checked_depth(mat, source)
            images[k] = apply_augment(IDENTITY, mat.image(source), depth, size)[0]
            depths[k] = depth
            raw[k] = mat.raw_depth(source)
            depth_range.update(depth)
            bar.update(1)
    return {"rows": n_rows, "sources": n_rows, "images": [n_rows, height, width, 3],
            "depths": [n_rows, mat.height, mat.width]}


def _remove_if_present(path):
    if os.path.exists(path):
        os.remove(path)


def prepare(mat, splits, out, seed=0, size=PAPER_SIZE, copies=PAPER_COPIES, progress=True):
    """Write ``out/train.h5`` and ``out/test.h5`` from the official NYU files.

    Parameters
    ----------
    mat : str
        ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 / HDF5).
    splits : str
        ``splits.mat`` with 1-based ``trainNdxs`` / ``testNdxs``.
    out : str
        Output directory, created if needed.
    seed : int
        Augmentation seed; same seed and inputs give identical files.
    size : tuple of int
        Network input (width, height).
    copies : int
        Rows per training image (1 plain resize + ``copies - 1`` augmentations).
    progress : bool
        Show a tqdm progress bar on stderr.

    Returns
    -------
    dict
        JSON-ready summary: paths, row counts, shapes, depth range, seed.

    Raises
    ------
    DataError
        Any problem with the inputs or the output directory; no output file
        is created or replaced in that case.
    ValueError
        ``copies`` < 1.
    """
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    check_fits("preparing the data", size, PREPARE_BYTES_PER_PIXEL, DataError)
    train_idx, test_idx = read_splits(splits)
    with LabeledMat(mat) as labeled:
        labeled.check_indices(train_idx, splits, "trainNdxs")
        labeled.check_indices(test_idx, splits, "testNdxs")
        if not labeled.has_raw:
            raise DataError(f"{mat}: no 'rawDepths' dataset (expected the official NYU labeled .mat)")
        created_dir = not os.path.isdir(out)
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as exc:
            raise DataError(f"{out}: cannot create output directory ({exc.strerror})") from None
        final = {name: os.path.join(out, f"{name}.h5") for name in ("train", "test")}
        temporary = {name: path + ".tmp" for name, path in final.items()}
        depth_range = _DepthRange()
        committed = False
        try:
            with tqdm(total=len(train_idx) + len(test_idx), desc="prepare", unit="img",
                      disable=not progress, file=sys.stderr) as bar:
                train = _write_train(temporary["train"], labeled, train_idx, seed, size, copies,
                                     bar, depth_range)
                test = _write_test(temporary["test"], labeled, test_idx, seed, size, bar,
                                   depth_range)
            for name in final:
                os.replace(temporary[name], final[name])
            committed = True
        except OSError as exc:
            raise DataError(f"{out}: cannot write output ({exc})") from None
        finally:
            if not committed:
                for path in temporary.values():
                    _remove_if_present(path)
                if created_dir and not os.listdir(out):
                    os.rmdir(out)
    train.update(path=final["train"])
    test.update(path=final["test"])
    return {"train": train, "test": test, "seed": seed, "copies": copies,
            "size": list(size), "depth_min": float(depth_range.low),
            "depth_max": float(depth_range.high)}


def add_raw(mat, splits, out):
    """Add ``raw_depths`` to an existing ``out/test.h5`` from the .mat it was made from.

    The test rows must be the .mat's ``testNdxs`` in file order (checked
    against ``source``).  The dataset is written under a temporary name and
    renamed when complete, so an interrupted run leaves no half-filled
    ``raw_depths``; nothing else in the file changes.  Returns a summary dict.
    """
    path = os.path.join(out, "test.h5")
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file (run python -m data.prepare without --add-raw)")
    _, test_idx = read_splits(splits)
    with LabeledMat(mat) as labeled, h5py.File(path, "r+") as h5:
        labeled.check_indices(test_idx, splits, "testNdxs")
        if "source" not in h5 or not np.array_equal(h5["source"][:], test_idx):
            raise DataError(f"{path}: its test rows are not {splits}'s testNdxs; re-run data.prepare instead")
        if (h5["depths"].shape[1], h5["depths"].shape[2]) != (labeled.height, labeled.width):
            raise DataError(f"{path}: depth size {h5['depths'].shape[1:]} differs from {mat}'s frames")
        if RAW_DATASET in h5:
            return {"path": path, "raw_depths": "already present"}
        partial = RAW_DATASET + ".partial"
        if partial in h5:
            del h5[partial]
        raw = _create_rows(h5, partial, h5["depths"].shape, np.float32)
        for k, source in enumerate(test_idx):
            raw[k] = labeled.raw_depth(source)
        h5.move(partial, RAW_DATASET)
    return {"path": path, "raw_depths": [len(test_idx), labeled.height, labeled.width]}


def main(argv=None):
    """Command-line entry point; returns the exit status (2 on bad input)."""
    parser = OneLineParser(prog="python -m data.prepare", description=__doc__.split("\n")[0])
    parser.add_argument("--mat", required=True, help="nyu_depth_v2_labeled.mat")
    parser.add_argument("--splits", required=True, help="splits.mat")
    parser.add_argument("--out", required=True, help="output directory for train.h5 / test.h5")
    parser.add_argument("--seed", type=int, default=0, help="augmentation seed (default 0)")
    parser.add_argument("--size", type=network_size, default=PAPER_SIZE,
                        help="network input WIDTHxHEIGHT, multiples of 16 (default 320x240, paper §5)")
    parser.add_argument("--copies", type=positive_int, default=PAPER_COPIES,
                        help="rows per training image (default 9: 795 -> 7155, paper §5)")
    parser.add_argument("--add-raw", action="store_true",
                        help="only add raw_depths to an existing OUT/test.h5 (made before it was stored)")
    args = parser.parse_args(argv)
    try:
        if args.add_raw:
            try:
                print(json.dumps(add_raw(args.mat, args.splits, args.out), indent=2))
            except OSError as exc:
                raise DataError(f"{args.out}/test.h5: cannot update ({exc})") from None
            return 0
        # The bar only goes to a terminal, so logs and error output stay one clean line each.
        summary = prepare(args.mat, args.splits, args.out, seed=args.seed, size=args.size,
                          copies=args.copies, progress=sys.stderr.isatty())
    except edge_errors() as exc:  # DataError, and MXNet, HDF5 (OSError) or OpenCV ones
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
