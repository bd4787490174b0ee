"""The pseudo-label cache: written in epoch e, read in epoch e + 1 only."""
import mxnet as mx
import numpy as np
import pytest

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
    with pytest.raises(ValueError, match="does not match"):
        PseudoLabelCache(3, 2, 3).load(PseudoLabelCache(4, 2, 3).arrays())


def share_mask_by_sorting(conf, usable, share):
    """--keep-share re-implemented with numpy: the ceil(share x n) most confident usable pixels."""
    scores = np.sort(conf[usable].ravel())[::-1]
    if scores.size == 0:
        return np.zeros_like(conf, bool)
    k = int(np.ceil(round(share * scores.size, 6)))
    return (conf >= scores[k - 1]) & usable[:, None, None, None]


@pytest.mark.parametrize("kind", ["memory", "disk"])
@pytest.mark.parametrize("share", [0.3, 0.5, 1.0])
def test_keep_share_keeps_the_most_confident_share_of_the_usable_rows(tmp_path, kind, share):
    from training.disk_cache import DiskPseudoLabelCache
    rng = np.random.RandomState(3)
    cache = (PseudoLabelCache(6, 2, 5) if kind == "memory"
             else DiskPseudoLabelCache(str(tmp_path / "c"), 6, 2, 5))
    conf = rng.uniform(0, 1, (6, 1, 2, 5)).astype(np.float32)
    cache.write(mx.nd.array([0, 1, 2, 3, 4, 5]), mx.nd.ones((6, 1, 2, 5)), mx.nd.array(conf), epoch=2)
    cache.write(mx.nd.array([1, 4]), mx.nd.ones((2, 1, 2, 5)), mx.nd.array(conf[[1, 4]] + 5), epoch=3)  # not usable in 3
    ids = np.array([4, 0, 1, 5, 2])
    _, mask = cache.read(mx.nd.array(ids), epoch=3, threshold=0.9, share=share)
    usable = np.array([False, True, False, True, True])  # slots 4 and 1 were rewritten in epoch 3
    expected = share_mask_by_sorting(conf[ids], usable, share)
    np.testing.assert_array_equal(mask.asnumpy() > 0, expected)
    assert (mask.asnumpy() > 0).sum() == int(np.ceil(round(share * 30, 6)))  # 3 usable rows x 10 pixels, no ties
    _, none = cache.read(mx.nd.array([4, 1]), epoch=3, threshold=0.9, share=share)
    assert none.asnumpy().sum() == 0  # no usable row: nothing kept


def test_keep_share_keeps_ties_at_the_threshold():
    cache = PseudoLabelCache(1, 1, 4)
    cache.write(mx.nd.array([0]), mx.nd.ones((1, 1, 1, 4)), mx.nd.array([[[[0.2, 0.7, 0.7, 0.9]]]]), epoch=0)
    _, mask = cache.read(mx.nd.array([0]), epoch=1, threshold=0.0, share=0.5)  # 2nd most confident: 0.7
    np.testing.assert_array_equal(mask.asnumpy().ravel(), [0, 1, 1, 1])
