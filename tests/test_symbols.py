"""Both networks: shapes, parameter counts, hybridization, export and weight loading."""
import hashlib
import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from symbols import (ConfidenceNet, DepthNet, WeightsError, confidence_input, get_confidence_net,
                     get_depth_net)
from symbols import confidence_net as conf_mod
from symbols import depth_net as depth_mod


@pytest.fixture(scope="module")
def depth_net():
    mx.random.seed(0)
    return get_depth_net(pretrained=False)


def test_depth_net_paper_size_gives_quarter_resolution(depth_net):
    x = mx.nd.random.uniform(shape=(1, 3, 240, 320))
    out = depth_net(x)
    assert out.shape == (1, 1, 60, 80)
    assert out.min().asscalar() > 0  # softplus + MIN_DEPTH


def test_depth_net_size_multiple_of_16_not_32(depth_net):
    # 208 = 13 * 16: C5 is 7 high, upsampled to 14 and cropped to C4's 13.
    out = depth_net(mx.nd.random.uniform(shape=(2, 3, 208, 144)))
    assert out.shape == (2, 1, 52, 36)


def test_odd_size_is_rejected_with_clear_error(depth_net):
    with pytest.raises(ValueError, match="not a multiple of 16"):
        depth_net(mx.nd.zeros((1, 3, 242, 320)))
    with pytest.raises(ValueError, match="not a multiple of 16"):
        get_confidence_net()(mx.nd.zeros((1, 3, 60, 80)), mx.nd.ones((1, 1, 15, 20)))  # 60 = 16 x 3.75


def test_depth_net_topdown_has_256_channels(depth_net):
    for block in list(depth_net.lateral) + list(depth_net.smooth):
        assert block.weight.shape[0] == 256
    assert depth_net.head.weight.shape == (1, 256, 3, 3)
    assert [b.weight.shape[1] for b in depth_net.lateral] == [256, 512, 1024, 2048]


def test_confidence_net_shape_and_range():
    net = get_confidence_net()
    image = mx.nd.random.uniform(shape=(2, 3, 240, 320))
    depth = mx.nd.random.uniform(1, 5, shape=(2, 1, 60, 80))
    assert confidence_input(mx.nd, image, depth).shape == (2, 4, 60, 80)
    out = net(image, depth)  # the net builds its 4-channel input itself
    assert out.shape == (2, 1, 60, 80)
    assert 0 < out.min().asscalar() and out.max().asscalar() < 1
    with pytest.raises(ValueError, match="depth 30x40 does not match image 240x320"):
        net(image, depth[:, :, :30, :40])


def test_confidence_net_applies_its_input_transform_itself():
    mx.random.seed(4)
    net = get_confidence_net()
    net.last.weight.set_data(mx.nd.random.normal(scale=0.1, shape=net.last.weight.shape))  # not all 0.5
    image = mx.nd.random.normal(shape=(1, 3, 32, 48))
    depth = mx.nd.random.uniform(0.5, 6, shape=(1, 1, 8, 12))
    small = image.reshape((1, 3, 8, 4, 12, 4)).mean(axis=(3, 5))  # 4x4 block means, by hand
    by_hand = mx.nd.sigmoid(net.last(net.body(mx.nd.concat(small, mx.nd.log(depth), dim=1))))
    np.testing.assert_allclose(net(image, depth).asnumpy(), by_hand.asnumpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(net(image, depth * 2).asnumpy(), by_hand.asnumpy())


def test_confidence_input_averages_4x4_blocks_and_takes_log_depth():
    image = mx.nd.arange(16).reshape((1, 1, 4, 4)).broadcast_to((1, 3, 4, 4))
    x = confidence_input(mx.nd, image, mx.nd.full((1, 1, 1, 1), 2.0))
    assert x.shape == (1, 4, 1, 1)
    np.testing.assert_allclose(x.asnumpy().ravel(), [7.5, 7.5, 7.5, np.log(2.0)], rtol=1e-6)


def test_initial_outputs_typical_depth_and_half_confidence():
    mx.random.seed(0)
    net = get_depth_net()
    net.head.weight.set_data(mx.nd.zeros_like(net.head.weight.data()))
    depth = net(mx.nd.random.uniform(shape=(1, 3, 64, 64)))
    np.testing.assert_allclose(depth.asnumpy(), depth_mod.INIT_DEPTH, rtol=1e-5)
    conf = get_confidence_net()(mx.nd.random.uniform(shape=(1, 3, 64, 64)), depth)
    np.testing.assert_allclose(conf.asnumpy(), 0.5)


def test_confidence_net_parameter_count_by_hand():
    # weights k*k*in*out + bias out, layer by layer of §4.1.2
    by_hand = (3 * 3 * 4 * 128 + 128          # conv 128 k3 s1
               + 4 * 4 * 128 * 256 + 256      # conv 256 k4 s2
               + 4 * 4 * 256 * 512 + 512      # conv 512 k4 s2
               + 4 * 4 * 512 * 512 + 512      # deconv 512 k4 s2
               + 4 * 4 * 512 * 256 + 256      # deconv 256 k4 s2
               + 3 * 3 * 256 * 1 + 1)         # conv 1 + sigmoid
    net = get_confidence_net()
    assert by_hand == 8921473
    assert sum(p.data().size for p in net.collect_params().values()) == by_hand
    kinds = [type(b).__name__ for b in net.body]
    assert kinds == ["Conv2D", "LeakyReLU", "Conv2D", "LeakyReLU", "Conv2D", "LeakyReLU",
                     "Conv2DTranspose", "LeakyReLU", "Conv2DTranspose", "LeakyReLU"]


@pytest.mark.parametrize("make,shapes,names", [
    (lambda: get_confidence_net(), [(2, 3, 64, 80), (2, 1, 16, 20)], ["data0", "data1"]),
    (lambda: get_depth_net(), [(1, 3, 64, 96)], ["data"]),
])
def test_hybridized_equals_imperative_and_export_roundtrip(tmp_path, make, shapes, names):
    mx.random.seed(1)
    net = make()
    xs = [mx.nd.random.uniform(0.5, 2.0, shape=shape) for shape in shapes]
    imperative = net(*xs).asnumpy()
    net.hybridize(static_alloc=True)
    hybrid = net(*xs).asnumpy()
    np.testing.assert_allclose(hybrid, imperative, rtol=1e-5, atol=1e-6)
    prefix = str(tmp_path / "net")
    net.export(prefix)
    loaded = gluon.SymbolBlock.imports(prefix + "-symbol.json", names, prefix + "-0000.params")
    np.testing.assert_allclose(loaded(*xs).asnumpy(), imperative, rtol=1e-5, atol=1e-6)


def _random_backbone_file(path):
    mx.random.seed(3)
    backbone = depth_mod.load_backbone()
    backbone.initialize(mx.init.Normal(0.5))
    backbone(mx.nd.zeros((1, 3, 32, 32)))
    backbone.save_parameters(str(path))
    return backbone


def _assert_backbone_equal(net, backbone):
    got = dict(net.layer4.collect_params().items())
    want = dict(backbone.layer4.collect_params().items())
    assert len(got) == len(want) > 0
    for (_, a), (_, b) in zip(sorted(got.items()), sorted(want.items())):
        np.testing.assert_array_equal(a.data().asnumpy(), b.data().asnumpy())
    np.testing.assert_array_equal(net.stem[0].weight.data().asnumpy(), backbone.conv1.weight.data().asnumpy())


def test_backbone_from_local_params_file(tmp_path):
    backbone = _random_backbone_file(tmp_path / "r50.params")
    net = get_depth_net(backbone_params=str(tmp_path / "r50.params"))
    _assert_backbone_equal(net, backbone)
    # the new layers were initialised, the loaded ones left alone
    assert net(mx.nd.zeros((1, 3, 64, 64))).shape == (1, 1, 16, 16)


def test_backbone_from_model_store(tmp_path, monkeypatch):
    """pretrained=True goes through gluoncv's model store in $MXNET_HOME/models."""
    from gluoncv.model_zoo import model_store
    models = tmp_path / "models"
    models.mkdir()
    scratch = tmp_path / "scratch.params"
    backbone = _random_backbone_file(scratch)
    sha1 = hashlib.sha1(scratch.read_bytes()).hexdigest()
    # register our file's checksum as if it were the published weights
    monkeypatch.setitem(model_store._model_sha1, depth_mod.BACKBONE, sha1)
    monkeypatch.setenv("MXNET_HOME", str(tmp_path))
    os.rename(scratch, depth_mod.model_store_path())
    assert os.path.dirname(depth_mod.model_store_path()) == str(models)
    net = get_depth_net(pretrained=True)
    _assert_backbone_equal(net, backbone)


def test_missing_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("MXNET_HOME", str(tmp_path))
    with pytest.raises(WeightsError) as err:
        DepthNet(pretrained=True)
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "models" / "resnet50_v1b-") in message
    with pytest.raises(WeightsError, match="not found"):
        DepthNet(backbone_params=str(tmp_path / "nope.params"))


def test_corrupt_weights_file_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.params"
    bad.write_bytes(b"not a params file")
    with pytest.raises(WeightsError, match="cannot load"):
        DepthNet(backbone_params=str(bad))


def test_layer_list_matches_paper():
    assert [(k, c, ks, s) for k, c, ks, s, _ in conf_mod.LAYERS] == [
        ("conv", 128, 3, 1), ("conv", 256, 4, 2), ("conv", 512, 4, 2),
        ("deconv", 512, 4, 2), ("deconv", 256, 4, 2)]
    assert isinstance(ConfidenceNet(), gluon.HybridBlock)


# ---- SubPixelDeconv: the confidence net's deconvs as conv + pixel shuffle (INT8 inference) ------
def numpy_transposed_conv(x, weight, bias):
    """Scatter form of a stride-2, padding-1 transposed convolution: input pixel (i, j) adds
    x[i, j] * K to the output window whose corner is (2i - 1, 2j - 1); the padding crops one row
    and column on each side.  x (C_in, H, W), weight (C_in, C_out, 4, 4)."""
    c_in, h, w = x.shape
    out = np.zeros((weight.shape[1], 2 * h + 2, 2 * w + 2))
    for i in range(h):
        for j in range(w):
            out[:, 2 * i:2 * i + 4, 2 * j:2 * j + 4] += np.einsum("c,cokl->okl", x[:, i, j], weight)
    return out[:, 1:-1, 1:-1] + bias[:, None, None]


@pytest.mark.parametrize("c_in,c_out,h,w", [(3, 2, 3, 5), (4, 5, 4, 4), (2, 3, 1, 2)])
def test_subpixel_deconv_is_the_transposed_convolution(c_in, c_out, h, w):
    from symbols.subpixel_deconv import SubPixelDeconv
    rng = np.random.RandomState(c_in + h)
    deconv = gluon.nn.Conv2DTranspose(c_out, 4, strides=2, padding=1, in_channels=c_in)
    deconv.initialize()
    deconv.weight.set_data(mx.nd.array(rng.normal(size=(c_in, c_out, 4, 4))))
    deconv.bias.set_data(mx.nd.array(rng.normal(size=c_out)))
    block = SubPixelDeconv(c_out, c_in)
    block.initialize()
    block.load_transposed(deconv)
    x = rng.normal(size=(2, c_in, h, w)).astype(np.float32)
    want = np.stack([numpy_transposed_conv(xi, deconv.weight.data().asnumpy(), deconv.bias.data().asnumpy())
                     for xi in x])
    np.testing.assert_allclose(deconv(mx.nd.array(x)).asnumpy(), want, atol=1e-4)  # the reference is right
    got = block(mx.nd.array(x)).asnumpy()
    assert got.shape == (2, c_out, 2 * h, 2 * w)
    np.testing.assert_allclose(got, want, atol=1e-4)
    block.hybridize()
    np.testing.assert_allclose(block(mx.nd.array(x)).asnumpy(), want, atol=1e-4)


def test_subpixel_deconv_refuses_other_transposed_convolutions():
    from symbols.subpixel_deconv import SubPixelDeconv
    block = SubPixelDeconv(2, 3)
    block.initialize()
    for deconv, message in ((gluon.nn.Conv2DTranspose(2, 3, strides=2, padding=1, in_channels=3), "got kernel"),
                            (gluon.nn.Conv2DTranspose(4, 4, strides=2, padding=1, in_channels=3),
                             "4 output channels, this block has 2")):
        deconv.initialize()
        with pytest.raises(ValueError, match=message):
            block.load_transposed(deconv)


def test_subpixel_copy_of_the_confidence_net_computes_the_same_and_has_no_deconvolution():
    from symbols import subpixel_copy
    mx.random.seed(1)
    net = get_confidence_net()
    net.last.weight.set_data(mx.nd.random.normal(0, 1, shape=net.last.weight.shape))
    image = mx.nd.random.normal(shape=(2, 3, 64, 48))
    depth = mx.nd.random.uniform(0.5, 8, shape=(2, 1, 16, 12))
    want = net(image, depth).asnumpy()
    copy = subpixel_copy(net)
    copy.hybridize()
    np.testing.assert_allclose(copy(image, depth).asnumpy(), want, atol=1e-5)
    assert np.std(want) > 0.01  # not a constant map that any copy would match
    ops = [n["op"] for n in __import__("json").loads(copy._cached_graph[1].tojson())["nodes"]]
    assert "Deconvolution" not in ops and ops.count("Convolution") == 6
    net.body[0].weight.set_data(mx.nd.zeros(net.body[0].weight.shape))  # a copy, not shared weights
    np.testing.assert_allclose(copy(image, depth).asnumpy(), want, atol=1e-5)


# ---- every layer constant, against the paper's list typed out here -----------------------------
# §4.1.2: "The first three convolutional layers have {128, 256, 512} channels with kernel size
# {3, 4, 4} and stride size {1, 2, 2} ... two deconvolutional layers have {512, 256} channels with
# kernel size {4, 4} and stride size {2, 2} ... All these layers are followed by Leaky-ReLU. The last
# convolutional layer has one channel and is activated by sigmoid."  §3: the input is 1/4 H x 1/4 W x 4.
# Not in the paper, stated in symbols/confidence_net.py's docstring: padding 1 everywhere, the last
# kernel 3x3 (padding 1), LeakyReLU slope 0.2.
# (kind, in, out, kernel, stride, padding)
PAPER_CONF_LAYERS = [("conv", 4, 128, 3, 1, 1),
                     ("conv", 128, 256, 4, 2, 1),
                     ("conv", 256, 512, 4, 2, 1),
                     ("deconv", 512, 512, 4, 2, 1),
                     ("deconv", 512, 256, 4, 2, 1)]
PAPER_CONF_LAST = ("conv", 256, 1, 3, 1, 1)   # + sigmoid
CONF_LEAKY_SLOPE = 0.2


def _conf_layers(net):
    """(block, activation after it) of the body, then (last conv, None)."""
    body = [net.body[i] for i in range(len(net.body))]
    return list(zip(body[0::2], body[1::2])) + [(net.last, None)]


def test_confidence_net_every_layer_constant_matches_the_paper_list():
    # Weight shapes: Conv2D (out, in, kh, kw), Conv2DTranspose (in, out, kh, kw); kwargs: stride, padding.
    net = get_confidence_net()
    layers = _conf_layers(net)
    assert len(layers) == len(PAPER_CONF_LAYERS) + 1 and len(net.body) == 2 * len(PAPER_CONF_LAYERS)
    for (block, act), (kind, c_in, c_out, k, s, p) in zip(layers, PAPER_CONF_LAYERS + [PAPER_CONF_LAST]):
        expected_type = {"conv": gluon.nn.Conv2D, "deconv": gluon.nn.Conv2DTranspose}[kind]
        assert type(block) is expected_type, (block, kind)
        want_weight = (c_out, c_in, k, k) if kind == "conv" else (c_in, c_out, k, k)
        assert block.weight.shape == want_weight, block.name
        assert block.bias.shape == (c_out,), block.name
        kw = block._kwargs
        assert (kw["kernel"], kw["stride"], kw["pad"], kw["dilate"], kw["num_group"]) == \
            ((k, k), (s, s), (p, p), (1, 1), 1), block.name
        if kind == "deconv":
            assert kw["adj"] == (0, 0)
        if act is not None:  # "All these layers are followed by Leaky-ReLU"
            assert type(act) is gluon.nn.LeakyReLU and act._alpha == CONF_LEAKY_SLOPE
            np.testing.assert_allclose(act(mx.nd.array([-1.0, 2.0])).asnumpy(), [-CONF_LEAKY_SLOPE, 2.0])


def test_confidence_net_stage_shapes_on_a_64x48_image():
    # 64x48 image -> 16x12 at 1/4 (§3), then s1, s2, s2 (down) and s2, s2 (up) of §4.1.2.
    net = get_confidence_net()
    x = confidence_input(mx.nd, mx.nd.zeros((1, 3, 64, 48)), mx.nd.ones((1, 1, 16, 12)))
    assert x.shape == (1, 4, 16, 12)
    shapes = []
    for block in net.body:
        x = block(x)
        shapes.append(x.shape[1:])
    assert shapes[0::2] == [(128, 16, 12), (256, 8, 6), (512, 4, 3), (512, 8, 6), (256, 16, 12)]
    assert net.last(x).shape == (1, 1, 16, 12)


def test_confidence_net_parameter_count_from_the_restated_list():
    # k*k*in*out weights + out biases per layer of PAPER_CONF_LAYERS (not the module's LAYERS).
    by_hand = sum(k * k * c_in * c_out + c_out for _, c_in, c_out, k, _, _ in PAPER_CONF_LAYERS + [PAPER_CONF_LAST])
    assert by_hand == 8921473
    net = get_confidence_net()
    assert sum(p.data().size for p in net.collect_params().values()) == by_hand


def numpy_conv(x, weight, bias, stride, pad):
    """Cross-correlation as MXNet's Convolution: x (C_in, H, W), weight (C_out, C_in, k, k)."""
    k = weight.shape[2]
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    h = (x.shape[1] + 2 * pad - k) // stride + 1
    w = (x.shape[2] + 2 * pad - k) // stride + 1
    out = np.zeros((weight.shape[0], h, w))
    for u in range(k):
        for v in range(k):
            out += np.einsum("oc,chw->ohw", weight[:, :, u, v],
                             xp[:, u:u + stride * (h - 1) + 1:stride, v:v + stride * (w - 1) + 1:stride])
    return out + bias[:, None, None]


def numpy_confidence_net(net, image, depth):
    """§3 / §4.1.2 restated in numpy with the net's weights: 4x4 block means of the image and
    log depth (the module docstring's input), five layers each + LeakyReLU(0.2), conv 1 + sigmoid."""
    c, h, w = image.shape
    x = np.concatenate([image.reshape(c, h // 4, 4, w // 4, 4).mean(axis=(2, 4)), np.log(depth)])
    for (block, _), (kind, _, _, k, s, p) in zip(_conf_layers(net), PAPER_CONF_LAYERS):
        weight, bias = block.weight.data().asnumpy(), block.bias.data().asnumpy()
        if kind == "conv":
            x = numpy_conv(x, weight, bias, s, p)
        else:
            assert (k, s, p) == (4, 2, 1)  # the form numpy_transposed_conv restates
            x = numpy_transposed_conv(x, weight, bias)
        x = np.where(x > 0, x, CONF_LEAKY_SLOPE * x)
    _, _, _, k, s, p = PAPER_CONF_LAST
    z = numpy_conv(x, net.last.weight.data().asnumpy(), net.last.bias.data().asnumpy(), s, p)
    return 1 / (1 + np.exp(-z))


def test_confidence_net_forward_equals_a_numpy_restatement():
    # The whole forward pass: order, strides, paddings, LeakyReLU slope, sigmoid.
    mx.random.seed(5)
    net = get_confidence_net()
    net.last.weight.set_data(mx.nd.random.normal(scale=5.0, shape=net.last.weight.shape))  # spread, not all 0.5
    rng = np.random.RandomState(5)
    image = rng.normal(size=(1, 3, 32, 48)).astype(np.float32)
    depth = rng.uniform(0.5, 6, size=(1, 1, 8, 12)).astype(np.float32)
    got = net(mx.nd.array(image), mx.nd.array(depth)).asnumpy()
    want = numpy_confidence_net(net, image[0].astype(np.float64), depth[0].astype(np.float64))
    assert got.shape == (1, 1, 8, 12) and np.std(want) > 0.05
    np.testing.assert_allclose(got[0], want, rtol=1e-4, atol=1e-5)


# §4.2.4: ResNet-50 bottom-up, top-down pathway of [16] (FPN) where "all the 3x3 and 1x1
# convolutional layers have 256 channels except that the last 3x3 convolutional layer has 1
# channel"; §3: depth at 1/4 H x 1/4 W.  FPN: laterals 1x1 on C2..C5 (ResNet-50 stage outputs of
# 256, 512, 1024, 2048 channels at strides 4, 8, 16, 32), x2 nearest upsampling, addition, 3x3.
RESNET50_STAGES = {"layer1": (3, 256, 4), "layer2": (4, 512, 8), "layer3": (6, 1024, 16), "layer4": (3, 2048, 32)}
TOPDOWN = 256


def test_depth_net_backbone_is_resnet50(depth_net):
    # Bottleneck counts (3, 4, 6, 3) and 23,508,032 trainable weights: torchvision's ResNet-50
    # (25,557,032) less its 2048 x 1000 + 1000 classifier.
    net = depth_net
    for name, (blocks, channels, _) in RESNET50_STAGES.items():
        stage = getattr(net, name)
        assert len(stage) == blocks, name
        assert stage[len(stage) - 1].conv3.weight.shape[0] == channels, name
    trainable = sum(p.data().size for block in (net.stem, net.layer1, net.layer2, net.layer3, net.layer4)
                    for p in block.collect_params().values() if p.grad_req != "null")
    assert trainable == 25557032 - (2048 * 1000 + 1000) == 23508032


def test_depth_net_topdown_every_layer_constant(depth_net):
    # Weight shapes (out, in, kh, kw) and padding of every top-down conv, and its parameter count by hand.
    net = depth_net
    assert [b.weight.shape for b in net.lateral] == [(TOPDOWN, c, 1, 1) for c in (256, 512, 1024, 2048)]
    assert [b.weight.shape for b in net.smooth] == [(TOPDOWN, TOPDOWN, 3, 3)] * 3
    assert net.head.weight.shape == (1, TOPDOWN, 3, 3)
    for block, pad in [(b, 0) for b in net.lateral] + [(b, 1) for b in net.smooth] + [(net.head, 1)]:
        assert (block._kwargs["stride"], block._kwargs["pad"], block._kwargs["dilate"]) == ((1, 1), (pad, pad), (1, 1))
        assert block.bias is not None
    by_hand = (TOPDOWN * (256 + 512 + 1024 + 2048) + 4 * TOPDOWN      # 1x1 laterals on C2..C5
               + 3 * (9 * TOPDOWN * TOPDOWN + TOPDOWN)                 # 3x3 after each addition
               + 9 * TOPDOWN + 1)                                      # last 3x3, 1 channel
    new = sum(p.data().size for block in (net.lateral, net.smooth, net.head) for p in block.collect_params().values())
    assert new == by_hand == 2756609


def test_depth_net_output_stride_4(depth_net):
    # §3: H x W x 3 in, 1/4 H x 1/4 W x 1 out (64x48 and the paper's 240x320 above).
    net = depth_net
    assert net(mx.nd.zeros((2, 3, 64, 48))).shape == (2, 1, 16, 12)
    assert net(mx.nd.zeros((1, 3, 96, 160))).shape == (1, 1, 24, 40)


def test_depth_net_topdown_relus_are_onednn_activations():
    # F.relu has no oneDNN kernel: it took 0.13 s a call at 320x240 where Activation(relu) takes
    # ~1 ms, about 5 % of a training step (bench/README.md).  The graph must hold none.
    import json
    net = get_depth_net()
    net.hybridize()
    net(mx.nd.zeros((1, 3, 64, 48)))
    ops = [(n["op"], n.get("attrs", {}).get("act_type")) for n in json.loads(net._cached_graph[1].tojson())["nodes"]]
    assert not [op for op, _ in ops if op == "relu"]
    # the backbone's 49 (stem 1 + 16 blocks x 3) and the top-down pathway's 3
    assert ops.count(("Activation", "relu")) == 49 + 3


def test_depth_net_with_f_relu_trains_bit_for_bit_the_same():
    # The switch from F.relu changed the speed only: output and every gradient are identical.
    class WithFRelu(DepthNet):  # DepthNet.hybrid_forward as it was, with F.relu
        def hybrid_forward(self, F, x):
            c2 = self.layer1(self.stem(x))
            c3 = self.layer2(c2)
            c4 = self.layer3(c3)
            top = self.lateral[3](self.layer4(c4))
            for i, lat in enumerate((c4, c3, c2)):
                lateral = self.lateral[2 - i](lat)
                up = F.slice_like(F.UpSampling(top, scale=2, sample_type="nearest"), lateral, axes=(2, 3))
                top = F.relu(self.smooth[i](lateral + up))
            return F.Activation(self.head(top), act_type="softrelu") + depth_mod.MIN_DEPTH

    runs = []
    for cls in (DepthNet, WithFRelu):
        mx.random.seed(3)
        net = cls(freeze_bn=False)
        net.initialize(mx.init.Xavier())
        net.hybridize(static_alloc=True)
        x = mx.nd.array(np.random.RandomState(0).rand(2, 3, 64, 48))
        with autograd.record():
            y = net(x)
        y.backward()
        runs.append([y.asnumpy()] + [p.grad().asnumpy() for p in net.collect_params().values() if p.grad_req != "null"])
    assert len(runs[0]) > 170 and np.std(runs[0][0]) > 1e-3
    assert all(np.array_equal(a, b) for a, b in zip(*runs))


def test_depth_net_forward_equals_the_fpn_restated_in_numpy():
    # Which stages feed which lateral, nearest x2 upsampling cropped to the lateral, addition,
    # 3x3 + ReLU, last 3x3, softplus + 1 mm (module docstring): restated with the net's weights.
    mx.random.seed(6)
    net = get_depth_net()
    x = mx.nd.random.normal(shape=(1, 3, 64, 48))
    stages, feat = [], net.stem(x)
    for name in ("layer1", "layer2", "layer3", "layer4"):          # C2..C5
        feat = getattr(net, name)(feat)
        stages.append(feat[0].asnumpy().astype(np.float64))
    for c, (_, channels, stride) in zip(stages, RESNET50_STAGES.values()):
        assert c.shape == (channels, -(-64 // stride), -(-48 // stride))

    def conv(block, v, k):  # k x k, stride 1, "same" padding
        weight = block.weight.data().asnumpy()
        assert weight.shape[2:] == (k, k)
        return numpy_conv(v, weight, block.bias.data().asnumpy(), 1, k // 2)

    top = conv(net.lateral[3], stages[3], 1)
    for i, c in zip((2, 1, 0), (stages[2], stages[1], stages[0])):   # C4, C3, C2 with their laterals
        lateral = conv(net.lateral[i], c, 1)
        up = top.repeat(2, axis=1).repeat(2, axis=2)[:, :lateral.shape[1], :lateral.shape[2]]
        top = np.maximum(conv(net.smooth[2 - i], lateral + up, 3), 0)
    z = conv(net.head, top, 3)
    want = np.log1p(np.exp(z)) + 1e-3
    got = net(x).asnumpy()[0]
    assert got.shape == (1, 16, 12) and np.std(want) > 1e-3
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
