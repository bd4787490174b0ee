"""python -m experiments.claims pseudo RUN | report OUT [--setup S] [--regime NAME=PATH ...] [--docs D] [--appendix A]
| carry OUT DEST | restore DEST OUT"""
import argparse
import os
import sys

from common.cli import OneLineParser
from common.files import read_json, write_json_atomic
from evaluation import EvaluationError

from . import __doc__ as DOC
from .records import carry, restore
from .report import fmt, write_report
from .sweep import pseudo_sweep


def regime_arg(text):
    """NAME=PATH of --regime, PATH an existing directory or file."""
    name, sep, path = text.partition("=")
    if not (sep and name and path):
        raise argparse.ArgumentTypeError("expected NAME=PATH, got %r" % text)
    if not os.path.exists(path):
        raise argparse.ArgumentTypeError("%s does not exist" % path)
    return name, path


def main(argv=None):
    parser = OneLineParser(prog="python -m experiments.claims", description=DOC,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pseudo", help="RUN/pseudo_sweep.json: pseudo-label rel / kept / calibration per threshold")
    p.add_argument("run")
    p = sub.add_parser("report", help="OUT/claims.md, claims.json, claims_rel.png from OUT/seed*_<arm>")
    p.add_argument("out")
    p.add_argument("--setup", default=None, help="JSON file of facts the runs do not record (data size, time, machine)")
    p.add_argument("--docs", default=None, help="also copy the three outputs into this directory")
    p.add_argument("--appendix", default=None, help="a markdown file appended to claims.md as its last section")
    p.add_argument("--regime", action="append", default=[], type=regime_arg, metavar="NAME=PATH",
                   help="another regime beside OUT's (repeatable): a claims OUT directory or a claims.json written "
                        "earlier; OUT's own regime is named after its stand-in's pretraining task")
    p = sub.add_parser("carry", help="copy OUT's finished runs without their checkpoints into DEST, with "
                                     "fingerprints of the backbone and data (to continue on another machine)")
    p.add_argument("out")
    p.add_argument("dest")
    p = sub.add_parser("restore", help="copy DEST's carried runs into OUT once run.sh has re-created the data "
                                       "and backbone there; refused if they differ from the fingerprints")
    p.add_argument("dest")
    p.add_argument("out")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "pseudo":
            result = pseudo_sweep(args.run)
            path = write_json_atomic(os.path.join(args.run, "pseudo_sweep.json"), result)
            for r in result["rows"]:
                print("T=%.2f  rel %s  kept %.3f" % (r["t"], fmt(r["rel"], 4), r["kept_fraction"]))
            if result["sparsification"]:
                print("sparsification of rel by C: AURG %.4f  AUSE %.4f" % (
                    result["sparsification"]["aurg"], result["sparsification"]["ause"]))
            print("test, protocol full: rel %.4f" % result["test_full"]["metrics"]["rel"])
            print(path)
        elif args.cmd == "carry":
            runs = carry(args.out, args.dest)
            print("carried %d finished run(s) into %s: %s" % (len(runs), args.dest, " ".join(runs)))
        elif args.cmd == "restore":
            runs = restore(args.dest, args.out)
            print("restored %d run(s) into %s: %s" % (len(runs), args.out, " ".join(runs)))
        else:
            setup = read_json(args.setup, error=EvaluationError) if args.setup else None
            print("\n".join(write_report(args.out, setup, args.docs, args.appendix, args.regime)))
    except (EvaluationError, OSError, KeyError, ValueError) as err:
        print("error: %s" % err, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
