"""Depth and confidence maps of a trained run for any RGB images.

    python predict.py --run runs/NAME photo.jpg more/*.png --out predictions/
    python predict.py --run runs/NAME images_dir/ --out predictions/ --checkpoint best
    python predict.py --run runs/NAME images_dir/ --out predictions/ --int8 --calib-images 64

A folder is searched recursively by the finder of ``train.py --unlabeled``
(``data/images.py``: .png/.jpg/.jpeg in any case, hidden names skipped, sorted),
and its sub-folders are mirrored in ``--out``.  For each input image ``NAME.png`` /
``NAME.jpg`` this writes, into ``--out``::

    NAME_depth.npy   float32 (H, W) depth in metres
    NAME_depth.png   the depth colour-mapped (plasma, near = bright; the image's own min..max)
    NAME_conf.npy    float32 (H, W) confidence in (0, 1)
    NAME_conf.png    the confidence colour-mapped (viridis) between the image's own 2nd and
                     98th percentiles, so that a map of 0.33-0.49 is not one flat colour

all at the input image's resolution H x W.  Each PNG records the values of its darkest
and brightest colours in its text fields ``vmin`` and ``vmax`` (e.g.
``PIL.Image.open(p).text``).  Two inputs with one stem (``a.png``, ``a.jpg``) keep their
extension in the name (``a_png_depth.npy``, ``a_jpg_depth.npy``).

Each image is resized (aspect ratio not kept) to the network size, the run's training
``input_size`` or ``--size``: cv2.INTER_AREA when shrinking, else bilinear; the networks
predict at 1/4 of that, and both maps are upsampled bilinearly back to H x W with the
pixel convention of ``data.grid`` that the training targets use (export.json records both
rules for the exported networks).  The forward passes are those of ``evaluation.inference.predict``, the
same code that scores the test set.  ``--int8`` runs both networks quantized to INT8
by oneDNN (CPU only), calibrated on ``--calib-images`` of the run's labeled training
rows (train.h5 of ``--data``; evaluation/quantize.py): faster, maps slightly different
from float32.  Bad input prints one ``error: ...`` line and
exits with status 2 before anything is written.
"""
import argparse
import os
import sys

import numpy as np

from common.threads import set_omp_threads

set_omp_threads()  # before mxnet loads (common/threads.py)
import config  # noqa: E402
from common.cli import OneLineParser, add_inference_args  # noqa: E402
from common.devices import contexts  # noqa: E402
from common.files import failed_write, refuse_link  # noqa: E402
from common.memory import FORWARD_BYTES_PER_PIXEL, check_fits  # noqa: E402
from rundir.records import read_config  # noqa: E402
from data.images import IMAGE_SUFFIXES, check_images, list_images, read_rgb  # noqa: E402

IMAGE_EXTENSIONS = IMAGE_SUFFIXES
DEPTH_CMAP = "plasma_r"  # as in the evaluation figures: near = bright
CONF_CMAP = "viridis"


class PredictError(Exception):
    """A one-line, user-facing problem with the inputs of predict.py."""


def build_parser():
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR",
                        help="image files, or directories whose %s files are all used (recursively)"
                             % "/".join(IMAGE_EXTENSIONS))
    parser.add_argument("--run", required=True, help="run directory made by train.py")
    parser.add_argument("--out", required=True, help="output directory (created if needed)")
    parser.add_argument("--size", type=config.parse_size, default=None,
                        help="network input WIDTHxHEIGHT (multiples of 16). default: the run's training input_size")
    add_inference_args(parser, "images", "image decoding processes")
    parser.add_argument("--data", default=None,
                        help="prepared data directory whose train.h5 calibrates --int8. "
                             "default: the run's config.json 'data'")
    return parser


def find_images(inputs):
    """Image paths of the command line and their output names (``NAME`` of ``NAME_depth.npy``).

    Files are taken as given (output name: the file's stem); folders are expanded by
    ``data.images.list_images`` (output name: the path inside the folder, without extension).
    """
    paths, stems = [], []
    for item in inputs:
        if os.path.isdir(item):
            found = list_images(item)
            if not found:
                raise PredictError("%s holds no %s images (searched recursively)" % (item, "/".join(IMAGE_EXTENSIONS)))
            paths.extend(os.path.join(item, f) for f in found)
            stems.extend(os.path.splitext(f)[0] for f in found)
        elif os.path.isfile(item):
            paths.append(item)
            stems.append(os.path.splitext(os.path.basename(item))[0])
        else:
            raise PredictError("%s: no such file or directory" % item)
    counts = {}
    for stem in stems:
        counts[stem] = counts.get(stem, 0) + 1
    # a.png and a.jpg: each keeps its extension in its output name (a_png, a_jpg)
    stems = [stem if counts[stem] == 1 else "%s_%s" % (stem, os.path.splitext(path)[1][1:].lower())
             for path, stem in zip(paths, stems)]
    seen = {}
    for path, stem in zip(paths, stems):  # one output name per image, or one would overwrite another
        if stem in seen:
            raise PredictError("%s and %s would both write %s_depth.npy; rename one" % (seen[stem], path, stem))
        seen[stem] = path
    return paths, stems


def image_sizes(paths, progress=True):
    """(H, W) of every image; decodes each once so an unreadable file fails before any output."""
    return check_images(paths, progress, desc="checking images")


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
    check_fits("predicting", (width, height), FORWARD_BYTES_PER_PIXEL * args.batch_size, PredictError)
    trained = run_config.get("input_size")
    if args.size and trained and list(trained) != [width, height]:
        print("note: predicting at %dx%d; the run trained at %dx%d (its numbers hold at that size)"
              % (width, height, trained[0], trained[1]), file=sys.stderr)
    return width, height


def write_png(path, indices, cmap, vmin, vmax):
    """A palette PNG: ``indices`` (H, W) uint8 into the 256 colours of the matplotlib colormap ``cmap``,
    with text fields ``vmin`` / ``vmax`` giving the values of the colour scale's ends."""
    from PIL import Image, PngImagePlugin
    info = PngImagePlugin.PngInfo()
    info.add_text("vmin", "%.6g" % vmin)
    info.add_text("vmax", "%.6g" % vmax)
    image = Image.fromarray(indices)
    image.putpalette(palette(cmap).ravel().tolist())
    # one byte per pixel instead of three, and zlib level 1 (PIL's default 6 took 4x as long
    # for files ~20 % smaller): PNG encoding was most of predict.py's time per image
    image.save(path, format="PNG", pnginfo=info, compress_level=1)


def palette(cmap):
    """(256, 3) uint8 RGB: the colours of the matplotlib colormap ``cmap``."""
    from matplotlib import colormaps
    return colormaps[cmap](np.arange(256), bytes=True)[:, :3]


def colour_indices(values, vmin, vmax):
    """(H, W) floats -> (H, W) uint8 colour indices, as a 256-colour matplotlib colormap picks
    them: x = (value - vmin) / (vmax - vmin) clipped to [0, 1], index floor(256 x), 1 -> 255."""
    span = max(float(vmax) - float(vmin), 1e-12)
    scaled = (values - np.float32(vmin)) * np.float32(256 / span)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def write_atomic(path, write):
    """``write(tmp_path)`` then rename, so an interrupted run never leaves half a file."""
    base, ext = os.path.splitext(path)
    tmp = refuse_link(base + ".tmp" + ext)  # keeps the extension: cv2 and np.save choose the format by it
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:  # a full disk: no partial file under either name
        raise OSError(failed_write(path, err, tmp)) from None


def save_maps(out_dir, stem, depth, conf):
    """The four output files of one image; ``stem`` may hold sub-folders (created here)."""
    from evaluation.figures import robust_limits
    prefix = os.path.join(out_dir, stem)
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    write_atomic(prefix + "_depth.npy", lambda p: np.save(p, depth.astype(np.float32)))
    write_atomic(prefix + "_conf.npy", lambda p: np.save(p, conf.astype(np.float32)))
    for suffix, values, cmap, (low, high) in (("_depth.png", depth, DEPTH_CMAP, (depth.min(), depth.max())),
                                              ("_conf.png", conf, CONF_CMAP, robust_limits(conf))):
        write_atomic(prefix + suffix, lambda p: write_png(p, colour_indices(values, low, high), cmap, low, high))


def run(args):
    """Every check first, then the forward passes and the files; returns the number of images."""
    from evaluation.runs import load_networks
    from rundir.layout import RunError, checkpoint_dir
    if args.batch_size < 1:
        raise PredictError("--batch-size must be >= 1")
    if args.num_workers < 0:
        raise PredictError("--num-workers must be >= 0")
    if (args.calib_images is not None or args.data) and not args.int8:
        raise PredictError("--calib-images and --data are for --int8")
    if args.calib_images is not None and args.calib_images < 1:
        raise PredictError("--calib-images must be >= 1")
    if args.int8 and args.gpus:
        from evaluation.quantize import INT8_CPU_ONLY
        raise PredictError(INT8_CPU_ONLY)
    paths, stems = find_images(args.inputs)
    if not os.path.isdir(args.run):
        raise PredictError("run directory %s does not exist" % args.run)
    run_config = read_config(args.run, RunError)
    size = network_size(args, run_config)
    checkpoint_dir(args.run, args.checkpoint)  # fails before the slow parts if there is none
    ctxs = contexts(args.gpus)
    if args.int8:
        from evaluation.quantize import check_int8
        check_int8(ctxs)
    sizes = image_sizes(paths, progress=not args.no_progress)
    depth_net, conf_net, checkpoint = load_networks(args.run, args.checkpoint, ctxs)
    if args.int8:
        from evaluation.quantize import DEFAULT_CALIB_IMAGES, int8_nets
        run = {"ctxs": ctxs, "nets": (depth_net, conf_net), "data": args.data or run_config.get("data") or "."}
        (depth_net, conf_net), _ = int8_nets(run, args.run, args.calib_images or DEFAULT_CALIB_IMAGES, args.verbose)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as err:
        raise PredictError("cannot create --out %s (%s)" % (args.out, err.strerror or err))
    write_predictions(depth_net, conf_net, paths, stems, sizes, size, args.out, args.batch_size, ctxs,
                      progress=not args.no_progress, num_workers=args.num_workers)
    return len(paths), size, checkpoint


def write_predictions(depth_net, conf_net, paths, stems, sizes, size, out_dir, batch_size, ctxs, progress=True,
                      num_workers=0):
    """The four files of every image: ``paths[i]`` predicted at ``size`` and upsampled to ``sizes[i]``
    into ``out_dir/stems[i]_*`` (bench/inference.py times this)."""
    from evaluation.inference import predict
    from evaluation.metrics import upsample
    for ids, depth, conf in predict(depth_net, conf_net, ImageFiles(paths, size), batch_size, ctxs,
                                    progress=progress, desc="predict", num_workers=num_workers):
        for k, i in enumerate(ids):
            save_maps(out_dir, stems[i], upsample(depth[k], sizes[i]), upsample(conf[k], sizes[i]))


def main(argv=None):
    """Command-line entry point; returns the exit status (2 on bad input)."""
    from data.errors import edge_errors, one_line
    from evaluation import EvaluationError
    from rundir.layout import RunError
    args = build_parser().parse_args(argv)
    try:
        count, size, checkpoint = run(args)
    except (PredictError, EvaluationError, RunError) + edge_errors() as err:
        print("error: %s" % one_line(err), file=sys.stderr)
        return 2
    print("%d image(s) predicted with %s at %dx%d%s -> %s (NAME_depth.npy/.png, NAME_conf.npy/.png)"
          % (count, checkpoint, size[0], size[1], " in INT8" if args.int8 else "", args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
