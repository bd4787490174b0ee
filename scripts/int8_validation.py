"""Float32 against INT8 depth on a run's VALIDATION rows (split.json ``val_rows``; never the test set).

    python scripts/int8_validation.py --run runs/NAME [--data DIR] [--calib-images 32] [--checkpoint last]

Scores the depth net as training's validation does (``evaluation.inference.score_depth``,
protocol ``full``, at the prediction's 1/4 resolution), once in float32 and once quantized
as ``evaluate.py --int8`` quantizes it, and prints both rows and their differences; then
how far the INT8 confidence (on the INT8 depth, as ``--int8`` runs them) is from float32,
and which pixels each keeps at the run's threshold T.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.threads import set_omp_threads  # noqa: E402

set_omp_threads()  # before mxnet loads (common/threads.py)
from common.cli import OneLineParser  # noqa: E402
from common.files import read_json  # noqa: E402
from rundir.records import read_config  # noqa: E402

NAMES = ("rel", "log10", "rms", "d1", "d2", "d3")


def confidences(nets, dataset, batch_size):
    """(n, h, w) confidence of ``nets`` (depth net, conf net) on the images of ``dataset``."""
    import mxnet as mx
    import numpy as np
    out = []
    for start in range(0, len(dataset), batch_size):
        images = mx.nd.array(np.stack([dataset[i][0] for i in range(start, min(start + batch_size, len(dataset)))]))
        out.append(nets[1](images, nets[0](images)).asnumpy()[:, 0])
    return np.concatenate(out)


def confidence_lines(conf32, conf8, t):
    """The printed comparison of two confidence maps at threshold ``t``."""
    diff = abs(conf8 - conf32)
    kept32, kept8 = conf32 >= t, conf8 >= t
    return ["confidence |int8 - f32|: mean %.2e, max %.2e over %d pixels" % (diff.mean(), diff.max(), diff.size),
            "kept at T = %g: float32 %.2f %%, int8 %.2f %%, same decision on %.2f %% of pixels"
            % (t, 100 * kept32.mean(), 100 * kept8.mean(), 100 * (kept32 == kept8).mean())]


def main(argv=None):
    parser = OneLineParser(prog="python scripts/int8_validation.py", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run directory made by train.py")
    parser.add_argument("--checkpoint", default="last", help="default: %(default)s")
    parser.add_argument("--data", default=None, help="prepared data directory. default: the run's config.json 'data'")
    parser.add_argument("--calib-images", type=int, default=None, help="default: evaluate.py's")
    parser.add_argument("--batch-size", type=int, default=8, help="default: %(default)s")
    args = parser.parse_args(argv)
    from data.dataset import LabeledDataset
    from evaluation import EvaluationError
    from evaluation.inference import score_depth
    from evaluation.metrics import PROTOCOLS
    from evaluation.quantize import DEFAULT_CALIB_IMAGES, int8_nets
    from evaluation.runs import load_run
    from rundir.layout import RunError
    try:
        split = read_json(os.path.join(args.run, "split.json"), error=RunError)
        if not split.get("val_rows"):
            raise EvaluationError("%s has no validation rows (train with --val-frac > 0)" % args.run)
        run = load_run(args.run, args.checkpoint, args.data, protocol=PROTOCOLS["full"])
        val = LabeledDataset(os.path.join(run["data"], "train.h5"), split["val_rows"])
        rows = {"float32": score_depth(run["nets"][0], val, PROTOCOLS["full"], args.batch_size)}
        conf32 = confidences(run["nets"], val, args.batch_size)
        nets, record = int8_nets(run, args.run, args.calib_images or DEFAULT_CALIB_IMAGES)
        rows["int8"] = score_depth(nets[0], val, PROTOCOLS["full"], args.batch_size)
        conf8 = confidences(nets, val, args.batch_size)
    except (EvaluationError, RunError) as err:
        print("error: %s" % err, file=sys.stderr)
        return 2
    print("%d validation rows, protocol full; INT8 calibrated on %d labeled training rows"
          % (len(val), record["calib_images"]))
    print("%-8s" % "" + "".join("%9s" % n for n in NAMES))
    for name, metrics in rows.items():
        print("%-8s" % name + "".join("%9.4f" % metrics[n] for n in NAMES))
    print("%-8s" % "int8-f32" + "".join("%+9.4f" % (rows["int8"][n] - rows["float32"][n]) for n in NAMES))
    t = read_config(args.run, RunError).get("t_semi", 0.9)
    print("\n".join(confidence_lines(conf32, conf8, t)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
