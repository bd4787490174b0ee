"""training.pretext: rotation pretraining, a depth-free stand-in for ImageNet weights."""
import json

import mxnet as mx
import numpy as np
import pytest

from data import prepare, synthetic
from data.dataset import normalize_image
from symbols import get_depth_net
from symbols.backbone import depth_net_layers, resnet_layers
from training import pretext

TINY = ["--epochs", "1", "--batch-size", "8", "--seed", "3", "--no-progress"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """8 synthetic scenes at 128x96 (6 train, 2 test), prepared at 64x48 with one row per scene."""
    root = tmp_path_factory.mktemp("pretext")
    assert synthetic.main(["--out", str(root / "raw"), "--n", "8", "--size", "128x96"]) == 0
    assert prepare.main(["--mat", str(root / "raw" / "nyu_depth_v2_labeled.mat"),
                         "--splits", str(root / "raw" / "splits.mat"), "--out", str(root / "prep"),
                         "--size", "64x48", "--copies", "1"]) == 0
    return str(root / "prep")


@pytest.fixture(scope="module")
def trained(prepared, tmp_path_factory):
    """A rotation net trained one epoch by ``pretrain`` and written by ``write_outputs``, as main() does."""
    from data.dataset import read_prepared
    data = read_prepared(prepared)
    net, summary = pretext.pretrain(pretext.read_images(data.train_path), pretext.read_images(data.test_path),
                                    epochs=1, batch_size=8, seed=3, progress=False, log=lambda line: None)
    path = str(tmp_path_factory.mktemp("pretext_out") / "backbone.params")
    pretext.write_outputs(net, {"task": "rotation"}, path)
    return net, summary, path


def test_rotation_labels_by_hand():
    a = np.array([[1, 2, 3],
                  [4, 5, 6]])
    turned = {0: [[1, 2, 3], [4, 5, 6]],         # counter-clockwise quarter turns, written out
              1: [[3, 6], [2, 5], [1, 4]],
              2: [[6, 5, 4], [3, 2, 1]],
              3: [[4, 1], [5, 2], [6, 3]]}
    image = np.stack([a * 10, a * 10 + 1, a * 10 + 2], -1).astype(np.uint8)  # (2, 3, 3): channels follow
    for k, expected in turned.items():
        expected = np.array(expected)
        np.testing.assert_array_equal(pretext.rotate(a, k), expected)
        np.testing.assert_array_equal(np.rot90(a, k), expected)  # numpy's convention, the same turn
        x, y = pretext.rotation_batch(image[None], np.array([[0, k]]))
        assert y.tolist() == [k] and y.dtype == np.float32
        by_hand = np.stack([expected * 10, expected * 10 + 1, expected * 10 + 2], -1).astype(np.uint8)
        np.testing.assert_array_equal(x[0], normalize_image(by_hand))


def test_centre_square():
    images = np.arange(2 * 48 * 64 * 3).reshape(2, 48, 64, 3)
    np.testing.assert_array_equal(pretext.centre_square(images), images[:, :, 8:56])
    np.testing.assert_array_equal(pretext.centre_square(images.transpose(0, 2, 1, 3)),
                                  images.transpose(0, 2, 1, 3)[:, 8:56])


def test_an_epoch_shows_every_image_in_all_four_rotations():
    images = np.random.RandomState(0).randint(0, 256, (5, 4, 4, 3)).astype(np.uint8)
    candidates = {(i, k): normalize_image(np.ascontiguousarray(np.rot90(images[i], k)))
                  for i in range(5) for k in range(4)}
    pairs = pretext.epoch_pairs(5, seed=1, epoch=0)
    seen = []
    chunks = pretext.batches(pairs, 3)
    assert [len(c) for c in chunks] == [3] * 6 + [2]  # the last, smaller batch is kept
    for chunk in chunks:
        x, y = pretext.rotation_batch(images, chunk)
        for example, label in zip(x, y):
            match = [key for key, c in candidates.items() if np.array_equal(c, example)]
            assert len(match) == 1 and match[0][1] == label
            seen.append(match[0])
    assert sorted(seen) == sorted(candidates)  # each (image, rotation) once
    np.testing.assert_array_equal(pairs, pretext.epoch_pairs(5, seed=1, epoch=0))
    assert not np.array_equal(pairs, pretext.epoch_pairs(5, seed=1, epoch=1))
    assert not np.array_equal(pairs, pretext.epoch_pairs(5, seed=2, epoch=0))


def test_file_loads_as_backbone_params_with_the_pretext_weights(trained):
    net, summary, path = trained
    mx.random.seed(7)
    depth_net = get_depth_net(backbone_params=path)  # what train.py --backbone-params does
    assert depth_net.backbone_loaded and depth_net.freeze_bn
    compared = 0
    for mine, theirs in zip(depth_net_layers(depth_net), resnet_layers(net)):
        mine, theirs = mine._collect_params_with_prefix(), theirs._collect_params_with_prefix()
        assert mine.keys() == theirs.keys() and mine
        for key in mine:
            np.testing.assert_array_equal(mine[key].data().asnumpy(), theirs[key].data().asnumpy(), err_msg=key)
            compared += 1
    assert compared == 265  # every backbone array: 53 convs (no bias) + 53 BatchNorms x 4 arrays
    assert 0 <= summary["accuracy_train"] <= 1 and 0 <= summary["accuracy_heldout"] <= 1


def test_batchnorm_running_statistics_are_carried_over(trained):
    net, _, path = trained
    depth_net = get_depth_net(backbone_params=path)
    for trained_bn, loaded_bn in [(net.bn1, depth_net.stem[1]), (net.layer4[2].bn3, depth_net.layer4[2].bn3)]:
        mean, var = trained_bn.running_mean.data().asnumpy(), trained_bn.running_var.data().asnumpy()
        assert np.abs(mean).max() > 0 and np.abs(var - 1).max() > 0  # training moved them from 0 and 1
        np.testing.assert_array_equal(loaded_bn.running_mean.data().asnumpy(), mean)
        np.testing.assert_array_equal(loaded_bn.running_var.data().asnumpy(), var)


def test_cli_json_and_same_seed_same_bytes(prepared, tmp_path, capsys):
    outs = [tmp_path / "a" / "backbone.params", tmp_path / "b" / "backbone.params"]
    for out in outs:
        assert pretext.main(["--data", prepared, "--out", str(out)] + TINY) == 0
    printed = capsys.readouterr().out
    assert "epoch 0 of 0..0  loss" in printed and "train accuracy" in printed
    assert outs[0].read_bytes() == outs[1].read_bytes()
    record = json.loads((tmp_path / "a" / "backbone.json").read_text())
    assert record["task"] == "rotation" and record["classes"] == 4
    assert (record["epochs"], record["lr"], record["batch_size"], record["seed"]) == (1, pretext.LR, 8, 3)
    assert (record["n_train_images"], record["n_heldout_images"]) == (6, 2)
    for key in ("accuracy_train", "accuracy_heldout"):
        assert 0 <= record[key] <= 1
    assert record["seconds"] > 0 and record["what_it_learned"].strip()
    assert record["what_it_did_not"] == "no depth, normals, disparity or layout labels"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["backbone.json", "backbone.params"]


def test_help_shows_the_docstring(capsys):
    with pytest.raises(SystemExit) as exit_:
        pretext.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "python -m training.pretext" in out and "no depth, normals, disparity or layout" in out


def one_error_line(capsys):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_missing_or_corrupt_data_and_unwritable_out_are_one_line(prepared, tmp_path, capsys):
    out = tmp_path / "out" / "backbone.params"
    assert pretext.main(["--data", str(tmp_path / "nope"), "--out", str(out)] + TINY) == 2
    assert "nope does not exist" in one_error_line(capsys)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "train.h5").write_bytes(b"not hdf5")
    (corrupt / "test.h5").write_bytes(b"not hdf5")
    assert pretext.main(["--data", str(corrupt), "--out", str(out)] + TINY) == 2
    assert "not an HDF5 file" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()  # nothing written
    (tmp_path / "a_file").write_text("")
    assert pretext.main(["--data", prepared, "--out", str(tmp_path / "a_file" / "b.params")] + TINY) == 2
    assert "cannot write there" in one_error_line(capsys)
    assert pretext.main(["--data", prepared, "--out", str(tmp_path / "backbone.bin")] + TINY) == 2
    assert "FILE.params" in one_error_line(capsys)
    with pytest.raises(SystemExit) as exit_:
        pretext.main(["--data", prepared, "--out", str(out), "--lr", "0"])
    assert exit_.value.code == 2 and "--lr" in one_error_line(capsys)
