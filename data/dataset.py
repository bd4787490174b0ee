"""What training and evaluation read: splits and Gluon datasets over the prepared files.

``train.h5`` and ``test.h5`` come from ``python -m data.prepare`` (layout in
``data.prepare``).  The semi-supervised split (paper §5.3: 1/2 or 1/4 of the
training images labeled, the rest unlabeled) is drawn over SOURCE images, so
all augmented copies of one photograph land on the same side and no
unlabeled row is an augmentation of a labeled one.
"""
import os
from dataclasses import dataclass

import h5py
import numpy as np
from mxnet import gluon

import config
from common.numbers import round_half_up, valid_mask  # noqa: F401  (valid_mask: data's users import it here)

from .errors import DataError
from .grid import resize_depth

# torchvision / ImageNet statistics of the pretrained encoders, RGB on a 0-1 scale.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)

PREPARED_DATASETS = ("images", "depths", "source")
# evaluate.py --gt -> test.h5 dataset
TEST_GT = {"filled": "depths", "raw": "raw_depths"}


def normalize_image(img):
    """(h, w, 3) uint8 RGB -> (3, h, w) float32, ImageNet-normalised."""
    scaled = img.astype(np.float32) / 255.0
    return np.ascontiguousarray(((scaled - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))


def depth_to_quarter(depth):
    """Ground truth at the network's 1/4 output resolution (the training target).

    ``data.grid.resize_depth`` to (w // 4, h // 4): the depth at the centre
    of each 4 x 4 block (the convention ``upsample`` uses to put predictions
    back), which lies between rows/columns ``4 i + 1`` and ``4 i + 2`` and is
    the mean of the valid ones among those 2 x 2 pixels.  No other pixel of
    the block is read, so depths far apart across an occlusion edge are not
    blended into one that exists nowhere in the scene.

    Parameters
    ----------
    depth : np.ndarray
        (h, w) metres; invalid pixels are <= 0 or non-finite.

    Returns
    -------
    np.ndarray
        (h // 4, w // 4) float32 metres, NaN where invalid.
    """
    height, width = depth.shape[0] // config.OUTPUT_STRIDE, depth.shape[1] // config.OUTPUT_STRIDE
    # Crop to whole blocks first so block i stays rows 4i..4i+3 when h is not a multiple of 4.
    whole = np.asarray(depth, np.float32)[:height * config.OUTPUT_STRIDE, :width * config.OUTPUT_STRIDE]
    sampled = resize_depth(whole, (width, height))
    return np.where(valid_mask(sampled), sampled, np.float32(np.nan)).astype(np.float32)


def split_sources(sources, labeled_frac, seed, val_frac=0.0):
    """Seeded random labeled / unlabeled / validation split of source images.

    One permutation of the sources is drawn from ``seed``; the labeled set is
    its first ``round(labeled_frac * n)`` entries, so for a fixed seed the
    1/4 labeled set is contained in the 1/2 one.  The validation sources are
    the last ``round(val_frac * n_labeled)`` of the labeled entries and are
    removed from ``labeled``; they only pick the best checkpoint (the test
    split is never used for selection).

    Parameters
    ----------
    sources : array-like of int
        Source ids, e.g. the ``source`` column of ``train.h5`` (repeats fine).
    labeled_frac : float
        Fraction of sources with depth labels, 0 < labeled_frac <= 1.
    seed : int
    val_frac : float
        Fraction of the labeled sources held out for validation, 0 <= val_frac < 1.

    Returns
    -------
    dict
        ``labeled``, ``unlabeled``, ``val``: sorted lists of int source ids,
        pairwise disjoint and together covering every source.

    Raises
    ------
    ValueError
        Fractions out of range, no sources, or nothing left to train on.
    """
    if not 0 < labeled_frac <= 1:
        raise ValueError(f"labeled_frac must be in (0, 1], got {labeled_frac}")
    if not 0 <= val_frac < 1:
        raise ValueError(f"val_frac must be in [0, 1), got {val_frac}")
    unique = np.unique(np.asarray(sources, np.int64))
    if unique.size == 0:
        raise ValueError("split_sources needs at least one source")
    order = unique[np.random.RandomState(seed).permutation(unique.size)]
    n_labeled = max(1, round_half_up(labeled_frac * unique.size))
    n_val = round_half_up(val_frac * n_labeled)
    if n_val >= n_labeled:
        raise ValueError(f"val_frac={val_frac} leaves no labeled training source out of {n_labeled}")
    labeled = order[:n_labeled]

    def as_list(ids):
        return sorted(int(i) for i in ids)

    return {"labeled": as_list(labeled[:n_labeled - n_val]),
            "unlabeled": as_list(order[n_labeled:]),
            "val": as_list(labeled[n_labeled - n_val:])}


def rows_for_sources(source_column, source_ids):
    """Sorted row indices (int64) whose ``source`` is in ``source_ids``."""
    return np.flatnonzero(np.isin(np.asarray(source_column), np.asarray(list(source_ids), np.int64)))


def _check_prepared_file(path, hint):
    if not os.path.isfile(path):
        raise DataError(f"{path}: not found; {hint}")
    if not h5py.is_hdf5(path):
        raise DataError(f"{path}: not an HDF5 file; {hint}")
    with h5py.File(path, "r") as h5:
        missing = [name for name in PREPARED_DATASETS if not isinstance(h5.get(name), h5py.Dataset)]
        if missing:
            raise DataError(f"{path}: no dataset {', '.join(missing)}; {hint}")
        lengths = {h5[name].shape[0] for name in PREPARED_DATASETS}
        if len(lengths) != 1 or h5["images"].ndim != 4 or h5["depths"].ndim != 3:
            raise DataError(f"{path}: inconsistent images/depths/source shapes; {hint}")


@dataclass(frozen=True)
class PreparedData:
    """Paths and row metadata of a prepared data directory.

    Attributes
    ----------
    train_path, test_path : str
    train_source, test_source : np.ndarray
        int64 ``source`` columns (0-based image index in the official .mat).
    width, height : int
        Network input size.
    copies : int
        Rows per training source image.
    seed : int
        Augmentation seed the files were prepared with.
    """

    train_path: str
    test_path: str
    train_source: np.ndarray
    test_source: np.ndarray
    width: int
    height: int
    copies: int
    seed: int


def read_prepared(data_dir):
    """Check ``data_dir`` holds a prepared ``train.h5`` and ``test.h5`` and describe them.

    Raises
    ------
    DataError
        Either file missing or lacking ``images`` / ``depths`` / ``source``.
    """
    hint = (f"run python -m data.prepare --mat nyu_depth_v2_labeled.mat --splits splits.mat "
            f"--out {data_dir} (or python -m data.synthetic first for the built-in scenes)")
    if not os.path.isdir(data_dir):
        raise DataError(f"data dir {data_dir} does not exist; {hint}")
    paths = {name: os.path.join(data_dir, f"{name}.h5") for name in ("train", "test")}
    for name, path in paths.items():
        if not os.path.isfile(path):
            raise DataError(f"data dir {data_dir} has no {name}.h5; {hint}")
        _check_prepared_file(path, hint)
    with h5py.File(paths["train"], "r") as train, h5py.File(paths["test"], "r") as test:
        return PreparedData(train_path=paths["train"], test_path=paths["test"],
                            train_source=train["source"][:].astype(np.int64),
                            test_source=test["source"][:].astype(np.int64),
                            width=int(train["images"].shape[2]), height=int(train["images"].shape[1]),
                            copies=int(train.attrs.get("copies", 1)), seed=int(train.attrs.get("seed", 0)))


class _LazyH5:
    """Opens the HDF5 file on first access in each process.

    Gluon's DataLoader forks workers; an h5py handle inherited across fork is
    not safe to use, so the file is (re)opened whenever the pid changes, and
    dropped when pickled.
    """

    def __init__(self, h5_path):
        if not os.path.isfile(h5_path):
            raise DataError(f"{h5_path}: not found; run python -m data.prepare first")
        if not h5py.is_hdf5(h5_path):  # h5py's own error names no file
            raise DataError(f"{h5_path}: not an HDF5 file; make it with python -m data.prepare")
        self.h5_path = h5_path
        self._h5, self._pid = None, None

    def _file(self):
        if self._h5 is None or self._pid != os.getpid():
            self._h5, self._pid = h5py.File(self.h5_path, "r"), os.getpid()
        return self._h5

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_h5"], state["_pid"] = None, None
        return state


class _Rows(_LazyH5, gluon.data.Dataset):
    """A subset of the rows of a prepared file, in the given order.

    Parameters
    ----------
    h5_path : str
        A prepared ``train.h5``.
    rows : array-like of int
        Row indices (e.g. from ``rows_for_sources``); item ``i`` is row ``rows[i]``.
    """

    def __init__(self, h5_path, rows):
        super().__init__(h5_path)
        self.rows = np.asarray(rows, np.int64)

    def __len__(self):
        return len(self.rows)


class LabeledDataset(_Rows):
    """Labeled training rows of ``train.h5`` (parameters: see ``_Rows``)."""

    def __getitem__(self, i):
        """Row ``rows[i]``.

        Returns
        -------
        image : np.ndarray
            (3, h, w) float32, ImageNet-normalised RGB.
        depth : np.ndarray
            (1, h // 4, w // 4) float32 metres, NaN where invalid.
        """
        h5, row = self._file(), int(self.rows[i])
        return normalize_image(h5["images"][row]), depth_to_quarter(h5["depths"][row])[None]


class UnlabeledDataset(_Rows):
    """Unlabeled training rows of ``train.h5``; reads images only, never ``depths``.

    Position ``i`` in ``rows`` is the row's pseudo-label cache slot (parameters: see ``_Rows``).
    """

    def __getitem__(self, i):
        """Row ``rows[i]``.

        Returns
        -------
        image : np.ndarray
            (3, h, w) float32, ImageNet-normalised RGB.
        slot : np.int32
            ``i``, the row's slot in the pseudo-label / confidence cache.
        """
        return normalize_image(self._file()["images"][int(self.rows[i])]), np.int32(i)


class TestDataset(_LazyH5, gluon.data.Dataset):
    """All rows of ``test.h5``.

    Parameters
    ----------
    h5_path : str
        A prepared ``test.h5``.
    """

    __test__ = False  # the name starts with "Test"; keep pytest from collecting it

    def __len__(self):
        return self._file()["images"].shape[0]

    def __getitem__(self, i):
        """Test image ``i``.

        Returns
        -------
        image : np.ndarray
            (3, h, w) float32, ImageNet-normalised RGB.
        index : np.int32
            ``i``, to look up ``depth_full(i)``.
        """
        return normalize_image(self._file()["images"][i]), np.int32(i)

    def depth_full(self, i, gt="filled"):
        """(H, W) float32 ground truth at the original resolution, metres; 0 = invalid.

        ``gt`` 'filled': NYU's in-painted ``depths``; 'raw': the sensor's
        ``raw_depths`` (0 where nothing was measured).
        """
        return self._file()[TEST_GT[gt]][i]

    @property
    def has_raw(self):
        """True if ``test.h5`` holds ``raw_depths`` (prepared after it was added)."""
        return TEST_GT["raw"] in self._file()

    def sources(self):
        """(M,) int64: row ``i``'s 0-based index in the NYU labeled .mat."""
        return self._file()["source"][:]

    def images_uint8(self, i):
        """(h, w, 3) uint8 RGB network-size image ``i`` (for visualisation)."""
        return self._file()["images"][i]


def read_depths(h5_path, rows, quarter=False):
    """Withheld depths of the given rows (evaluation only, e.g. paper Table 1).

    Parameters
    ----------
    h5_path : str
        A prepared ``train.h5``.
    rows : array-like of int
    quarter : bool
        Return ``depth_to_quarter`` of each map instead of the stored map.

    Returns
    -------
    np.ndarray
        (len(rows), h, w) float32 metres with 0 = invalid, or
        (len(rows), h // 4, w // 4) with NaN = invalid if ``quarter``.
    """
    with h5py.File(h5_path, "r") as h5:
        stored = h5["depths"]
        shape = stored.shape[1:]
        if quarter:
            shape = (shape[0] // config.OUTPUT_STRIDE, shape[1] // config.OUTPUT_STRIDE)
        out = np.empty((len(rows),) + tuple(shape), np.float32)
        for k, row in enumerate(rows):
            depth = stored[int(row)]
            out[k] = depth_to_quarter(depth) if quarter else depth
    return out
