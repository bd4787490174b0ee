"""What the benchmarks share: their error, the --json flag, a Trainer as train.py builds it, the
machine they ran on, and printing and saving a result."""
import json
import os
import platform
import sys
import tempfile

from tqdm import tqdm

from common.threads import cpu_model


class BenchError(ValueError):
    """Bad settings (one-line message)."""


def add_json_arg(parser):
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")


def check_json_folder(path):
    """BenchError unless ``--json``'s folder exists (checked before minutes of measuring)."""
    if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise BenchError("the folder of --json %s does not exist" % path)


def new_trainer(data, run_dir, flags):
    """A started ``Trainer`` as train.py builds it from ``flags``, from scratch (``--pretrained 0``);
    semi_start 1: epoch 0 fills the cache, epoch 1 is semi-supervised."""
    import train
    from training.trainer import Trainer
    opts = train.parse_args(["--pretrained", "0", "--semi-start", "1", "--no-progress", "--data", data,
                             "--out", run_dir] + list(flags))
    trainer = Trainer(opts)
    trainer.start()
    return trainer


def machine():
    return {"cpu": cpu_model() or platform.processor(), "cpu_count": os.cpu_count(),
            "python": platform.python_version()}


def finish(result, report, json_path=None):
    """Print ``result`` with ``report`` and, if asked, write it to ``json_path``; exit status 0."""
    report(result)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1, sort_keys=True)
    return 0


def bench_main(argv, build_parser, check_args, measure, report, errors, name, unit):
    """A benchmark's command line: parse, check (one-line ``error:`` and exit status 2 on
    ``errors``), ``measure(args, temporary_dir, progress_bar)``, then ``finish``."""
    args = build_parser().parse_args(argv)
    try:
        check_args(args)
    except errors as err:
        print("error: %s" % err, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench_%s_" % name) as root, \
            tqdm(total=None, unit=unit, disable=args.no_progress, file=sys.stderr, leave=False) as bar:
        result = measure(args, root, bar)
    return finish(result, report, args.json)
