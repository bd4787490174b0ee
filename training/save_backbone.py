"""A trained run's backbone as a ``resnet50_v1b`` weights file (symbols/backbone.py), loadable
with ``train.py --backbone-params`` exactly as ImageNet weights are.

    python -m training.save_backbone --run runs/PRETRAIN --out backbone.params [--checkpoint last]
"""
import argparse
import sys

from common.cli import OneLineParser
from data.errors import edge_errors, one_line
from rundir.layout import RunError
from rundir.nets import load_nets
from symbols.backbone import save_backbone


def main(argv=None):
    parser = OneLineParser(prog="python -m training.save_backbone", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run directory made by train.py")
    parser.add_argument("--out", required=True, help="the .params file to write")
    parser.add_argument("--checkpoint", default="last", help="last, best or a checkpoint directory. default: %(default)s")
    args = parser.parse_args(argv)
    try:
        depth_net = load_nets(args.run, args.checkpoint)[0]
        print(save_backbone(depth_net, args.out))
    except (RunError,) + edge_errors() as err:
        print("error: %s" % one_line(err), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
