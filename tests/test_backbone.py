"""symbols.backbone: a trained depth net's bottom-up path, loadable as --backbone-params."""
import mxnet as mx
import numpy as np

from symbols import get_depth_net
from symbols.backbone import backbone_pairs, save_backbone


def test_saved_backbone_loads_like_imagenet_weights(tmp_path):
    mx.random.seed(1)
    trained = get_depth_net(pretrained=False, freeze_bn=False)
    # distinct BatchNorm statistics, as training on batch statistics leaves them
    for name, p in trained.collect_params().items():
        if name.endswith(("running_mean", "running_var")):
            p.set_data(mx.nd.random.uniform(0.5, 1.5, shape=p.shape))
    path = save_backbone(trained, str(tmp_path / "pre" / "backbone.params"))
    mx.random.seed(2)
    loaded = get_depth_net(backbone_params=path)
    assert loaded.freeze_bn and loaded.backbone_loaded  # the ImageNet path: stored statistics, frozen
    parts = ["stem", "layer1", "layer2", "layer3", "layer4"]
    for part in parts:
        mine = getattr(loaded, part)._collect_params_with_prefix()
        theirs = getattr(trained, part)._collect_params_with_prefix()
        assert mine.keys() == theirs.keys() and mine
        for key in mine:
            np.testing.assert_array_equal(mine[key].data().asnumpy(), theirs[key].data().asnumpy(), err_msg=key)
    # the top-down path is not part of the file: freshly initialised
    assert not np.array_equal(loaded.lateral[0].weight.data().asnumpy(), trained.lateral[0].weight.data().asnumpy())
    # same C5 features for the same image (inference uses the stored statistics in both)
    x = mx.nd.random.uniform(-1, 1, shape=(1, 3, 64, 64))
    c5 = [n.layer4(n.layer3(n.layer2(n.layer1(n.stem(x))))).asnumpy() for n in (trained, loaded)]
    np.testing.assert_allclose(c5[0], c5[1], rtol=1e-5, atol=1e-6)


def test_every_backbone_parameter_is_paired_once():
    net = get_depth_net(pretrained=False)
    from gluoncv.model_zoo import resnet50_v1b
    resnet = resnet50_v1b(pretrained=False)
    pairs = backbone_pairs(net, resnet)
    covered = sum(len(r.collect_params().keys()) for r, _ in pairs)
    assert covered == len(resnet.collect_params().keys()) - 2  # all but the classifier's weight and bias
