"""The pseudo-label cache in files (``--cache-on disk``).

``DiskPseudoLabelCache`` has the interface and the semantics of
``training.cache.PseudoLabelCache`` (write in epoch e, read in e + 1 only, or in any
later epoch with ``rule="earlier"``: both use ``cache.masked_pseudo_labels``), with the
arrays in three ``.npy`` files of the run directory (``cache/rank<r>/{depth,conf,
written}.npy``).  Slots are read and written with ``os.pread`` / ``os.pwrite`` at
their offsets rather than through ``np.memmap``: mapped pages that were touched count
in the resident set size until unmapped, plain file I/O leaves them in the page cache
only, so the RSS stays constant whatever the number of samples (bench/cache_memory.py).

Writes are queued and applied by ``flush()`` (the trainer calls it after the optimiser
steps; ``read`` and ``save_files`` call it first), so the device-to-host copy of the
predictions does not stall the backward pass.

Checkpoints copy the files into shards beside the checkpoint (``save_files``,
``load_files``; ``training.checkpoint.CacheSnapshots``): a file that training keeps
changing cannot live in ``checkpoints/last``, which must be a consistent snapshot.
"""
import os
import shutil

import mxnet as mx
import numpy as np

from common.files import refuse_link

from .cache import NEVER, SHARD_FILES, PseudoLabelCache, check_rule, check_shard, masked_pseudo_labels


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_npy(path, dtype, shape):
    """A .npy file of zeros; open_memmap writes the header and sizes the (sparse) file."""
    array = np.lib.format.open_memmap(refuse_link(path), "w+", dtype, shape)
    array.flush()
    del array


def _pwrite(fd, data, offset, path):
    if os.pwrite(fd, data, offset) != len(data):
        raise OSError("%s: short write (disk full?)" % path)


class DiskPseudoLabelCache:
    """Pseudo-labels of ``num_samples`` unlabeled images at ``height x width``, in files.

    Parameters
    ----------
    directory : str
        Where the three ``.npy`` files are created (replacing any there).
    num_samples, height, width : int
    dtype : {'float32', 'float16'}
        Storage type of depth and confidence; reads return float32.
    rule : {'previous', 'earlier'}
        Which entries ``read`` uses (``training.cache``).
    """

    KEYS = ("depth", "conf", "written")
    CHUNK = 4096  # slots per bulk copy in load()

    def __init__(self, directory, num_samples, height, width, dtype="float32", rule="previous"):
        self.directory, self.dtype, self.rule = directory, dtype, check_rule(rule)
        self.num_samples = num_samples
        n = max(num_samples, 1)
        self.slot_shape = (1, height, width)
        self.dtypes = {"depth": np.dtype(dtype), "conf": np.dtype(dtype), "written": np.dtype(np.int32)}
        self._shapes = {"depth": (n,) + self.slot_shape, "conf": (n,) + self.slot_shape, "written": (n,)}
        self.fds, self.offsets, self.pending = {}, {}, []
        for part in (os.path.dirname(directory), directory):  # <run>/cache/rank<r>: no link out of the run
            refuse_link(part)
        os.makedirs(directory, exist_ok=True)
        for key in self.KEYS:
            _create_npy(self.path(key), self.dtypes[key], self._shapes[key])
        self._open()
        self._write_rows("written", 0, np.full(n, NEVER, np.int32))

    # ---- files ---------------------------------------------------------------------
    def path(self, key):
        return os.path.join(self.directory, SHARD_FILES[key])

    def _open(self):
        self.close()
        for key in self.KEYS:
            self.offsets[key] = np.load(self.path(key), mmap_mode="r", allow_pickle=False).offset
            self.fds[key] = os.open(self.path(key), os.O_RDWR)

    def close(self):
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def _row_bytes(self, key):
        return int(np.prod(self._shapes[key][1:], dtype=np.int64)) * self.dtypes[key].itemsize

    def _write_rows(self, key, first, values):
        """Contiguous rows ``first ..`` of ``key`` from ``values`` (already of the file's dtype)."""
        data = np.ascontiguousarray(values, self.dtypes[key]).tobytes()
        _pwrite(self.fds[key], data, self.offsets[key] + first * self._row_bytes(key), self.path(key))

    def _write_slots(self, key, ids, values):
        values = np.ascontiguousarray(values, self.dtypes[key])
        size, base = self._row_bytes(key), self.offsets[key]
        for slot, row in zip(ids, values):
            _pwrite(self.fds[key], row.tobytes(), base + int(slot) * size, self.path(key))

    def _read_slots(self, key, ids):
        out = np.empty((len(ids),) + self._shapes[key][1:], self.dtypes[key])
        size, base = self._row_bytes(key), self.offsets[key]
        for k, slot in enumerate(ids):
            got = os.preadv(self.fds[key], [out[k:k + 1]], base + int(slot) * size)
            if got != size:
                raise OSError("%s: short read at slot %d" % (self.path(key), slot))
        return out

    # ---- the PseudoLabelCache interface ------------------------------------------------
    def write(self, ids, depth, conf, epoch):
        """Queue the predictions of epoch ``epoch`` for slots ``ids`` (applied by ``flush``)."""
        self.pending.append((ids, depth, conf, epoch))

    def flush(self):
        """Apply the queued writes (waits for the predictions to be computed)."""
        pending, self.pending = self.pending, []
        for ids, depth, conf, epoch in pending:
            ids = ids.asnumpy().astype(np.int64)
            self._write_slots("depth", ids, depth.asnumpy())
            self._write_slots("conf", ids, conf.asnumpy())
            self._write_slots("written", ids, np.full(len(ids), epoch, np.int32))

    def read(self, ids, epoch, threshold, ctx=None, ages=False, share=None):
        """Pseudo depth D^ and mask B (eq. 5) for slots ``ids`` in epoch ``epoch``, float32
        (and with ``ages`` each slot's age, as ``PseudoLabelCache.read``)."""
        self.flush()
        ctx = ctx or mx.cpu()
        ids = ids.asnumpy().astype(np.int64)
        rows = {key: self._read_slots(key, ids) for key in self.KEYS}
        nd = {key: mx.nd.array(value, dtype=value.dtype) for key, value in rows.items()}
        return masked_pseudo_labels(nd["depth"], nd["conf"], nd["written"].astype("float32"),
                                    epoch, threshold, ctx, self.rule, ages, share)

    def shapes(self):
        return dict(self._shapes)

    def to_numpy(self):
        """{'depth', 'conf', 'written'} as numpy arrays: the whole cache in memory (tests only)."""
        self.flush()
        return {key: np.load(self.path(key), allow_pickle=False) for key in self.KEYS}

    def load(self, arrays):
        """Restore from ``PseudoLabelCache.arrays()`` (a memory-mode checkpoint's cache.nd)."""
        self.pending = []
        for key in self.KEYS:
            if key not in arrays or arrays[key].shape != self._shapes[key]:
                raise ValueError("checkpoint cache %r does not match this run (%s vs %s)"
                                 % (key, arrays[key].shape if key in arrays else None, self._shapes[key]))
        for key in self.KEYS:
            for first in range(0, self._shapes[key][0], self.CHUNK):
                self._write_rows(key, first, arrays[key][first:first + self.CHUNK].asnumpy())

    def save_files(self, directory):
        """Copy the cache files into ``directory`` (created), fsynced."""
        self.flush()
        os.makedirs(directory, exist_ok=True)
        for key in self.KEYS:
            target = refuse_link(os.path.join(directory, SHARD_FILES[key]))
            shutil.copyfile(self.path(key), target)  # streamed, constant memory
            _fsync(target)

    def load_files(self, directory):
        """Restore from a shard written by ``save_files`` (of either cache)."""
        check_shard(directory, self._shapes)
        self.pending = []
        for key in self.KEYS:
            source = os.path.join(directory, SHARD_FILES[key])
            if np.load(source, mmap_mode="r", allow_pickle=False).dtype == self.dtypes[key]:
                shutil.copyfile(source, refuse_link(self.path(key) + ".tmp"))
                os.replace(self.path(key) + ".tmp", self.path(key))
            else:  # another storage dtype: convert chunk by chunk
                stored = np.load(source, mmap_mode="r", allow_pickle=False)
                for first in range(0, len(stored), self.CHUNK):
                    self._write_rows(key, first, stored[first:first + self.CHUNK])
        self._open()

    def nbytes(self):
        """Bytes on disk (not in memory)."""
        return sum(self._row_bytes(key) * self._shapes[key][0] for key in self.KEYS)


def make_cache(opts, num_samples, height, width, run_dir, rank=0):
    """A worker's pseudo-label cache of ``num_samples`` slots at ``height x width``: in memory, or with
    ``--cache-on disk`` in ``<run>/cache/rank<r>/``; the paper's rule (the previous epoch only) unless
    ``--unlabeled-per-step`` visits a part of the unlabeled set per epoch."""
    rule = "previous" if opts.unlabeled_per_step is None else "earlier"
    if opts.cache_on == "disk":
        return DiskPseudoLabelCache(os.path.join(run_dir, "cache", "rank%d" % rank), num_samples, height, width,
                                    dtype=opts.cache_dtype, rule=rule)
    return PseudoLabelCache(num_samples, height, width, dtype=opts.cache_dtype, rule=rule)

