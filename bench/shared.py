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


def add_step_args(parser, repeats, repeats_help):
    """--size, --batch, --steps, --labeled-frac, --repeats: the shape of a measured training step."""
    import config
    parser.add_argument("--size", type=config.parse_size, default=(160, 128),
                        help="network input WIDTHxHEIGHT, multiples of 16. default: 160x128")
    parser.add_argument("--batch", type=int, default=4, help="labeled images per step. default: %(default)s")
    parser.add_argument("--steps", type=int, default=2,
                        help="steps per epoch and per timed loop (labeled images = steps x batch). "
                             "default: %(default)s")
    parser.add_argument("--labeled-frac", type=float, default=0.25,
                        help="labeled share of the training images, in (0, 1). default: %(default)s")
    parser.add_argument("--repeats", type=int, default=repeats, help=repeats_help + ". default: %(default)s")


def check_json_folder(path):
    """BenchError unless ``--json``'s folder exists (checked before minutes of measuring)."""
    if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise BenchError("the folder of --json %s does not exist" % path)


def check_common(args, counts, why_unlabeled="the semi-supervised step needs unlabeled images"):
    """BenchError unless every flag of ``counts`` is >= 1, --labeled-frac is in (0, 1), --size is a valid
    input and --json's folder exists (checked before minutes of measuring)."""
    from symbols import check_input_size
    if min(getattr(args, name) for name in counts) < 1:
        raise BenchError("%s must be >= 1" % " and ".join(", ".join("--" + n.replace("_", "-") for n in counts)
                                                           .rsplit(", ", 1)))
    if not 0 < args.labeled_frac < 1:
        raise BenchError("--labeled-frac must be in (0, 1): %s" % why_unlabeled)
    check_input_size(args.size[1], args.size[0])
    check_json_folder(args.json)


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


def quartiles(r, key):
    """``r[key + '_iqr']`` (a step ratio's quartiles, bench/train_step.py) as "[q1, q3]"; "" when absent."""
    q = r.get(key + "_iqr")
    return "[%.3f, %.3f]" % tuple(q) if q else ""
