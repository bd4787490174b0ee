"""Depth and confidence maps of a trained run for any RGB images.

    python predict.py --run runs/NAME photo.jpg more/*.png --out predictions/
    python predict.py --run runs/NAME images_dir/ --out predictions/ --checkpoint best

For each input image ``NAME.png`` / ``NAME.jpg`` this writes, into ``--out``::

    NAME_depth.npy   float32 (H, W) depth in metres
    NAME_depth.png   the depth colour-mapped (plasma, near = bright; the image's own min..max)
    NAME_conf.npy    float32 (H, W) confidence in (0, 1)
    NAME_conf.png    the confidence colour-mapped (viridis, fixed 0..1)

at the INPUT image's resolution H x W.  Each image is resized (aspect ratio not
kept) to the network size, the run's training ``input_size`` or ``--size``; the
networks predict at 1/4 of that, and both maps are upsampled bilinearly back to
H x W with the pixel convention of ``data.grid`` that the training targets use.  The forward passes are those of ``evaluation.inference.predict``, the
same code that scores the test set.  Bad input prints one ``error: ...`` line and
exits with status 2 before anything is written.
"""
import argparse
import os
import sys

import numpy as np

from threads import set_omp_threads

set_omp_threads()  # before mxnet loads (threads.py)
import config  # noqa: E402

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
DEPTH_CMAP = "plasma_r"  # as in the evaluation figures: near = bright
CONF_CMAP = "viridis"


class PredictError(Exception):
    """A one-line, user-facing problem with the inputs of predict.py."""


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as a single ``error: ...`` line, like every other bad input."""

    def error(self, message):
        self.exit(2, "error: %s (see --help)\n" % message)


def build_parser():
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR",
                        help="image files, or directories whose %s files are all used" % "/".join(IMAGE_EXTENSIONS))
    parser.add_argument("--run", required=True, help="run directory made by train.py")
    parser.add_argument("--out", required=True, help="output directory (created if needed)")
    parser.add_argument("--checkpoint", default="last", help="last, best or a checkpoint directory. default: %(default)s")
    parser.add_argument("--batch-size", type=int, default=4, help="images per forward pass. default: %(default)s")
    parser.add_argument("--gpus", type=config.parse_gpus, default=[], help="comma-separated GPU ids; empty = CPU")
    parser.add_argument("--size", type=config.parse_size, default=None,
                        help="network input WIDTHxHEIGHT (multiples of 16). default: the run's training input_size")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def find_images(inputs):
    """Image paths of the command line: files as given, directories expanded (sorted, not recursive)."""
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(os.path.join(item, f) for f in os.listdir(item)
                           if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(item, f)))
            if not found:
                raise PredictError("%s holds no %s images" % (item, "/".join(IMAGE_EXTENSIONS)))
            paths.extend(found)
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise PredictError("%s: no such file or directory" % item)
    stems = {}
    for path in paths:  # one output name per image, or one would overwrite another
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in stems:
            raise PredictError("%s and %s would both write %s_depth.npy; rename one" % (stems[stem], path, stem))
        stems[stem] = path
    return paths


def read_rgb(path):
    """(H, W, 3) uint8 RGB of an image file (greyscale and alpha are converted)."""
    import cv2
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise PredictError("%s: not a readable image" % path)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def image_sizes(paths):
    """(H, W) of every image; decodes each once so an unreadable file fails before any output."""
    return [read_rgb(p).shape[:2] for p in paths]


class ImageFiles:
    """Gluon-style dataset: ``(normalised (3, h, w) image at ``size``, index)`` per file."""

    def __init__(self, paths, size):
        self.paths, self.size = paths, size

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from data.augment import resize_image
        from data.dataset import normalize_image
        return normalize_image(resize_image(read_rgb(self.paths[i]), self.size)), np.int32(i)


def network_size(args, run_config):
    """(width, height) the networks run at: --size, else the run's training input_size."""
    from symbols import check_input_size
    size = args.size or run_config.get("input_size")
    if not size:
        raise PredictError("%s/config.json has no input_size; pass --size WIDTHxHEIGHT" % args.run)
    width, height = (int(v) for v in size)
    check_input_size(height, width)
    return width, height


def load_networks(run_dir, checkpoint, ctxs):
    """Both networks of the run on every context, hybridized; and the checkpoint path."""
    from mxnet.base import MXNetError
    from training.checkpoint import load_nets
    try:
        depth_net, conf_net, _, path = load_nets(run_dir, checkpoint, ctxs[0])
    except (AssertionError, MXNetError) as err:
        raise PredictError("cannot load the checkpoint of %s: %s" % (run_dir, str(err).splitlines()[0]))
    for net in (depth_net, conf_net):
        net.collect_params().reset_ctx(ctxs)
        net.hybridize()
    return depth_net, conf_net, path


def colour_map(values, cmap, vmin, vmax):
    """(H, W) floats -> (H, W, 3) uint8 BGR (for cv2.imwrite) through a matplotlib colormap."""
    from matplotlib import colormaps
    span = max(float(vmax) - float(vmin), 1e-12)
    rgba = colormaps[cmap](np.clip((values - vmin) / span, 0, 1), bytes=True)
    return np.ascontiguousarray(rgba[..., 2::-1])


def write_atomic(path, write):
    """``write(tmp_path)`` then rename, so an interrupted run never leaves half a file."""
    base, ext = os.path.splitext(path)
    tmp = base + ".tmp" + ext  # keeps the extension: cv2 and np.save choose the format by it
    write(tmp)
    os.replace(tmp, path)


def save_maps(out_dir, stem, depth, conf):
    """The four output files of one image."""
    import cv2
    prefix = os.path.join(out_dir, stem)
    write_atomic(prefix + "_depth.npy", lambda p: np.save(p, depth.astype(np.float32)))
    write_atomic(prefix + "_conf.npy", lambda p: np.save(p, conf.astype(np.float32)))
    write_atomic(prefix + "_depth.png", lambda p: cv2.imwrite(p, colour_map(depth, DEPTH_CMAP, depth.min(), depth.max())))
    write_atomic(prefix + "_conf.png", lambda p: cv2.imwrite(p, colour_map(conf, CONF_CMAP, 0.0, 1.0)))


def run(args):
    """Every check first, then the forward passes and the files; returns the number of images."""
    from evaluation.inference import contexts, predict
    from evaluation.metrics import upsample
    from training.checkpoint import checkpoint_dir, read_json
    if args.batch_size < 1:
        raise PredictError("--batch-size must be >= 1")
    paths = find_images(args.inputs)
    if not os.path.isdir(args.run):
        raise PredictError("run directory %s does not exist" % args.run)
    size = network_size(args, read_json(os.path.join(args.run, "config.json")))
    checkpoint_dir(args.run, args.checkpoint)  # fails before the slow parts if there is none
    sizes = image_sizes(paths)
    ctxs = contexts(args.gpus)
    depth_net, conf_net, _ = load_networks(args.run, args.checkpoint, ctxs)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as err:
        raise PredictError("cannot create --out %s (%s)" % (args.out, err.strerror or err))
    for ids, depth, conf in predict(depth_net, conf_net, ImageFiles(paths, size), args.batch_size, ctxs,
                                    progress=not args.no_progress, desc="predict"):
        for k, i in enumerate(ids):
            stem = os.path.splitext(os.path.basename(paths[i]))[0]
            save_maps(args.out, stem, upsample(depth[k], sizes[i]), upsample(conf[k], sizes[i]))
    return len(paths), size


def main(argv=None):
    """Command-line entry point; returns the exit status (2 on bad input)."""
    from data.errors import DataError
    from training.checkpoint import CheckpointError
    args = build_parser().parse_args(argv)
    try:
        count, size = run(args)
    except (PredictError, CheckpointError, DataError, ValueError, OSError) as err:
        print("error: %s" % str(err).splitlines()[0], file=sys.stderr)
        return 2
    print("%d image(s) predicted at %dx%d -> %s (NAME_depth.npy/.png, NAME_conf.npy/.png)"
          % (count, size[0], size[1], args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
