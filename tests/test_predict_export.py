"""predict.py on images of any size and export.py (MXNet symbol files, optional ONNX) of a tiny run."""
import json
import os
import shutil

import cv2
import mxnet as mx
import numpy as np
import pytest

import predict
import train
from data.augment import resize_image
from data.dataset import normalize_image
from evaluation.metrics import upsample
import export
from rundir.nets import load_nets

TRAIN_SIZE = (64, 48)                      # (width, height) of tiny_data
IMAGE_SIZES = ((100, 70), (90, 90), (37, 53))  # none of them the training size


@pytest.fixture(scope="module")
def run_dir(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict_export") / "run"
    assert train.main(["--pretrained", "0", "--epochs", "1", "--batch-size", "2", "--no-progress",
                       "--data", tiny_data, "--out", str(out)]) == 0
    return str(out)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """Synthetic scenes saved as PNG and JPG at sizes other than the training size."""
    from data.synthetic import render_scene
    folder = tmp_path_factory.mktemp("images")
    for i, (w, h) in enumerate(IMAGE_SIZES):
        rgb, _ = render_scene(np.random.RandomState([7, i]), height=h, width=w)
        cv2.imwrite(str(folder / ("scene%d.%s" % (i, "jpg" if i == 2 else "png"))), rgb[..., ::-1])
    return folder


def direct_maps(depth_net, conf_net, path, size=TRAIN_SIZE):
    """Depth and confidence of one image straight from the networks at ``size``, upsampled to the image size."""
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    x = mx.nd.array(normalize_image(resize_image(rgb, size))[None])
    depth = depth_net(x)
    conf = conf_net(x, depth)
    return upsample(depth.asnumpy()[0, 0], rgb.shape[:2]), upsample(conf.asnumpy()[0, 0], rgb.shape[:2])


def test_predict_writes_depth_and_confidence_at_the_input_resolution(run_dir, image_dir, tmp_path):
    out = tmp_path / "pred"
    assert predict.main(["--run", run_dir, str(image_dir), "--out", str(out), "--batch-size", "2",
                         "--no-progress"]) == 0
    depth_net, conf_net, _, _ = load_nets(run_dir)
    for path in sorted(image_dir.iterdir()):
        stem = path.stem
        for suffix in ("_depth.npy", "_depth.png", "_conf.npy", "_conf.png"):
            assert (out / (stem + suffix)).is_file(), stem + suffix
        height, width = cv2.imread(str(path)).shape[:2]
        depth = np.load(out / (stem + "_depth.npy"))
        conf = np.load(out / (stem + "_conf.npy"))
        assert depth.dtype == conf.dtype == np.float32
        assert depth.shape == conf.shape == (height, width)
        assert cv2.imread(str(out / (stem + "_depth.png"))).shape == (height, width, 3)
        assert cv2.imread(str(out / (stem + "_conf.png"))).shape == (height, width, 3)
        assert np.all(depth > 0) and np.all(np.isfinite(depth))
        assert np.all((conf > 0) & (conf < 1))
        want_depth, want_conf = direct_maps(depth_net, conf_net, path)
        np.testing.assert_allclose(depth, want_depth, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(conf, want_conf, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cmap", [predict.DEPTH_CMAP, predict.CONF_CMAP])
def test_colour_png_shows_matplotlibs_colours_and_records_its_scale(cmap, tmp_path):
    from matplotlib import colormaps
    from PIL import Image
    low, high = 1.5, 4.0
    # the centre of each of the 256 colour bins, then below, above and at the ends of the scale
    x = np.concatenate([(np.arange(256) + 0.5) / 256, [-0.3, 1.7, 0.0, 1.0]])
    values = (low + x * (high - low)).astype(np.float32).reshape(4, 65)
    path = str(tmp_path / "m.png")
    predict.write_png(path, predict.colour_indices(values, low, high), cmap, low, high)
    png = Image.open(path)
    assert png.mode == "P" and png.text == {"vmin": "1.5", "vmax": "4"}
    want = colormaps[cmap](np.clip(x, 0, 1), bytes=True)[:, :3].reshape(4, 65, 3)
    np.testing.assert_array_equal(np.asarray(png.convert("RGB")), want)


def test_predict_takes_files_and_a_network_size(run_dir, image_dir, tmp_path):
    out = tmp_path / "pred"
    one = image_dir / "scene0.png"
    assert predict.main(["--run", run_dir, str(one), "--out", str(out), "--size", "96x64", "--no-progress"]) == 0
    assert sorted(os.listdir(out)) == ["scene0_conf.npy", "scene0_conf.png", "scene0_depth.npy", "scene0_depth.png"]
    depth, conf = np.load(out / "scene0_depth.npy"), np.load(out / "scene0_conf.npy")
    assert depth.shape == conf.shape == (70, 100)
    # the networks ran at 96x64 (24 x 16 maps), not at the training size 64x48
    depth_net, conf_net, _, _ = load_nets(run_dir)
    want_depth, want_conf = direct_maps(depth_net, conf_net, one, size=(96, 64))
    np.testing.assert_allclose(depth, want_depth, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(conf, want_conf, rtol=1e-4, atol=1e-5)
    at_train_size, _ = direct_maps(depth_net, conf_net, one)
    assert np.abs(depth - at_train_size).max() > 1e-3


def no_checkpoint_run(run_dir, tmp_path):
    bare = tmp_path / "untrained"
    bare.mkdir()
    shutil.copy(os.path.join(run_dir, "config.json"), bare / "config.json")
    return str(bare)


@pytest.mark.parametrize("case, message", [
    ("empty_dir", "holds no"),
    ("missing_file", "no such file"),
    ("unreadable", "not a readable image"),
    ("same_name", "would both write"),
    ("no_checkpoint", "no complete checkpoint"),
    ("no_run", "does not exist"),
    ("bad_size", "not a multiple of 16"),
])
def test_predict_errors(case, message, run_dir, image_dir, tmp_path, capsys):
    out = tmp_path / "out"
    images, run, extra = [str(image_dir)], run_dir, []
    if case == "empty_dir":
        images = [str(tmp_path)]
    elif case == "missing_file":
        images = [str(tmp_path / "nope.png")]
    elif case == "unreadable":
        (tmp_path / "broken.png").write_text("not an image")
        images = [str(image_dir / "scene0.png"), str(tmp_path / "broken.png")]
    elif case == "same_name":  # the same file name in two folders: no extension tells them apart
        (tmp_path / "other").mkdir()
        shutil.copy(image_dir / "scene0.png", tmp_path / "other" / "scene0.png")
        images = [str(image_dir / "scene0.png"), str(tmp_path / "other" / "scene0.png")]
    elif case == "no_checkpoint":
        run = no_checkpoint_run(run_dir, tmp_path)
    elif case == "no_run":
        run = str(tmp_path / "no_such_run")
    elif case == "bad_size":
        extra = ["--size", "70x50"]
    assert predict.main(["--run", run, "--out", str(out), "--no-progress"] + extra + images) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "Traceback" not in err
    assert len(err.splitlines()) == 1
    assert not out.exists()


def test_export_loads_back_with_symbolblock_and_gives_the_same_outputs(run_dir, tmp_path):
    out = tmp_path / "exported"
    assert export.main(["--run", run_dir, "--out", str(out)]) == 0
    info = json.loads((out / "export.json").read_text())
    assert info["depth_net"]["inputs"] == [{"name": "data", "shape": [1, 3, 48, 64], "content": "normalised RGB image"}]
    assert [(i["name"], i["shape"]) for i in info["conf_net"]["inputs"]] == [("data0", [1, 3, 48, 64]),
                                                                              ("data1", [1, 1, 12, 16])]
    assert info["depth_net"]["output_shape"] == info["conf_net"]["output_shape"] == [1, 1, 12, 16]
    assert "log(depth)" in info["conf_net"]["content"]  # the transform the net itself applies
    assert info["normalisation"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    depth_net, conf_net, _, _ = load_nets(run_dir)
    depth_sym, conf_sym = (export.import_mxnet(str(out), name) for name in export.NAMES)
    for height, width in ((48, 64), (64, 96)):  # the symbols are not tied to the export size
        x = mx.nd.random.normal(shape=(2, 3, height, width))
        depth = depth_net(x)
        np.testing.assert_allclose(depth_sym(x).asnumpy(), depth.asnumpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(conf_sym(x, depth).asnumpy(), conf_net(x, depth).asnumpy(), rtol=1e-5, atol=1e-6)


def test_export_onnx_matches_mxnet_in_onnxruntime(run_dir, tmp_path):
    pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    out = tmp_path / "exported"
    assert export.main(["--run", run_dir, "--out", str(out), "--onnx"]) == 0
    info = json.loads((out / "export.json").read_text())
    assert info["onnx"]["opset"] == 13
    for name in export.NAMES:
        rng = np.random.RandomState(1)
        xs = {i["name"]: (rng.normal(size=[3] + i["shape"][1:]) if i["shape"][1] == 3 else  # batch size is free
                          rng.uniform(0.5, 8, size=[3] + i["shape"][1:])).astype(np.float32)
              for i in info[name]["inputs"]}
        session = onnxruntime.InferenceSession(str(out / info[name]["onnx"]), providers=["CPUExecutionProvider"])
        got = session.run(None, xs)[0]
        want = export.import_mxnet(str(out), name)(*[mx.nd.array(x) for x in xs.values()]).asnumpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        assert info[name]["onnx_max_abs_difference"] < 1e-4


def test_export_errors_write_nothing(run_dir, tmp_path, capsys):
    out = tmp_path / "exported"
    bare, missing = no_checkpoint_run(run_dir, tmp_path), str(tmp_path / "missing")
    for argv, message in ((["--run", bare], "no complete checkpoint 'last' in %s" % bare),
                          (["--run", missing], "run directory %s does not exist" % missing),
                          (["--run", run_dir, "--size", "60x40"],
                           "input size 60x40 (width x height) is not a multiple of 16")):
        assert export.main(argv + ["--out", str(out)]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (argv, lines)
        assert not out.exists()


def test_a_run_recorded_for_other_networks_is_refused_in_one_line(run_dir, tmp_path, capsys):
    """config.json records what the nets take (symbols.NETS); a mismatch says so before anything runs."""
    from symbols import NETS
    cfg = json.loads(open(os.path.join(run_dir, "config.json")).read())
    assert cfg["nets"] == NETS and "log(depth)" in cfg["nets"]["conf_net"]
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    cfg["nets"]["conf_net"] = "conf_net(concat([avg_pool(image), depth])) -> confidence"
    (other / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "exported"
    assert export.main(["--run", str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "was trained for another conf_net (conf_net(concat([avg_pool(image), " \
        "depth])) -> confidence), this code has conf_net(image" in err
    assert not out.exists()
    assert train.main(["--resume", str(other), "--no-progress"]) == 2
    assert "was trained for another conf_net" in capsys.readouterr().err


def test_the_documented_export_path_equals_predict(run_dir, image_dir, tmp_path):
    """export.json's words, followed with cv2 and the exported symbols only, give predict.py's maps."""
    out = tmp_path / "exported"
    assert export.main(["--run", run_dir, "--out", str(out)]) == 0
    info = json.loads((out / "export.json").read_text())
    assert "cv2.INTER_AREA if W <= W_img and H <= H_img" in info["preprocessing"]
    assert "interpolation=cv2.INTER_LINEAR" in info["postprocessing"]
    depth_net = mx.gluon.SymbolBlock.imports(str(out / "depth_net-symbol.json"), ["data"],
                                             str(out / "depth_net-0000.params"))
    conf_net = mx.gluon.SymbolBlock.imports(str(out / "conf_net-symbol.json"), ["data0", "data1"],
                                            str(out / "conf_net-0000.params"))
    mean, std = np.array(info["normalisation"]["mean"]), np.array(info["normalisation"]["std"])
    width, height = info["input_size"]
    pred = tmp_path / "pred"
    assert predict.main(["--run", run_dir, str(image_dir), "--out", str(pred), "--no-progress"]) == 0
    for path in sorted(image_dir.iterdir()):  # 100x70 and 90x90 shrink, 37x53 grows
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        h_img, w_img = rgb.shape[:2]
        shrink = width <= w_img and height <= h_img
        x = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        x = ((x / 255.0 - mean) / std).astype(np.float32).transpose(2, 0, 1)[None]
        depth = depth_net(mx.nd.array(x))
        conf = conf_net(mx.nd.array(x), depth)
        for name, value in (("depth", depth), ("conf", conf)):
            ours = cv2.resize(value.asnumpy()[0, 0], (w_img, h_img), interpolation=cv2.INTER_LINEAR)
            np.testing.assert_allclose(ours, np.load(pred / ("%s_%s.npy" % (path.stem, name))), rtol=1e-4, atol=2e-5)


def test_one_stem_two_extensions_keep_their_extension_and_the_output_names_the_checkpoint(run_dir, image_dir,
                                                                                         tmp_path, capsys):
    shutil.copy(image_dir / "scene0.png", tmp_path / "scene0.jpg")
    out = tmp_path / "out"
    argv = ["--run", run_dir, str(image_dir / "scene0.png"), str(tmp_path / "scene0.jpg"), str(image_dir / "scene1.png"),
            "--out", str(out), "--no-progress"]
    assert predict.main(argv) == 0
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".npy") == [
        "scene0_jpg_conf.npy", "scene0_jpg_depth.npy", "scene0_png_conf.npy", "scene0_png_depth.npy",
        "scene1_conf.npy", "scene1_depth.npy"]
    assert capsys.readouterr().out.strip() == (
        "3 image(s) predicted with %s at 64x48 -> %s (NAME_depth.npy/.png, NAME_conf.npy/.png)"
        % (os.path.join(run_dir, "checkpoints", "last"), out))
    assert predict.main(argv[:-3] + ["--out", str(tmp_path / "big"), "--size", "128x96", "--no-progress"]) == 0
    assert capsys.readouterr().err.strip() == "note: predicting at 128x96; the run trained at 64x48 (its numbers " \
                                              "hold at that size)"


def test_export_at_a_size_beyond_memory_is_one_line_and_writes_nothing(run_dir, tmp_path, capsys):
    out = tmp_path / "exported"
    assert export.main(["--run", run_dir, "--out", str(out), "--size", "16000x16000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: exporting the networks at 16000x16000 needs about 488 GB of memory"), err
    assert not out.exists()
