"""What a run directory shows a person: config.json, split.json, metrics.jsonl, curves.png."""
import json
import os
import platform
import subprocess
from importlib import metadata

import gluoncv
import h5py
import matplotlib
import mxnet
import numpy

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

from common.files import read_json, refuse_link, write_json_atomic, write_text_atomic  # noqa: E402
from common.threads import cpu_model  # noqa: E402
from data.unlabeled_dir import describe_change  # noqa: E402
from symbols import NETS  # noqa: E402

from .layout import RunError  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def git_commit():
    """The checkout's commit; in the Docker image (no .git) the one it was built from (docker/Dockerfile)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return os.environ.get("SEMIDEPTH_GIT_COMMIT") or None


def installed_version(module, *distributions):
    """The installed distribution's version: gluoncv 0.10.5.post0's module says "0.11.0"."""
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return module.__version__


def versions():
    return {"python": platform.python_version(), "mxnet": installed_version(mxnet, "mxnet", "mxnet-cu112"),
            "numpy": installed_version(numpy, "numpy"), "gluoncv": installed_version(gluoncv, "gluoncv")}


def mxnet_build():
    """The features this MXNet library was built with (MKLDNN = oneDNN, CUDA, ...): numbers depend on them."""
    from mxnet.runtime import Features
    return sorted(name for name, feature in Features().items() if feature.enabled)


def run_config(opts, derived=None):
    """All flags + package versions + git commit (+ the prepared data's attributes, + ``derived``:
    figures the trainer computes from them, e.g. the unlabeled images per step)."""
    cfg = {k: v for k, v in vars(opts).items()}
    cfg.update(derived or {})
    cfg["versions"] = versions()
    cfg["git_commit"] = git_commit()
    cfg["nets"] = NETS  # what the networks take; rundir.nets.check_nets compares it
    cfg["omp_num_threads"] = os.environ.get("OMP_NUM_THREADS")  # common/threads.py
    cfg["mxnet_build"] = mxnet_build()
    cfg["cpu_model"] = cpu_model()  # numbers depend on it too (oneDNN's kernels); resume records a change
    cfg["data_relative_to_run"] = os.path.relpath(os.path.abspath(opts.data), os.path.abspath(opts.out))
    with h5py.File(os.path.join(opts.data, "train.h5"), "r") as f:
        cfg["data_attrs"] = {k: (v.item() if hasattr(v, "item") else str(v)) for k, v in f.attrs.items()}
        cfg["dataset"] = cfg["data_attrs"].get("dataset")
        cfg["input_size"] = [int(f["images"].shape[2]), int(f["images"].shape[1])]
    return cfg


def start_run(run_dir, split, opts, derived=None):
    """A new run's split.json, then config.json (which makes the directory a run)."""
    write_json_atomic(os.path.join(run_dir, "split.json"), split)
    write_json_atomic(os.path.join(run_dir, "config.json"), run_config(opts, derived))


def check_split(run_dir, split, data):
    """Refuse to resume ``run_dir`` unless its split.json is ``split`` (same data, same ``--unlabeled`` images)."""
    saved = read_json(os.path.join(run_dir, "split.json"), error=RunError)
    saved_extra, extra = saved.get("extra_unlabeled"), split.get("extra_unlabeled")
    if saved_extra != extra:  # the --unlabeled images, not the prepared data, differ
        raise RunError("cannot resume %s: %s" % (run_dir, describe_change(saved_extra, extra)))
    if saved != split:
        raise RunError("split.json of %s does not match the data in %s" % (run_dir, data))


def write_metrics(run_dir, history):
    """metrics.jsonl: one line per finished epoch (rewritten whole, from the checkpoint's history)."""
    write_text_atomic(os.path.join(run_dir, "metrics.jsonl"),
                      "".join(json.dumps(line, sort_keys=True) + "\n" for line in history))


def curve_points(history, key):
    """(epoch, value) pairs of ``key`` for curves.png; epochs count from 0, as metrics.jsonl and --semi-start."""
    return [(m["epoch"], m[key]) for m in history if m.get(key) is not None]


def curves_png(run_dir, history, mask_rule=None):
    """curves.png of ``curves_figure``."""
    fig = curves_figure(history, mask_rule)
    tmp = refuse_link(os.path.join(run_dir, "curves.tmp.png"))
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, os.path.join(run_dir, "curves.png"))


def curves_figure(history, mask_rule=None):
    """Loss curves, mask coverage (pixels kept by ``mask_rule``, e.g. 'C >= 0.9') and validation rel per epoch."""
    xlabel = "epoch (from 0, as metrics.jsonl)"
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for key in ("sup", "semi", "conf"):
        pts = curve_points(history, key)
        if pts:
            axes[0].plot(*zip(*pts), marker=".", label="L_" + key)
    axes[0].set(title="losses (means per pixel)", xlabel=xlabel, yscale="log")
    # labelled minor ticks too: a loss that falls within one decade otherwise shows a single tick
    axes[0].yaxis.set_minor_formatter(ticker.LogFormatterSciNotation(labelOnlyBase=False,
                                                                     minor_thresholds=(2, 0.5)))
    axes[0].legend()
    pts = curve_points(history, "mask_coverage_pct")
    if pts:
        axes[1].plot(*zip(*pts), marker=".")
    axes[1].set(title="unlabeled pixels kept, %s (%%)" % (mask_rule or "C >= T"),
                xlabel=xlabel)
    pts = curve_points(history, "val_rel")
    if pts:
        axes[2].plot(*zip(*pts), marker=".")
    axes[2].set(title="validation rel (held-out labeled)", xlabel=xlabel)
    for ax in axes:  # whole epochs only
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return fig


def summary_line(m, epochs):
    # epochs count from 0 here as in metrics.jsonl, curves.png and --semi-start
    parts = ["epoch %3d of 0..%d" % (m["epoch"], epochs - 1), m["phase"]]
    for key in ("sup", "semi", "conf", "mask_coverage_pct", "val_rel"):
        if m.get(key) is not None:
            parts.append("%s %.4f" % (key, m[key]))
    if m.get("test"):
        parts.append("test_rel %.4f" % m["test"]["rel"])
    parts.append("lr %.2e" % m["lr"])
    parts.append("%.1fs" % m["seconds"])
    return "  ".join(parts)
