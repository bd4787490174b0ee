"""What every command line shares: usage errors as one ``error: ...`` line, the flags of a trained run."""
import argparse

import config


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as a single ``error: ...`` line (exit 2), like every other bad input."""

    def error(self, message):
        self.exit(2, "error: %s (see --help)\n" % message)


def add_inference_args(parser, images, workers, int8_writes=""):
    """--checkpoint, --batch-size, --num-workers, --gpus, --no-progress, --verbose, --int8, --calib-images of a
    command that runs a trained run's networks (evaluate.py, predict.py); ``images`` and ``workers`` say what
    is batched and what the workers do, ``int8_writes`` what --int8 adds to the outputs."""
    parser.add_argument("--checkpoint", default="last",
                        help="last, best or a checkpoint directory. default: %(default)s")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="%s per forward pass (the last batch is padded to it). default: %%(default)s" % images)
    parser.add_argument("--num-workers", type=int, default=0,
                        help="%s (0: in this process, overlapped with the forward pass). default: %%(default)s"
                             % workers)
    parser.add_argument("--gpus", type=config.parse_gpus, default=[], help="comma-separated GPU ids; empty = CPU")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--verbose", action="store_true",
                        help="show MXNet's own log lines (those of the INT8 quantizer)")
    parser.add_argument("--int8", action="store_true",
                        help="run both networks in INT8 (oneDNN, CPU only), calibrated on the run's labeled training "
                             "images" + int8_writes)
    parser.add_argument("--calib-images", type=int, default=None, metavar="N",
                        help="labeled training images for the --int8 calibration. default: %d"
                             % config.INT8_CALIB_IMAGES)
