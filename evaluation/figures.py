"""PNG figures of an evaluation: qualitative grid, sparsification curves, reliability diagram.

Figures are drawn on a bare ``matplotlib.figure.Figure`` (no pyplot, no global
backend) and written under a temporary name first, so a failure never leaves
a half-written PNG in place of an older one.
"""
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
# Qualitative grid: each panel is PANEL_PX wide, rows keep the ground truth's aspect.
PANEL_PX = 240
TITLE_PX = 30
COLUMNS = ("image", "ground truth", "prediction", "confidence", "mask C >= T")
DEPTH_CMAP = "plasma_r"   # near = bright
CONF_CMAP = "viridis"
INVALID_COLOUR = "0.5"    # grey where the ground truth has no depth


def _save(fig, path):
    FigureCanvasAgg(fig)
    tmp = path + ".tmp"
    fig.savefig(tmp, dpi=DPI, format="png")
    os.replace(tmp, path)
    return path


def grid_size_px(n_rows, gt_shape):
    """(width, height) in pixels of ``qualitative_grid`` for ``n_rows`` rows of ``gt_shape`` (H, W)."""
    row_px = int(round(PANEL_PX * gt_shape[0] / gt_shape[1]))
    return len(COLUMNS) * PANEL_PX, n_rows * row_px + TITLE_PX


def qualitative_grid(rows, t_semi, path):
    """image | ground truth | prediction | confidence | mask, one test image per row.

    Parameters
    ----------
    rows : list of dict
        Each with ``image`` (h, w, 3) uint8, ``gt`` (H, W) metres (invalid:
        0 or NaN), ``pred`` and ``conf`` (H, W) upsampled to the ground truth,
        ``id`` (int).
    t_semi : float
        Threshold of the mask column (eq. 5).
    path : str
        Output PNG; its size is ``grid_size_px(len(rows), gt.shape)``.

    Depth and prediction share one colour scale, the range of the valid
    ground truth over all rows, so colours compare across panels.
    """
    gt_shape = rows[0]["gt"].shape
    width_px, height_px = grid_size_px(len(rows), gt_shape)
    row_px = (height_px - TITLE_PX) / len(rows)
    valid = np.concatenate([r["gt"][np.isfinite(r["gt"]) & (r["gt"] > 0)] for r in rows])
    vmin, vmax = (float(valid.min()), float(valid.max())) if valid.size else (0.0, 10.0)

    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    for col, title in enumerate(COLUMNS):
        label = title.replace("T", "%.2g" % t_semi) if col == 4 else title
        if col in (1, 2):
            label += " (%.1f-%.1f m)" % (vmin, vmax)
        fig.text((col + 0.5) / len(COLUMNS), 1 - TITLE_PX / 2 / height_px, label,
                 ha="center", va="center", fontsize=8)
    for r, row in enumerate(rows):
        gt = np.where(np.isfinite(row["gt"]) & (row["gt"] > 0), row["gt"], np.nan)
        panels = [
            (row["image"], {}),
            (np.ma.masked_invalid(gt), dict(cmap=DEPTH_CMAP, vmin=vmin, vmax=vmax)),
            (row["pred"], dict(cmap=DEPTH_CMAP, vmin=vmin, vmax=vmax)),
            (row["conf"], dict(cmap=CONF_CMAP, vmin=0, vmax=1)),
            (row["conf"] >= t_semi, dict(cmap="gray", vmin=0, vmax=1)),
        ]
        bottom = (height_px - TITLE_PX - (r + 1) * row_px) / height_px
        for col, (picture, style) in enumerate(panels):
            ax = fig.add_axes([col / len(COLUMNS), bottom, 1 / len(COLUMNS), row_px / height_px])
            ax.set_facecolor(INVALID_COLOUR)
            ax.imshow(picture, aspect="auto", interpolation="nearest", **style)
            ax.set_axis_off()
        fig.text(0.002, bottom + 0.5 * row_px / height_px, "#%d" % row["id"], fontsize=7,
                 color="white", va="center")
    return _save(fig, path)


def sparsification_plot(result, path):
    """Confidence / oracle / random curves of ``confidence.SparsificationAccumulator.result()``."""
    fractions = np.asarray(result["fractions"])
    fig = Figure(figsize=(9, 3.6), dpi=DPI)
    for i, name in enumerate(("rel", "rms")):
        ax = fig.add_subplot(1, 2, i + 1)
        data = result[name]
        for curve, style in (("confidence", "-"), ("oracle", "--"), ("random", ":")):
            ax.plot(fractions, data["curves"][curve], style, label=curve)
        ax.set_title("%s   AUSE %.4f   AURG %.4f" % (name, data["ause"], data["aurg"]), fontsize=9)
        ax.set_xlabel("fraction of pixels removed")
        ax.set_ylabel(name)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def reliability_plot(result, path):
    """Mean confidence vs mean eq.-1 target per bin of ``ReliabilityAccumulator.result()``."""
    edges = np.asarray(result["edges"])
    centres = (edges[1:] + edges[:-1]) / 2
    target = np.array([np.nan if v is None else v for v in result["mean_target"]])
    counts = np.asarray(result["count"], np.float64)
    fig = Figure(figsize=(4.5, 4.5), dpi=DPI)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(centres, np.nan_to_num(target), width=np.diff(edges) * 0.9, alpha=0.7,
           label="mean exp(-%g rel. error)" % result["alpha"])
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="calibrated")
    share = counts / max(counts.sum(), 1)
    ax.plot(centres, share, "o-", color="tab:red", markersize=3, label="share of pixels")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence C")
    ax.set_ylabel("eq. 1 target Y")
    err = result["calibration_error"]
    ax.set_title("reliability (calibration error %s)" % ("n/a" if err is None else "%.3f" % err), fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return _save(fig, path)
