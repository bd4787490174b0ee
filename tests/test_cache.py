"""The pseudo-label cache: written in epoch e, read in epoch e + 1 only."""
import mxnet as mx
import numpy as np

from training.cache import PseudoLabelCache


def filled(value, n=2):
    return mx.nd.full((n, 1, 2, 3), value)


def test_written_in_epoch_e_read_in_e_plus_1_only():
    cache = PseudoLabelCache(5, 2, 3)
    cache.write(mx.nd.array([3, 1]), filled(7.0), filled(0.95), epoch=4)
    ids = mx.nd.array([1, 0, 3])
    depth, mask = cache.read(ids, epoch=5, threshold=0.9)
    np.testing.assert_array_equal(depth.asnumpy()[:, 0, 0, 0], [7, 0, 7])
    np.testing.assert_array_equal(mask.asnumpy()[:, 0, 0, 0], [1, 0, 1])  # slot 0 never written
    for epoch in (4, 6):  # same epoch, or a stale entry two epochs later
        _, mask = cache.read(ids, epoch=epoch, threshold=0.9)
        assert mask.asnumpy().sum() == 0


def test_mask_follows_confidence_threshold_per_pixel():
    cache = PseudoLabelCache(1, 1, 3)
    conf = mx.nd.array([0.5, 0.9, 0.99]).reshape((1, 1, 1, 3))
    cache.write(mx.nd.array([0]), mx.nd.ones((1, 1, 1, 3)), conf, epoch=0)
    _, mask = cache.read(mx.nd.array([0]), epoch=1, threshold=0.9)
    np.testing.assert_array_equal(mask.asnumpy().ravel(), [0, 1, 1])
    _, mask = cache.read(mx.nd.array([0]), epoch=1, threshold=0.0)
    np.testing.assert_array_equal(mask.asnumpy().ravel(), [1, 1, 1])


def test_save_load_roundtrip(tmp_path):
    cache = PseudoLabelCache(4, 2, 3)
    cache.write(mx.nd.array([2]), filled(3.5, 1), filled(0.97, 1), epoch=2)
    mx.nd.save(str(tmp_path / "cache.nd"), cache.arrays())
    other = PseudoLabelCache(4, 2, 3)
    other.load(mx.nd.load(str(tmp_path / "cache.nd")))
    for key in PseudoLabelCache.KEYS:
        np.testing.assert_array_equal(getattr(other, key).asnumpy(), getattr(cache, key).asnumpy())
    assert cache.nbytes() == 4 * (2 * 4 * 6 + 4)


def test_load_rejects_another_shape():
    import pytest
    with pytest.raises(ValueError, match="does not match"):
        PseudoLabelCache(3, 2, 3).load(PseudoLabelCache(4, 2, 3).arrays())
