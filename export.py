"""Export a run's two networks as MXNet symbol + params files (and optionally ONNX).

    python export.py --run runs/NAME --out exported/ [--checkpoint last] [--onnx]

writes into ``--out``::

    depth_net-symbol.json, depth_net-0000.params   input "data" (N, 3, H, W): the normalised RGB image
                                                    output (N, 1, H/4, W/4): depth in metres
    conf_net-symbol.json,  conf_net-0000.params    inputs "data0" (N, 3, H, W): the same image,
                                                    "data1" (N, 1, H/4, W/4): the depth net's output
                                                    output (N, 1, H/4, W/4): confidence in (0, 1)
    export.json                                    shapes, normalisation constants, file names
    depth_net.onnx, conf_net.onnx                  with --onnx (opset 13, batch size free)

The confidence net builds its 4-channel input inside its graph (``symbols.NETS``,
``symbols.confidence_input``), so the exported symbol takes the image and the
depth as they are::

    depth = depth_net(image)             # (N, 1, H/4, W/4)
    conf  = conf_net(image, depth)       # inside: concat([avg_pool(image, 4x4), log(depth)])

Image normalisation (``data.dataset.normalize_image``): RGB, NCHW,
``(pixel / 255 - mean) / std`` with the ImageNet mean and std in export.json.
predict.py's resizing, recorded in export.json (``preprocessing``, ``postprocessing``)::

    x = cv2.resize(rgb, (W, H), interpolation=cv2.INTER_AREA if W <= W_img and H <= H_img
                                                              else cv2.INTER_LINEAR)
    depth_img = cv2.resize(depth[0, 0], (W_img, H_img), interpolation=cv2.INTER_LINEAR)
H and W must be multiples of 16; the MXNet symbols take any such size, the
ONNX files the size they were exported at (``--size``, default: the run's
training input size).  Load the MXNet files with::

    net = mx.gluon.SymbolBlock.imports("depth_net-symbol.json", ["data"], "depth_net-0000.params")
    net = mx.gluon.SymbolBlock.imports("conf_net-symbol.json", ["data0", "data1"], "conf_net-0000.params")

Bad input prints one ``error: ...`` line and exits with status 2 before anything
is written.
"""
import argparse
import os
import sys
import warnings

import mxnet as mx
import numpy as np
from mxnet.base import MXNetError

import config
from common.cli import OneLineParser
from common.files import failed_write, refuse_link, write_json_atomic
from common.memory import FORWARD_BYTES_PER_PIXEL, check_fits
from rundir.records import read_config
from data.dataset import IMAGENET_MEAN, IMAGENET_STD
from data.errors import edge_errors, one_line
from rundir.layout import RunError, checkpoint_dir
from rundir.nets import load_nets

from symbols import NETS
from symbols.confidence_net import DOWNSAMPLE
from symbols.depth_net import INPUT_MULTIPLE, check_input_size

NAMES = ("depth_net", "conf_net")
# what HybridBlock.export calls the inputs: "data" for one, "data0", "data1", ... for several
INPUTS = {"depth_net": ("data",), "conf_net": ("data0", "data1")}
# What predict.py does around the networks (data.augment.resize_image, data.grid.upsample): a user who
# guesses cv2's default interpolation instead gets up to 0.18 m of depth difference.
PREPROCESSING = ("RGB uint8 image (H_img, W_img) -> cv2.resize(image, input_size) (aspect ratio not kept) with "
                 "cv2.INTER_AREA if W <= W_img and H <= H_img (shrinking), else cv2.INTER_LINEAR; then the "
                 "normalisation; NCHW float32")
POSTPROCESSING = ("depth (metres) and confidence at (H/4, W/4) -> cv2.resize(map, (W_img, H_img), "
                  "interpolation=cv2.INTER_LINEAR) each (pixel centres aligned: the convention of data.grid)")
CONTENT = {"data": "normalised RGB image", "data0": "normalised RGB image", "data1": "depth_net's output (m)"}
ONNX_OPSET = 13
ONNX_IR_VERSION = 7      # the IR version that goes with opset 13, for older runtimes


class ExportError(Exception):
    """A one-line, user-facing problem with the inputs of the export."""


def build_parser():
    parser = OneLineParser(prog="python export.py", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run directory made by train.py")
    parser.add_argument("--out", required=True, help="output directory (created if needed)")
    parser.add_argument("--checkpoint", default="last", help="last, best or a checkpoint directory. default: %(default)s")
    parser.add_argument("--size", type=config.parse_size, default=None,
                        help="WIDTHxHEIGHT recorded in export.json and fixed in the ONNX files. "
                             "default: the run's training input_size")
    parser.add_argument("--onnx", action="store_true",
                        help="also write depth_net.onnx and conf_net.onnx (needs the onnx extra: "
                             "pip install -e '.[onnx]'); checked against MXNet with onnxruntime if installed")
    return parser


def input_shapes(width, height):
    """Shapes of the inputs of each network for one (width, height) image."""
    check_input_size(height, width)
    image, depth = (1, 3, height, width), (1, 1, height // DOWNSAMPLE, width // DOWNSAMPLE)
    return {"depth_net": [image], "conf_net": [image, depth]}


def example_inputs(shapes, batch, seed=0):
    """Random inputs of these shapes with ``batch`` rows: images N(0, 1), depths in [0.5, 8] m
    (positive: the confidence net takes their log)."""
    rng = np.random.RandomState(seed)
    inputs = []
    for shape in shapes:
        size = (batch,) + tuple(shape[1:])
        inputs.append((rng.normal(size=size) if shape[1] == 3 else rng.uniform(0.5, 8.0, size)).astype(np.float32))
    return inputs


def export_mxnet(nets, shapes, out_dir):
    """``HybridBlock.export`` of each net after one forward pass at its shape (which builds the graph)."""
    files = {}
    for name, net in zip(NAMES, nets):
        net.hybridize()
        net(*[mx.nd.array(x) for x in example_inputs(shapes[name], 1)])
        suffixes = ("-symbol.json", "-0000.params")
        for suffix in suffixes:  # MXNet writes through a link: none allowed
            refuse_link(os.path.join(out_dir, name + suffix))
            refuse_link(os.path.join(out_dir, ".tmp-" + name + suffix))
        # under temporary names first: a full disk leaves no empty or partial file under a final name
        try:
            net.export(os.path.join(out_dir, ".tmp-" + name), epoch=0)
            for suffix in suffixes:
                os.replace(os.path.join(out_dir, ".tmp-" + name + suffix), os.path.join(out_dir, name + suffix))
        except (OSError, mx.base.MXNetError) as err:
            raise ExportError(failed_write(os.path.join(out_dir, name + "-*"), err,
                                           *(os.path.join(out_dir, ".tmp-" + name + s) for s in suffixes))) from None
        files[name] = {"symbol": name + "-symbol.json", "params": name + "-0000.params"}
    return files


def import_mxnet(out_dir, name, ctx=None):
    """The exported ``name`` as a ``gluon.SymbolBlock``."""
    with warnings.catch_warnings():  # "cannot decide type for data": it is float32, as at export
        warnings.simplefilter("ignore")
        return mx.gluon.SymbolBlock.imports(os.path.join(out_dir, name + "-symbol.json"), list(INPUTS[name]),
                                            os.path.join(out_dir, name + "-0000.params"), ctx=ctx)


def export_onnx(out_dir, name, shapes):
    """MXNet's ONNX exporter at opset 13 with a free batch dimension; returns the file name.

    ``mx.onnx.export_model`` always stamps the installed onnx package's newest opset
    on the model while converting every operator with its opset-12/13 definition, so
    the graph is built with the exporter's ``MXNetGraph`` at opset 13 directly.  The
    weights are kept as initializers only (not also as graph inputs), which lets
    runtimes fold them as constants.
    """
    import onnx
    from onnx import helper
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph
    sym = mx.sym.load(os.path.join(out_dir, name + "-symbol.json"))
    saved = mx.nd.load(os.path.join(out_dir, name + "-0000.params"))
    params = {key.split(":", 1)[1]: value for key, value in saved.items()}  # drop "arg:" / "aux:"
    graph = MXNetGraph().create_onnx_graph_proto(sym, params, list(shapes), [onnx.TensorProto.FLOAT] * len(shapes),
                                                 opset_version=ONNX_OPSET, dynamic=True,
                                                 dynamic_input_shapes=[(None,) + tuple(s[1:]) for s in shapes])
    weights = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], producer_name="mxnet")
    model.ir_version = ONNX_IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out_dir, name + ".onnx"))
    return name + ".onnx"


def onnx_max_difference(out_dir, name, shapes):
    """Largest |onnxruntime - MXNet| on a random input, or None without onnxruntime."""
    try:
        import onnxruntime
    except ImportError:
        return None
    xs = example_inputs(shapes, 2)
    session = onnxruntime.InferenceSession(os.path.join(out_dir, name + ".onnx"), providers=["CPUExecutionProvider"])
    ours = import_mxnet(out_dir, name)(*[mx.nd.array(x) for x in xs]).asnumpy()
    theirs = session.run(None, dict(zip(INPUTS[name], xs)))[0]
    return float(np.abs(ours - theirs).max())


def describe(run_dir, checkpoint_path, size, shapes, files):
    """The content of export.json."""
    out_shape = list(shapes["conf_net"][1])
    return {
        "run": os.path.abspath(run_dir), "checkpoint": os.path.abspath(checkpoint_path),
        "input_size": list(size), "input_multiple": INPUT_MULTIPLE, "output_stride": config.OUTPUT_STRIDE,
        "normalisation": {"layout": "NCHW", "channels": "RGB", "formula": "(pixel / 255 - mean) / std",
                          "mean": [round(float(v), 6) for v in IMAGENET_MEAN],
                          "std": [round(float(v), 6) for v in IMAGENET_STD]},
        "preprocessing": PREPROCESSING, "postprocessing": POSTPROCESSING,
        **{name: dict(files[name], inputs=[{"name": n, "shape": list(shape), "content": CONTENT[n]}
                                           for n, shape in zip(INPUTS[name], shapes[name])],
                      output_shape=out_shape, content=NETS[name]) for name in NAMES},
    }


def export(run_dir, out_dir, checkpoint="last", size=None, onnx=False):
    """Write the files listed in the module docstring; returns export.json's content."""
    if not os.path.isdir(run_dir):
        raise ExportError("run directory %s does not exist" % run_dir)
    size = size or read_config(run_dir, RunError).get("input_size")
    if not size:
        raise ExportError("%s/config.json has no input_size; pass --size WIDTHxHEIGHT" % run_dir)
    check_fits("exporting the networks", size, FORWARD_BYTES_PER_PIXEL, ExportError)
    shapes = input_shapes(*size)
    checkpoint_dir(run_dir, checkpoint)
    if onnx:
        try:
            import onnx  # noqa: F401  (fail before writing anything)
        except ImportError:
            raise ExportError("--onnx needs the onnx package: pip install -e '.[onnx]'")
    try:
        depth_net, conf_net, _, path = load_nets(run_dir, checkpoint)
    except (AssertionError, MXNetError) as err:
        raise ExportError("cannot load the checkpoint of %s: %s" % (run_dir, one_line(err)))
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as err:
        raise ExportError("cannot create --out %s (%s)" % (out_dir, err.strerror or err))
    files = export_mxnet((depth_net, conf_net), shapes, out_dir)
    info = describe(run_dir, path, size, shapes, files)
    if onnx:
        for name in NAMES:
            info[name]["onnx"] = export_onnx(out_dir, name, shapes[name])
            info[name]["onnx_max_abs_difference"] = onnx_max_difference(out_dir, name, shapes[name])
        info["onnx"] = {"opset": ONNX_OPSET, "batch": "free (dim 0)", "height_width": "fixed at input_size"}
    write_json_atomic(os.path.join(out_dir, "export.json"), info)
    return info


def main(argv=None):
    """Command-line entry point; returns the exit status (2 on bad input)."""
    args = build_parser().parse_args(argv)
    try:
        info = export(args.run, args.out, args.checkpoint, args.size, args.onnx)
    except (ExportError, RunError) + edge_errors() as err:
        print("error: %s" % one_line(err), file=sys.stderr)
        return 2
    written = [f for name in NAMES for key, f in info[name].items() if key in ("symbol", "params", "onnx")]
    print("exported %s to %s: %s, export.json" % (info["checkpoint"], args.out, ", ".join(written)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
