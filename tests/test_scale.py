"""Scaling out: extra unlabeled images, the pseudo-label cache on disk and in float16."""
import json
import os

import cv2
import h5py
import mxnet as mx
import numpy as np
import pytest

import train
from data.augment import resize_image
from data.dataset import normalize_image
from data.errors import DataError
from data.unlabeled_dir import ExtraUnlabeledDataset
from rundir import layout
from training.cache import PseudoLabelCache
from training.disk_cache import DiskPseudoLabelCache
from training.trainer import Trainer

BASE = ["--pretrained", "0", "--batch-size", "2", "--labeled-frac", "0.5", "--no-progress", "--lr", "1e-2",
        "--epochs", "2", "--semi-start", "1", "--t-semi", "0.5"]
SIZE = (64, 48)


def options(data, out, *extra):
    return train.parse_args(BASE + ["--data", data, "--out", str(out)] + list(extra))


def params_of(net):
    return {k: v.data().asnumpy() for k, v in net._collect_params_with_prefix().items()}


def write_images(folder, sizes, seed=0):
    """PNG files (lossless) of the given (w, h) sizes in nested folders; returns them by sorted path."""
    rng = np.random.RandomState(seed)
    images = {}
    for k, (w, h) in enumerate(sizes):
        rel = os.path.join("sub%d" % (k % 2), "img%02d.png" % k)
        os.makedirs(os.path.join(folder, os.path.dirname(rel)), exist_ok=True)
        images[rel] = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
        cv2.imwrite(os.path.join(folder, rel), images[rel][:, :, ::-1])  # RGB -> BGR file
    return [images[k] for k in sorted(images)]


# ---- extra unlabeled images ---------------------------------------------------------------
def test_folder_of_any_size_images_is_read_lazily_resized_and_sorted(tmp_path):
    images = write_images(tmp_path / "photos", [(100, 80), (30, 20), (64, 48)])
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    data = ExtraUnlabeledDataset(str(tmp_path / "photos"), SIZE)
    assert len(data) == 3 and data.files[0] == os.path.join("sub0", "img00.png")
    for i, raw in enumerate(images):
        image, slot = data[i]
        assert image.shape == (3, 48, 64) and image.dtype == np.float32 and slot == i
        np.testing.assert_array_equal(image, normalize_image(resize_image(raw, SIZE)))


def test_hdf5_images(tmp_path):
    raw = np.random.RandomState(1).randint(0, 256, (2, 30, 40, 3)).astype(np.uint8)
    with h5py.File(tmp_path / "u.h5", "w") as f:
        f["images"] = raw
    data = ExtraUnlabeledDataset(str(tmp_path / "u.h5"), SIZE)
    assert len(data) == 2 and data.record()["count"] == 2
    np.testing.assert_array_equal(data[1][0], normalize_image(resize_image(raw[1], SIZE)))


def test_bad_unlabeled_sources_are_data_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.png").write_bytes(b"not a png")
    with h5py.File(tmp_path / "no_images.h5", "w") as f:
        f["depths"] = np.zeros((1, 4, 4), np.float32)
    with h5py.File(tmp_path / "float.h5", "w") as f:
        f["images"] = np.zeros((1, 4, 4, 3), np.float32)
    (tmp_path / "text.h5").write_text("x")
    for name, message in [("missing", "not found"), ("empty", "no .png/.jpg/.jpeg images"),
                          ("broken", "not a readable image"), ("no_images.h5", "no dataset 'images'"),
                          ("float.h5", "uint8"), ("text.h5", "neither a folder nor an HDF5 file")]:
        with pytest.raises(DataError, match=message):
            ExtraUnlabeledDataset(str(tmp_path / name), SIZE)


def test_extra_images_join_the_cache_and_the_split(tiny_data, tmp_path, capsys):
    write_images(tmp_path / "photos", [(80, 60)] * 3)
    opts = options(tiny_data, tmp_path / "r", "--unlabeled", str(tmp_path / "photos"), "--epochs", "1")
    t = Trainer(opts)
    t.start()
    assert len(t.unlabeled) == len(t.split["unlabeled_rows"]) + 3
    t.train()  # epoch 0 is the fill epoch: every slot, extra ones included, is written
    np.testing.assert_array_equal(t.cache.to_numpy()["written"], 0)
    split = json.load(open(tmp_path / "r" / "split.json"))
    assert split["extra_unlabeled"]["count"] == 3
    assert split["extra_unlabeled"]["path"] == os.path.abspath(str(tmp_path / "photos"))
    # resume checks the extra source: one more image is another run
    write_images(tmp_path / "photos" / "more", [(80, 60)], seed=5)
    # ... and says it is the folder, not the prepared data set
    with pytest.raises(layout.RunError, match=r"the --unlabeled folder \S+photos changed .*3 images then, 4 now"):
        Trainer(opts).resume()
    assert train.main(BASE + ["--data", tiny_data, "--out", str(tmp_path / "bad"),
                              "--unlabeled", str(tmp_path / "nowhere")]) == 2
    assert "error: " in capsys.readouterr().err


# ---- the cache: memory vs disk, float32 vs float16 --------------------------------------------
def test_caches_share_semantics_and_shards(tmp_path):
    caches = [PseudoLabelCache(5, 2, 3), DiskPseudoLabelCache(str(tmp_path / "d"), 5, 2, 3),
              PseudoLabelCache(5, 2, 3, dtype="float16"), DiskPseudoLabelCache(str(tmp_path / "h"), 5, 2, 3, "float16")]
    depth = mx.nd.array(np.random.RandomState(0).uniform(0.5, 9, (2, 1, 2, 3)))
    conf = mx.nd.array(np.linspace(0.8, 1, 12).reshape(2, 1, 2, 3))
    ids = mx.nd.array([1, 0, 3])
    for cache in caches:
        cache.write(mx.nd.array([3, 1], dtype="int32"), depth, conf, epoch=4)
    expected = [c.asnumpy() for c in caches[0].read(ids, 5, 0.9)]
    assert expected[1][1].sum() == 0  # slot 0 never written
    for cache in caches:
        got = [c.asnumpy() for c in cache.read(ids, 5, 0.9)]
        assert got[0].dtype == np.float32
        tolerance = 0 if cache.dtype == "float32" else 5e-3
        np.testing.assert_allclose(got[0], expected[0], rtol=tolerance)
        np.testing.assert_array_equal(got[1], expected[1])
        assert all(m.asnumpy().sum() == 0 for _, m in (cache.read(ids, e, 0.9) for e in (4, 6)))
    assert caches[2].nbytes() == caches[3].nbytes() < caches[0].nbytes() == caches[1].nbytes()
    # either cache restores the other's shard (so --cache-on may change on resume)
    caches[1].save_files(str(tmp_path / "shard"))
    back = PseudoLabelCache(5, 2, 3)
    back.load_files(str(tmp_path / "shard"))
    disk = DiskPseudoLabelCache(str(tmp_path / "d2"), 5, 2, 3)
    disk.load(caches[0].arrays())
    for key, value in caches[0].to_numpy().items():
        np.testing.assert_array_equal(back.to_numpy()[key], value)
        np.testing.assert_array_equal(disk.to_numpy()[key], value)
    with pytest.raises(ValueError, match="does not match"):
        PseudoLabelCache(4, 2, 3).load_files(str(tmp_path / "shard"))


@pytest.fixture(scope="module")
def in_memory(tiny_data, tmp_path_factory):
    """The float32 memory-cache run: parameters and cache after epoch 1 and after epoch 2."""
    t = Trainer(options(tiny_data, tmp_path_factory.mktemp("memory") / "r"))
    t.start()
    t.train(stop_at=1)
    after_fill = params_of(t.depth_net), t.cache.to_numpy()
    t.train()
    return after_fill, (params_of(t.depth_net), t.cache.to_numpy())


def assert_same(trainer, params, cache):
    for key, value in params_of(trainer.depth_net).items():
        np.testing.assert_array_equal(value, params[key], err_msg=key)
    for key, value in trainer.cache.to_numpy().items():
        np.testing.assert_array_equal(value, cache[key], err_msg=key)


def test_disk_cache_trains_and_resumes_exactly_as_memory(in_memory, tiny_data, tmp_path):
    opts = options(tiny_data, tmp_path / "r", "--cache-on", "disk")
    first = Trainer(opts)
    first.start()
    first.train(stop_at=1)
    assert_same(first, *in_memory[0])
    state = json.load(open(tmp_path / "r" / "checkpoints" / "last" / "state.json"))
    assert os.path.isdir(tmp_path / "r" / "checkpoints" / state["cache"]["shards"] / "rank0")
    resumed = Trainer(opts)
    resumed.resume()
    resumed.train()
    assert_same(resumed, *in_memory[1])
    assert os.listdir(tmp_path / "r" / "checkpoints" / "cache-shards") == [os.path.basename(
        json.load(open(tmp_path / "r" / "checkpoints" / "last" / "state.json"))["cache"]["shards"])]


def test_float16_cache_stays_close_to_float32(in_memory, tiny_data, tmp_path):
    t = Trainer(options(tiny_data, tmp_path / "r", "--cache-on", "disk", "--cache-dtype", "float16"))
    t.start()
    t.train(stop_at=1)  # the fill epoch: same network, the cache holds float32's values rounded
    stored, (_, cache) = t.cache.to_numpy(), in_memory[0]
    assert stored["depth"].dtype == np.float16 and t.cache.nbytes() < 0.6 * PseudoLabelCache(
        len(t.unlabeled), 12, 16).nbytes()
    for key in ("depth", "conf"):
        np.testing.assert_array_equal(stored[key], cache[key].astype(np.float16))
    t.train()  # L_semi from float16 pseudo-labels: the epoch's update barely moves
    start, (end, _) = in_memory[0][0], in_memory[1]
    update = sum(((end[k] - start[k]) ** 2).sum() for k in end)
    deviation = sum(((v - end[k]) ** 2).sum() for k, v in params_of(t.depth_net).items())
    print("float16 deviation / float32 update of the semi epoch: %.2e" % np.sqrt(deviation / update))
    assert 0 < deviation < 1e-4 * update
