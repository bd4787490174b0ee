"""PNG figures of an evaluation: qualitative grid, sparsification curves, reliability diagram.

Figures are drawn on a bare ``matplotlib.figure.Figure`` (no pyplot, no global
backend) and written under a temporary name first, so a failure never leaves
a half-written PNG in place of an older one.  Colour scales are fitted to the
data and shown by colorbars; the values at their ends are also written into
the PNG's text fields (``PIL.Image.open(path).text``).
"""
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from common.files import refuse_link

DPI = 100
# Qualitative grid: each panel is PANEL_PX wide, rows keep the ground truth's aspect.
PANEL_PX = 240
TITLE_PX = 30
COLORBAR_PX = 64          # strip under the grid: colorbars and the mask legend
COLUMNS = ("image", "ground truth", "prediction", "confidence", "mask C >= T")
DEPTH_CMAP = "plasma_r"   # near = bright
CONF_CMAP = "viridis"
INVALID_COLOUR = "0.5"    # grey where the ground truth has no depth
# Confidence colours span these percentiles of the data: a fixed 0..1 scale paints
# a map of 0.33-0.49 in one flat colour, and min..max lets one outlier pixel do the same.
CONF_PERCENTILES = (2.0, 98.0)
MIN_SPAN = 1e-3           # a constant map still gets a usable (non-empty) scale


def _save(fig, path, metadata=None, caption=None):
    """Write ``fig``; ``caption`` (what was scored: the run, checkpoint and how far it trained,
    ``evaluation.runs.extent_caption``) goes in small grey type at the bottom left and into the
    PNG's ``source`` text field."""
    FigureCanvasAgg(fig)
    if caption:
        fig.text(0.003, 0.003, caption, fontsize=6, color="0.4", ha="left", va="bottom")
        metadata = dict(metadata or {}, source=caption)
    tmp = refuse_link(path + ".tmp")
    fig.savefig(tmp, dpi=DPI, format="png", metadata=metadata)
    os.replace(tmp, path)
    return path


def robust_limits(values, percentiles=CONF_PERCENTILES):
    """(low, high) colour limits: the given percentiles of the finite ``values``.

    At least ``MIN_SPAN`` apart (centred on a constant map); (0, 1) if nothing is finite.
    """
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if not values.size:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(values, percentiles))
    if high - low < MIN_SPAN:
        middle = (low + high) / 2
        low, high = middle - MIN_SPAN / 2, middle + MIN_SPAN / 2
    return low, high


def qualitative_limits(rows):
    """Colour limits of ``qualitative_grid``: ``{"depth": (vmin, vmax), "confidence": (low, high)}``.

    Depth (ground truth and prediction share it): the range of the valid ground truth
    over all rows.  Confidence: ``robust_limits`` of every row's map together, so rows compare.
    """
    valid = np.concatenate([r["gt"][np.isfinite(r["gt"]) & (r["gt"] > 0)] for r in rows])
    depth = (float(valid.min()), float(valid.max())) if valid.size else (0.0, 10.0)
    confidence = robust_limits(np.concatenate([np.ravel(r["conf"]) for r in rows]))
    return {"depth": depth, "confidence": confidence}


def grid_size_px(n_rows, gt_shape):
    """(width, height) in pixels of ``qualitative_grid`` for ``n_rows`` rows of ``gt_shape`` (H, W)."""
    row_px = int(round(PANEL_PX * gt_shape[0] / gt_shape[1]))
    return len(COLUMNS) * PANEL_PX, n_rows * row_px + TITLE_PX + COLORBAR_PX


def qualitative_grid(rows, t_semi, path, caption=None):
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

    Colour limits are those of ``qualitative_limits(rows)``; a strip at the bottom
    holds the depth colorbar (ground truth and prediction), the confidence
    colorbar (with T marked when it falls inside) and the mask's legend.  The
    limits are also in the PNG's text fields ``depth_vmin``, ``depth_vmax``,
    ``confidence_vmin``, ``confidence_vmax`` and ``t_semi``.
    """
    from matplotlib import colormaps
    from matplotlib.patches import Patch
    # grey through the colormap: the axes' face colour is hidden with the axes
    depth_cmap = colormaps[DEPTH_CMAP].with_extremes(bad=INVALID_COLOUR)
    gt_shape = rows[0]["gt"].shape
    width_px, height_px = grid_size_px(len(rows), gt_shape)
    row_px = (height_px - TITLE_PX - COLORBAR_PX) / len(rows)
    limits = qualitative_limits(rows)
    (vmin, vmax), (cmin, cmax) = limits["depth"], limits["confidence"]
    n_cols = len(COLUMNS)

    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    for col, title in enumerate(COLUMNS):
        label = title.replace("T", "%.2g" % t_semi) if col == 4 else title
        fig.text((col + 0.5) / n_cols, 1 - TITLE_PX / 2 / height_px, label, ha="center", va="center", fontsize=8)
    images = {}
    for r, row in enumerate(rows):
        gt = np.where(np.isfinite(row["gt"]) & (row["gt"] > 0), row["gt"], np.nan)
        panels = [
            (row["image"], {}),
            (np.ma.masked_invalid(gt), dict(cmap=depth_cmap, vmin=vmin, vmax=vmax)),
            (row["pred"], dict(cmap=depth_cmap, vmin=vmin, vmax=vmax)),
            (row["conf"], dict(cmap=CONF_CMAP, vmin=cmin, vmax=cmax)),
            (row["conf"] >= t_semi, dict(cmap="gray", vmin=0, vmax=1)),
        ]
        bottom = (height_px - TITLE_PX - (r + 1) * row_px) / height_px
        for col, (picture, style) in enumerate(panels):
            ax = fig.add_axes([col / n_cols, bottom, 1 / n_cols, row_px / height_px])
            images[col] = ax.imshow(picture, aspect="auto", interpolation="nearest", **style)
            ax.set_axis_off()
        fig.text(0.002, bottom + 0.5 * row_px / height_px, "#%d" % row["id"], fontsize=7,
                 color="white", va="center")

    # colorbars in the bottom strip: one for both depth columns, one for the confidence
    bar_bottom, bar_height = 0.62 * COLORBAR_PX / height_px, 0.14 * COLORBAR_PX / height_px
    depth_ax = fig.add_axes([1.1 / n_cols, bar_bottom, 1.8 / n_cols, bar_height])
    bar = fig.colorbar(images[1], cax=depth_ax, orientation="horizontal")
    bar.set_label("depth (m); grey: no ground truth", fontsize=7, labelpad=1)
    bar.ax.tick_params(labelsize=7)
    conf_ax = fig.add_axes([3.1 / n_cols, bar_bottom, 0.8 / n_cols, bar_height])
    bar = fig.colorbar(images[3], cax=conf_ax, orientation="horizontal")
    bar.set_label("confidence C (%g-%g: 2nd-98th pct.)" % (round(cmin, 3), round(cmax, 3)), fontsize=7, labelpad=1)
    bar.ax.tick_params(labelsize=7)
    if cmin <= t_semi <= cmax:
        conf_ax.axvline(t_semi, color="red", linewidth=2.5)
    legend = [Patch(facecolor="white", edgecolor="black", label="C >= %.2g: pseudo-label kept" % t_semi),
              Patch(facecolor="black", edgecolor="black", label="C < %.2g: not used" % t_semi)]
    fig.legend(handles=legend, loc="center", bbox_to_anchor=((4 + 0.5) / n_cols, 0.45 * COLORBAR_PX / height_px),
               fontsize=7, frameon=False, handlelength=1.2)
    metadata = {"depth_vmin": "%.6g" % vmin, "depth_vmax": "%.6g" % vmax, "confidence_vmin": "%.6g" % cmin,
                "confidence_vmax": "%.6g" % cmax, "t_semi": "%.6g" % t_semi}
    return _save(fig, path, metadata, caption)


def sparsification_plot(result, path, caption=None):
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
    fig.tight_layout(rect=(0, 0.04 if caption else 0, 1, 1))
    return _save(fig, path, caption=caption)


RELIABILITY_YLABEL = "mean target Y (bars); share of pixels (line)"


def reliability_plot(result, path, caption=None):
    """Mean eq.-1 target and share of pixels per confidence bin of ``ReliabilityAccumulator.result()``."""
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
    ax.set_ylabel(RELIABILITY_YLABEL)  # both curves share the 0..1 axis
    err = result["calibration_error"]
    ax.set_title("reliability (calibration error %s)" % ("n/a" if err is None else "%.3f" % err), fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout(rect=(0, 0.04 if caption else 0, 1, 1))
    return _save(fig, path, caption=caption)
