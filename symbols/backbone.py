"""A trained depth net's bottom-up path as a ``resnet50_v1b`` weights file
(``python -m training.save_backbone --run RUN --out FILE`` writes it for a run directory).

The file has the layout of gluoncv's ImageNet ``resnet50_v1b`` weights (the classifier
``fc`` is freshly initialised and unused), so ``train.py --backbone-params FILE`` takes
it exactly as it takes ImageNet weights: the backbone is loaded, its BatchNorm keeps
the stored statistics (frozen) and the top-down layers start fresh.  The claims
experiment (experiments/claims/run.sh) uses it as a stand-in for ImageNet weights, which
cannot be downloaded everywhere: a depth net pretrained on other synthetic scenes.
``save_layers`` writes any trained resnet50_v1b's layers the same way (``python -m
training.pretext``: a stand-in pretrained without depth, on rotation prediction).
"""
import os

import mxnet as mx
from gluoncv.model_zoo import resnet50_v1b

from .depth_net import INPUT_MULTIPLE


def resnet_layers(resnet):
    """The bottom-up layers of a gluoncv ``resnet50_v1b``: conv1, bn1, layer1..layer4."""
    return [resnet.conv1, resnet.bn1, resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4]


def depth_net_layers(depth_net):
    """The same layers inside a depth net, in the order of ``resnet_layers``."""
    return [depth_net.stem[0], depth_net.stem[1], depth_net.layer1, depth_net.layer2,
            depth_net.layer3, depth_net.layer4]


def backbone_pairs(depth_net, resnet):
    """(resnet block, depth-net block) for every part of the bottom-up path."""
    return list(zip(resnet_layers(resnet), depth_net_layers(depth_net)))


def save_layers(layers, path):
    """Write trained ``layers`` (weights and BatchNorm statistics) as a ``resnet50_v1b`` weights file.

    ``layers`` are conv1, bn1, layer1..layer4 of any net built from a resnet50_v1b, in
    that order: ``depth_net_layers(net)`` or ``resnet_layers(net)``.  The file's
    classifier ``fc`` is freshly initialised (nobody loads it).  Written to a temporary
    name and renamed: ``path`` is whole or absent.  Returns ``path``.
    """
    resnet = resnet50_v1b(pretrained=False)
    resnet.initialize(mx.init.Xavier())
    resnet(mx.nd.zeros((1, 3, INPUT_MULTIPLE * 2, INPUT_MULTIPLE * 2)))  # finish deferred shapes
    for target, source in zip(resnet_layers(resnet), layers):
        theirs = source._collect_params_with_prefix()
        for name, param in target._collect_params_with_prefix().items():
            param.set_data(theirs[name].data().as_in_context(mx.cpu()))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".tmp"
    resnet.save_parameters(tmp)
    os.replace(tmp, path)
    return path


def save_backbone(depth_net, path):
    """Write the backbone of ``depth_net`` (weights and BatchNorm statistics) to ``path``."""
    return save_layers(depth_net_layers(depth_net), path)
