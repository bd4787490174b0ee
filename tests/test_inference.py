"""Inference at a fixed batch shape (evaluation/inference.py) and bench/inference.py's settings.

Reference values come from the networks run one image at a time, imperatively (no
padding, no hybridization), with BatchNorm statistics set away from their initial 0 / 1
so that a batch-statistics bug would show.
"""
import json

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

import evaluate
import predict as predict_cli
from bench import inference as bench
from evaluation.inference import inference_mode, launched, padded, predict, score_depth
from evaluation.metrics import PROTOCOLS
from symbols import get_confidence_net, get_depth_net

SIZE = 32  # 32x32 input -> 8x8 maps


def random_nets(seed=0):
    """Tiny-input nets (pretrained=False) with random BatchNorm statistics."""
    mx.random.seed(seed)
    depth_net, conf_net = get_depth_net(False, ctx=mx.cpu()), get_confidence_net(ctx=mx.cpu())
    rng = np.random.RandomState(seed)
    for name, p in depth_net.collect_params().items():
        if name.endswith("running_mean"):
            p.set_data(mx.nd.array(rng.normal(0, 0.2, p.shape)))
        elif name.endswith("running_var"):
            p.set_data(mx.nd.array(rng.uniform(0.5, 2.0, p.shape)))
    return depth_net, conf_net


def image_set(n, seed=1):
    rng = np.random.RandomState(seed)
    return gluon.data.SimpleDataset([(rng.normal(size=(3, SIZE, SIZE)).astype(np.float32), np.int32(i))
                                     for i in range(n)])


def one_at_a_time(depth_net, conf_net, dataset):
    """(depth, conf) of every image, each forward on a batch of one, imperative."""
    depths, confs = [], []
    for image, _ in dataset:
        x = mx.nd.array(image[None])
        d = depth_net(x)
        depths.append(d.asnumpy()[0, 0])
        confs.append(conf_net(x, d).asnumpy()[0, 0])
    return np.stack(depths), np.stack(confs)


def run_predict(nets, dataset, batch_size, **kwargs):
    ids, depth, conf = zip(*predict(*nets, dataset, batch_size, progress=False, **kwargs))
    return np.concatenate(ids), np.concatenate(depth), np.concatenate(conf)


def test_padded_repeats_the_last_row_up_to_the_batch():
    images = mx.nd.arange(3).reshape((3, 1)) + 10  # rows 10, 11, 12
    assert padded(images, 5).asnumpy()[:, 0].tolist() == [10, 11, 12, 12, 12]
    assert padded(images, 3) is images  # a full batch is not copied


def test_batch_k_plus_1_is_launched_before_batch_k_is_read_back():
    events = []
    loader = [(mx.nd.zeros((2, 1)),), (mx.nd.zeros((2, 1)),), (mx.nd.zeros((1, 1)),)]

    def launch(images):
        events.append("launch %d" % len(events))
        return images.shape[0]
    for _, n, shape0 in launched(loader, 2, launch):
        events.append("read %d rows of %d" % (n, shape0))
    # the padded last batch launches 2 rows; only its 1 real row is read
    assert events == ["launch 0", "launch 1", "read 2 rows of 2", "launch 3", "read 2 rows of 2",
                      "read 1 rows of 2"]


@pytest.mark.parametrize("flip", [False, True])
def test_a_padded_last_batch_gives_the_numbers_of_one_image_at_a_time(flip):
    nets = random_nets()
    dataset = image_set(5)  # batches of 2: 2, 2, 1 + 1 padded row
    want_depth, want_conf = one_at_a_time(*nets, dataset)
    if flip:  # the mirrored images, mirrored back, averaged: computed here one image at a time too
        mirrored = gluon.data.SimpleDataset([(img[:, :, ::-1].copy(), i) for img, i in dataset])
        m_depth, m_conf = one_at_a_time(*nets, mirrored)
        want_depth, want_conf = (want_depth + m_depth[:, :, ::-1]) / 2, (want_conf + m_conf[:, :, ::-1]) / 2
    shapes = []
    nets[0].register_forward_pre_hook(lambda block, inputs: shapes.append(inputs[0].shape))
    for net in nets:
        inference_mode(net, [mx.cpu()])
    ids, depth, conf = run_predict(nets, dataset, 2, flip=flip)
    assert ids.tolist() == [0, 1, 2, 3, 4]
    assert depth.shape == conf.shape == (5, SIZE // 4, SIZE // 4)
    np.testing.assert_allclose(depth, want_depth, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(conf, want_conf, rtol=1e-4, atol=1e-5)
    assert set(shapes) == {(2, 3, SIZE, SIZE)}  # one graph: the last batch was padded to 2
    assert len(shapes) == (6 if flip else 3)


def test_inference_mode_matches_plain_hybridization_on_many_batches():
    """The fused graph (BatchNorm folded into the weights) against a plain hybridized copy."""
    fused, plain = random_nets(seed=3), random_nets(seed=3)
    for net in fused:
        inference_mode(net, [mx.cpu()])
    for net in plain:
        net.hybridize()
    dataset = image_set(7, seed=4)
    for batch in (1, 3, 7, 10):  # 10 > len(dataset): one batch of 7 padded to 10
        a, b = run_predict(fused, dataset, batch), run_predict(plain, dataset, batch)
        assert a[0].tolist() == list(range(7))
        np.testing.assert_allclose(a[1], b[1], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(a[2], b[2], rtol=1e-4, atol=1e-5)


def test_score_depth_pads_and_scores_only_the_real_rows():
    depth_net, _ = random_nets(seed=5)
    images = image_set(5, seed=6)
    preds = np.stack([depth_net(mx.nd.array(img[None])).asnumpy()[0] for img, _ in images])  # (5, 1, 8, 8)
    # targets: the prediction times 1.1, and times 2.2 for image 4
    targets = preds * 1.1
    targets[4] *= 2
    rows = gluon.data.SimpleDataset([(img, t) for (img, _), t in zip(images, targets)])
    shapes = []
    depth_net.register_forward_pre_hook(lambda block, inputs: shapes.append(inputs[0].shape))
    depth_net.hybridize(static_alloc=True)  # as the Trainer's net
    errors = score_depth(depth_net, rows, PROTOCOLS["full"], batch_size=2)
    # pooled over pixels (protocol 'full'): |p - t| / t is 1/11 for images 0-3, 1 - 1/2.2 for image 4
    want = (4 * (0.1 / 1.1) + (1 - 1 / 2.2)) / 5
    assert errors["rel"] == pytest.approx(want, rel=1e-4)
    assert set(shapes) == {(2, 3, SIZE, SIZE)} and len(shapes) == 3


@pytest.mark.parametrize("main,argv", [
    (evaluate.main, ["--run", "runs/none"]),
    (predict_cli.main, ["--run", "runs/none", "--out", "nowhere", "photo.png"]),
])
def test_num_workers_must_not_be_negative(main, argv, capsys, tmp_path):
    assert main(argv + ["--num-workers", "-1"]) == 2
    assert capsys.readouterr().err == "error: --num-workers must be >= 0\n"


def test_bench_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--help"])
    assert exit_info.value.code == 0
    assert "training forward" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["--size", "50x40"], "error: input size 50x40 (width x height) is not a multiple of 16 in both"),
    (["--labeled-frac", "1"], "error: --labeled-frac must be in (0, 1): the training step needs unlabeled images"),
    (["--batch", "0"], "error: --batch, --train-batch, --images and --repeats must be >= 1"),
    (["--images", "0"], "error: --batch, --train-batch, --images and --repeats must be >= 1"),
    (["--json", "/no/such/dir/x.json"], "error: the folder of --json /no/such/dir/x.json does not exist"),
])
def test_bench_rejects_bad_settings(argv, message, capsys):
    assert bench.main(argv + ["--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


def test_bench_reports_every_figure(tmp_path, capsys):
    out = tmp_path / "inference.json"
    assert bench.main(["--size", "32x32", "--batch", "2", "--images", "3", "--train-batch", "2", "--repeats", "1",
                       "--no-progress", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    s = result["settings"]
    # 2 labeled at 1/4 labeled: 8 training images, 6 unlabeled, all in the one step
    assert (s["train_labeled_per_step"], s["train_unlabeled_per_step"], s["test_images"]) == (2, 6, 3)
    assert s["omp_num_threads"] and s["cpu_count"] >= 1 and s["mxnet"] == mx.__version__
    int8 = mx.runtime.Features().is_enabled("MKLDNN")  # INT8 figures only where oneDNN has the kernels
    int8_kinds = {"evaluate_int8", "predict_int8", "forward_int8"} if int8 else set()
    assert set(result["images_per_s"]) == {"evaluate", "predict", "predict_1_worker", "forward_fused",
                                           "forward_static_shape", "loading_test_set", "loading_photos"} | int8_kinds
    assert all(v > 0 for v in result["images_per_s"].values())
    train = result["training_forward_images_per_s"]
    assert result["evaluate_over_training_forward"] == pytest.approx(result["images_per_s"]["evaluate"] / train)
    assert result["predict_over_training_forward"] == pytest.approx(result["images_per_s"]["predict"] / train)
    for kind in int8_kinds:
        assert result[kind + "_over_training_forward"] == pytest.approx(result["images_per_s"][kind] / train)
    table = capsys.readouterr().out
    assert "evaluate.py path / training forward" in table and "(target >= 2.0)" in table
    if int8:
        # the bench's split: 2 labeled rows, both calibrate
        assert result["int8"] == {"calib_images": 2, "calibration": "naive"}
        assert "INT8: naive calibration on 2 labeled training images" in table
        assert "INT8 evaluate.py path / training forward" in table and "INT8 predict.py path" in table
    else:
        assert result["int8"] is None and "INT8: not measured (this MXNet has no oneDNN)" in table
