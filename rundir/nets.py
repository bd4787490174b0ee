"""The trained networks of a run directory, loaded for inference (evaluate, predict, export)."""
import os

import mxnet as mx

from data.errors import one_line
from symbols import NETS, get_confidence_net, get_depth_net

from .layout import RunError, checkpoint_dir
from .records import read_config


def check_nets(config, run_dir):
    """Refuse, in one line, a run recorded (config.json "nets") for networks other than this code's.

    Runs from before the record was kept have none and are taken as they are: the
    networks and their inputs were the same then.
    """
    recorded = config.get("nets")
    if recorded is None or recorded == NETS:
        return
    name = next(k for k in NETS if recorded.get(k) != NETS[k])
    raise RunError("%s was trained for another %s (%s), this code has %s; use the code of its config.json "
                          "git_commit" % (run_dir, name, recorded.get(name), NETS[name]))


def froze_bn(config):
    """Whether a run's backbone BatchNorm kept its stored statistics: ``--freeze-bn`` if given,
    else frozen exactly when pretrained weights were loaded (symbols/depth_net.py)."""
    if config.get("freeze_bn") is not None:
        return bool(config["freeze_bn"])
    return bool(config.get("pretrained") or config.get("backbone_params"))


def load_nets(run_dir, checkpoint="last", ctx=None):
    """Both networks of a run, ready for inference.

    Returns ``(depth_net, conf_net, config, path)``; ``config`` is the run's config.json.
    """
    ctx = ctx or mx.cpu()
    config = read_config(run_dir, RunError)
    check_nets(config, run_dir)
    path = checkpoint_dir(run_dir, checkpoint)
    depth_net = get_depth_net(pretrained=False, ctx=ctx, freeze_bn=froze_bn(config))
    conf_net = get_confidence_net(ctx=ctx)
    load_parameters(depth_net, os.path.join(path, "depth_net.params"), ctx)
    load_parameters(conf_net, os.path.join(path, "conf_net.params"), ctx)
    return depth_net, conf_net, config, path


def load_parameters(net, path, ctx):
    """``net.load_parameters`` with a one-line error naming the file."""
    try:
        net.load_parameters(path, ctx=ctx)
    except (mx.base.MXNetError, AssertionError, ValueError) as err:
        raise RunError("%s: cannot load (%s)" % (path, one_line(err)))
