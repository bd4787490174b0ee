"""A trained run opened for scoring: its config, split, test set and networks on the devices.

``load_run`` is what ``evaluate.py --run`` and the claims experiment start from; every
missing piece (run directory, checkpoint, test.h5, raw depth, train.h5 for Table 1) is an
``EvaluationError`` with the fix, raised before any network runs.
(``evaluation.report.load_run`` is another thing: the JSON files a finished evaluation wrote.)
"""
import os

from mxnet.base import MXNetError

from common.devices import contexts
from common.files import read_json
from data.dataset import TestDataset
from data.errors import one_line
from rundir.layout import RunError, checkpoint_dir
from rundir.nets import load_nets
from rundir.records import read_config
from rundir.state import TrainingPoint

from . import EvaluationError
from .inference import inference_mode
from .metrics import PROTOCOLS


def find_test_h5(data_dir):
    """``DATA_DIR/test.h5``; EvaluationError with the command that makes it if it is missing."""
    path = os.path.join(data_dir, "test.h5")
    if not os.path.isfile(path):
        raise EvaluationError("%s has no test.h5 (prepare it with python -m data.prepare --out %s)"
                              % (data_dir, data_dir))
    return path


def open_test_set(path, protocol):
    """``TestDataset`` of ``path``; EvaluationError with the fix if ``protocol`` needs raw depth it lacks."""
    dataset = TestDataset(path)
    if protocol.gt == "raw" and not dataset.has_raw:
        data_dir = os.path.dirname(path) or "."
        raise EvaluationError("%s has no raw_depths (prepared before raw ground truth was stored); add it with "
                              "python -m data.prepare --mat nyu_depth_v2_labeled.mat --splits splits.mat --out %s "
                              "--add-raw, or score the in-painted depth with --gt filled" % (path, data_dir))
    return dataset


def load_run(run_dir, checkpoint="last", data=None, gpus=(), table1=False, protocol=PROTOCOLS["full"]):
    """Config, split (with ``table1``), test set, networks on the devices and checkpoint path of a run.

    Parameters
    ----------
    run_dir : str
        Run directory made by train.py.
    checkpoint : str
        ``last``, ``best`` or a checkpoint directory.
    data : str or None
        Prepared data directory; None = the run's config.json ``data``.
    gpus : sequence of int
        GPU ids; empty = CPU.
    table1 : bool
        Also read split.json and check that Table 1's unlabeled rows and train.h5 exist.
    protocol : evaluation.metrics.Protocol
        Checked against the test set (raw depth present if it needs it).

    Returns
    -------
    dict
        ``config``, ``split`` (None without ``table1``), ``data``, ``test`` (TestDataset),
        ``ctxs``, ``nets`` (depth, confidence; ``inference_mode``) and ``checkpoint`` (its path).
    """
    if not os.path.isdir(run_dir):
        raise EvaluationError("run directory %s does not exist" % run_dir)
    run_config = read_config(run_dir, RunError)
    checkpoint_dir(run_dir, checkpoint)  # fails before any work if there is none
    data_dir = data or stored_data(run_dir, run_config)
    if not data_dir:
        raise EvaluationError("%s/config.json names no data directory; pass --data DIR" % run_dir)
    if not data and not os.path.isfile(os.path.join(data_dir, "test.h5")):
        raise EvaluationError("%s has no test.h5: it is the --data of %s/config.json; pass --data DIR (the prepared "
                              "directory with test.h5) if the data has moved" % (data_dir, run_dir))
    test_set = open_test_set(find_test_h5(data_dir), protocol)
    split = None
    if table1:
        split = read_json(os.path.join(run_dir, "split.json"), error=RunError)
        if not split.get("unlabeled_rows"):
            raise EvaluationError("%s/split.json has no unlabeled_rows: Table 1 needs unlabeled images" % run_dir)
        if not os.path.isfile(os.path.join(data_dir, "train.h5")):
            raise EvaluationError("%s has no train.h5 (Table 1 scores the unlabeled training rows)" % data_dir)
    ctxs = contexts(list(gpus))
    depth_net, conf_net, path = load_networks(run_dir, checkpoint, ctxs)
    return {"config": run_config, "split": split, "data": data_dir, "test": test_set, "ctxs": ctxs,
            "nets": (depth_net, conf_net), "checkpoint": path, "extent": trained_extent(run_dir, path, run_config)}


def stored_data(run_dir, run_config):
    """The run's --data: as stored (absolute since config.json keeps it so), else found relative to the
    run directory (a run moved together with its data, or one stored with a relative path)."""
    data = run_config.get("data")
    candidates = [data] if data else []
    if run_config.get("data_relative_to_run"):
        candidates.append(os.path.join(run_dir, run_config["data_relative_to_run"]))
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, "test.h5")):
            return candidate
    return data


def trained_extent(run_dir, path, run_config):
    """How far the scored checkpoint trained against the run's ``--epochs``, and for a checkpoint chosen
    on validation images (``best``), on how many."""
    state = TrainingPoint.read(path, RunError, required=("epoch",))
    split = read_json(os.path.join(run_dir, "split.json"), required=False, error=RunError) or {}
    extent = {"trained_epochs": state.epoch, "trained_iteration": state.iteration,
              "epochs": run_config.get("epochs", state.epoch)}
    if os.path.basename(os.path.normpath(path)) == "best":
        extent["chosen_on_val_images"] = len(split.get("val_rows") or [])
    return extent


def extent_caption(run_dir, path, extent):
    """One line naming what a figure shows: 'RUN, checkpoint last: epoch 8 of 8' (+ the iteration of a
    mid-epoch checkpoint, + for ``best`` the validation images that chose it)."""
    text = "%s, checkpoint %s: epoch %d of %d" % (os.path.normpath(run_dir), os.path.basename(os.path.normpath(path)),
                                                 extent["trained_epochs"], extent["epochs"])
    if extent.get("trained_iteration"):
        text += ", iteration %d" % extent["trained_iteration"]
    if "chosen_on_val_images" in extent:
        text += ", chosen on %d validation images" % extent["chosen_on_val_images"]
    return text


def load_networks(run_dir, checkpoint, ctxs):
    """Both networks of the run on every context of ``ctxs``, hybridized for inference
    (``evaluation.inference.inference_mode``); and the checkpoint path."""
    try:
        depth_net, conf_net, _, path = load_nets(run_dir, checkpoint, ctxs[0])
    except (AssertionError, MXNetError) as err:
        raise EvaluationError("cannot load the checkpoint of %s: %s" % (run_dir, one_line(err)))
    for net in (depth_net, conf_net):
        net.collect_params().reset_ctx(ctxs)
        inference_mode(net, ctxs)
    return depth_net, conf_net, path
