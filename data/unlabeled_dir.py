"""Extra unlabeled images for training (``train.py --unlabeled PATH``).

Semi-supervised training gains from unlabeled images, and they need no depth: any
folder of photographs (found by ``data.images.list_images``, the finder of
``predict.py``: ``.png`` / ``.jpg`` / ``.jpeg`` recursively, hidden names skipped, in
sorted order of their relative paths) or an HDF5 file with an ``images`` dataset
of shape (N, h, w, 3) uint8 RGB.  Each image is resized to the network input size
with ``data.augment.resize_image``, as the training rows were by ``data.prepare``, and
read only when asked for: nothing is held in memory, so N may be arbitrarily large.
Every file of a folder is decoded once when the dataset is made (with a progress bar),
so a corrupt image stops training before its first epoch, not in the middle of it.

``ConcatUnlabeled`` puts them after the split's unlabeled rows; the position in the
concatenation is the pseudo-label cache slot.
"""
import bisect
import hashlib
import os

import h5py
import numpy as np
from mxnet import gluon

from .augment import resize_image
from .dataset import normalize_image
from .errors import DataError
from .images import IMAGE_SUFFIXES, check_images, list_images, read_rgb

__all__ = ["ExtraUnlabeledDataset", "ConcatUnlabeled", "IMAGE_SUFFIXES", "describe_change", "list_images"]


class ExtraUnlabeledDataset(gluon.data.Dataset):
    """Unlabeled images from a folder or an HDF5 file, resized to the input size.

    Parameters
    ----------
    path : str
        A folder of images or an HDF5 file with ``images`` (N, h, w, 3) uint8.
    size : tuple of int
        Network input (width, height).
    progress : bool
        Progress bar while every image of a folder is checked.

    Raises
    ------
    DataError
        ``path`` missing, holding no image, not HDF5 / without a usable ``images``
        dataset, or any image of the folder unreadable (named in the message).
    """

    def __init__(self, path, size, progress=True):
        self.path, self.size = path, tuple(size)
        self.files, self._h5, self._pid = None, None, None
        if os.path.isdir(path):
            self.files = list_images(path)
            if not self.files:
                raise DataError("%s: no %s images in this folder or below" % (path, "/".join(IMAGE_SUFFIXES)))
            self.count = len(self.files)
            check_images([os.path.join(path, f) for f in self.files], progress, desc="checking --unlabeled",
                         hint=" (--unlabeled: fix or remove it; every image is checked before training)")
        elif os.path.isfile(path):
            self.count = self._check_h5()  # uint8 arrays: nothing to decode
        else:
            raise DataError("%s: not found (--unlabeled takes a folder of images or an HDF5 file)" % path)

    def _check_h5(self):
        if not h5py.is_hdf5(self.path):
            raise DataError("%s: neither a folder nor an HDF5 file" % self.path)
        with h5py.File(self.path, "r") as h5:
            images = h5.get("images")
            if not isinstance(images, h5py.Dataset):
                raise DataError("%s: no dataset 'images'" % self.path)
            if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
                raise DataError("%s: 'images' must be (N, h, w, 3) uint8, got %s %s"
                                % (self.path, images.shape, images.dtype))
            if images.shape[0] == 0:
                raise DataError("%s: 'images' is empty" % self.path)
            return int(images.shape[0])

    def _h5_images(self):
        # h5py handles do not survive a fork (DataLoader workers): reopen per process.
        if self._h5 is None or self._pid != os.getpid():
            self._h5, self._pid = h5py.File(self.path, "r"), os.getpid()
        return self._h5["images"]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_h5"], state["_pid"] = None, None
        return state

    def __len__(self):
        return self.count

    def raw(self, i):
        """Image ``i`` as stored: (H, W, 3) uint8 RGB."""
        if self.files is None:
            return self._h5_images()[i]
        return read_rgb(os.path.join(self.path, self.files[i]))

    def __getitem__(self, i):
        """Image ``i``.

        Returns
        -------
        image : np.ndarray
            (3, h, w) float32, ImageNet-normalised RGB at the input size.
        index : np.int32
            ``i``.
        """
        return normalize_image(resize_image(self.raw(i), self.size)), np.int32(i)

    def record(self):
        """What split.json keeps so that ``--resume`` sees the same images."""
        names = "\n".join(self.files) if self.files is not None else "hdf5"
        return {"path": os.path.abspath(self.path), "count": self.count,
                "names_sha1": hashlib.sha1(names.encode()).hexdigest()}


def describe_change(saved, now):
    """Why the ``--unlabeled`` images of a resume are not those the run started with (split.json)."""
    if saved is None:
        return "it was started without --unlabeled; resume it without --unlabeled %s" % now["path"]
    if now is None:
        return "it was started with --unlabeled %s; give it again" % saved["path"]
    if saved["path"] != now["path"]:
        return "it was started with --unlabeled %s, not %s" % (saved["path"], now["path"])
    kind = "file" if os.path.isfile(now["path"]) else "folder"
    return ("the --unlabeled %s %s changed since the run started (%d images then, %d now, or other names): "
            "restore it or start a new run" % (kind, now["path"], saved["count"], now["count"]))


class ConcatUnlabeled(gluon.data.Dataset):
    """Unlabeled datasets one after the other; items are ``(image, np.int32(slot))``.

    Parameters
    ----------
    datasets : list of gluon.data.Dataset
        Each returning ``(image, anything)``.
    """

    def __init__(self, datasets):
        self.datasets = list(datasets)
        self.ends = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self):
        return self.ends[-1] if self.ends else 0

    def __getitem__(self, i):
        """``(image, np.int32(i))``: the image of the dataset holding position ``i``."""
        which = bisect.bisect_right(self.ends, i)
        start = self.ends[which - 1] if which else 0
        return self.datasets[which][i - start][0], np.int32(i)
