"""Readers for the two official NYU Depth V2 files.

``nyu_depth_v2_labeled.mat`` is a MATLAB v7.3 file, i.e. HDF5.  MATLAB stores
arrays column-major, so h5py sees every array with its axes reversed:
``images`` is (N, 3, W, H) uint8 and ``depths`` is (N, W, H) float32 metres.
``LabeledMat`` undoes this and hands out (H, W, 3) RGB and (H, W) depth.

``splits.mat`` is a MATLAB v5 file with the 1-based column vectors
``trainNdxs`` (795) and ``testNdxs`` (654); ``read_splits`` returns them
0-based.
"""
import os

import h5py
import numpy as np
import scipy.io

from .errors import DataError

SPLIT_KEYS = ("trainNdxs", "testNdxs")


def _require_file(path):
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    if not os.path.isfile(path):
        raise DataError(f"{path}: not a regular file")


def _read_index_vector(path, contents, key):
    if key not in contents:
        raise DataError(f"{path}: no '{key}' variable (expected the official NYU splits.mat)")
    raw = np.asarray(contents[key]).ravel()
    if raw.size == 0:
        raise DataError(f"{path}: '{key}' is empty")
    if not np.issubdtype(raw.dtype, np.number):
        raise DataError(f"{path}: '{key}' is not numeric")
    values = raw.astype(np.float64)
    if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
        raise DataError(f"{path}: '{key}' holds non-integer indices")
    if values.min() < 1:
        raise DataError(f"{path}: '{key}' holds index {int(values.min())}; "
                        "MATLAB indices are 1-based and must be >= 1")
    indices = values.astype(np.int64) - 1
    if np.unique(indices).size != indices.size:
        raise DataError(f"{path}: '{key}' lists an image more than once")
    return indices


def read_splits(path):
    """Read the official train/test split.

    Parameters
    ----------
    path : str
        ``splits.mat`` (MATLAB v5) with 1-based ``trainNdxs`` and ``testNdxs``.

    Returns
    -------
    train_idx, test_idx : np.ndarray of int64
        0-based image indices into ``nyu_depth_v2_labeled.mat``, file order.

    Raises
    ------
    DataError
        Missing or unreadable file, missing or empty key, an index < 1, a
        duplicate, or an image listed in both splits.
    """
    _require_file(path)
    try:
        contents = scipy.io.loadmat(path)
    except NotImplementedError:
        raise DataError(f"{path}: MATLAB v7.3 file; expected splits.mat in MATLAB v5 format") from None
    except Exception as exc:  # scipy raises a zoo of types for non-MAT input
        raise DataError(f"{path}: not a readable MATLAB file ({type(exc).__name__})") from None
    train_idx, test_idx = (_read_index_vector(path, contents, key) for key in SPLIT_KEYS)
    shared = np.intersect1d(train_idx, test_idx)
    if shared.size:
        raise DataError(f"{path}: {shared.size} images are in both trainNdxs and testNdxs")
    return train_idx, test_idx


# Root attribute data.synthetic adds to its .mat; the official file has none.
DATASET_ATTR = "semidepth_dataset"


class LabeledMat:
    """Lazy reader for ``nyu_depth_v2_labeled.mat`` (any H x W, not only 480 x 640).

    Use as a context manager; images are read one at a time so the 2.8 GB
    file is never loaded whole.

    Parameters
    ----------
    path : str
        The MATLAB v7.3 (HDF5) file with ``images`` (N, 3, W, H) uint8 and
        ``depths`` (N, W, H) float metres, as h5py sees them.

    Raises
    ------
    DataError
        Missing file, not HDF5, missing datasets, or inconsistent shapes.
    """

    def __init__(self, path):
        self.path = path
        _require_file(path)
        if not h5py.is_hdf5(path):
            raise DataError(f"{path}: not an HDF5 / MATLAB v7.3 file")
        try:
            self._file = h5py.File(path, "r")
        except OSError as exc:
            raise DataError(f"{path}: cannot open as HDF5 ({exc})") from None
        try:
            self._images, self._depths = self._checked_datasets()
        except DataError:
            self._file.close()
            raise

    @property
    def dataset_name(self):
        """'synthetic' for the embedded scenes (marked by data.synthetic), else 'nyu_depth_v2'."""
        name = self._file.attrs.get(DATASET_ATTR, "nyu_depth_v2")
        return name.decode() if isinstance(name, bytes) else str(name)

    def _dataset(self, name):
        node = self._file.get(name)
        if not isinstance(node, h5py.Dataset):
            raise DataError(f"{self.path}: no '{name}' dataset (expected the official NYU labeled .mat)")
        return node

    def _checked_datasets(self):
        images, depths = self._dataset("images"), self._dataset("depths")
        if images.ndim != 4 or images.shape[1] != 3:
            raise DataError(f"{self.path}: 'images' has shape {images.shape}; "
                            "expected (N, 3, W, H) as MATLAB v7.3 stores (H, W, 3, N)")
        if images.dtype != np.uint8:
            raise DataError(f"{self.path}: 'images' has dtype {images.dtype}; expected uint8")
        if depths.ndim != 3:
            raise DataError(f"{self.path}: 'depths' has shape {depths.shape}; expected (N, W, H)")
        if not np.issubdtype(depths.dtype, np.floating):
            raise DataError(f"{self.path}: 'depths' has dtype {depths.dtype}; expected float metres")
        if images.shape[0] != depths.shape[0]:
            raise DataError(f"{self.path}: {images.shape[0]} images but {depths.shape[0]} depth maps")
        if images.shape[2:] != depths.shape[1:]:
            raise DataError(f"{self.path}: image size {images.shape[2:]} differs from depth size "
                            f"{depths.shape[1:]} (W, H)")
        if images.shape[0] == 0 or min(images.shape[2:]) == 0:
            raise DataError(f"{self.path}: holds no image pixels (shape {images.shape})")
        return images, depths

    def __len__(self):
        return self._images.shape[0]

    @property
    def height(self):
        """Image height H in pixels."""
        return self._images.shape[3]

    @property
    def width(self):
        """Image width W in pixels."""
        return self._images.shape[2]

    def image(self, i):
        """Image ``i`` (0-based) as (H, W, 3) uint8 RGB."""
        return np.ascontiguousarray(self._images[i].transpose(2, 1, 0))

    def depth(self, i):
        """Depth map ``i`` (0-based) as (H, W) float32 metres."""
        return np.ascontiguousarray(self._depths[i].T, dtype=np.float32)

    @property
    def has_raw(self):
        """True if the file holds ``rawDepths`` (the official one does)."""
        return isinstance(self._file.get("rawDepths"), h5py.Dataset)

    def raw_depth(self, i):
        """Raw Kinect depth ``i`` (0-based) as (H, W) float32 metres, 0 = no measurement.

        ``rawDepths`` is the projected sensor depth before NYU's in-painting
        (``depths``); it is what BTS, AdaBins, ZoeDepth and Depth Anything
        score against.
        """
        raw = self._dataset("rawDepths")
        if raw.shape != self._depths.shape:
            raise DataError(f"{self.path}: 'rawDepths' has shape {raw.shape}; expected {self._depths.shape} "
                            "like 'depths'")
        depth = np.asarray(raw[i].T, dtype=np.float32)
        with np.errstate(invalid="ignore"):
            return np.ascontiguousarray(np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(0)))

    def check_indices(self, indices, splits_path, key):
        """Raise DataError naming ``splits_path`` if any 0-based index is out of range."""
        indices = np.asarray(indices)
        if indices.size and indices.max() >= len(self):
            raise DataError(f"{splits_path}: {key} holds index {int(indices.max()) + 1} (1-based) "
                            f"but {self.path} has only {len(self)} images")

    def close(self):
        """Close the underlying HDF5 file."""
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
