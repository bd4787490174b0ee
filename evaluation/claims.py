"""The paper's two claims on data we can run: Table 1's ordering and Table 2's gain.

    python -m evaluation.claims pseudo RUN             # RUN/pseudo_sweep.json (per run, after training)
    python -m evaluation.claims report OUT [--docs D]  # OUT/claims.{md,json}, OUT/claims_rel.png

``scripts/claims.sh`` trains seeds x {lambda 0, 0.1, control 1e-6} into
``OUT/seed<S>_lambda<L>``, runs ``evaluate.py --table1`` and ``pseudo`` on each, then
``report``.  The control keeps the unlabeled images in the batches (which matters with
BatchNorm on batch statistics) but scales L_semi's gradient to nothing, so lambda 0.1
vs control is the share of L_semi itself.

``pseudo`` scores the final networks' pseudo-labels on the unlabeled training rows
at many thresholds T in one pass, with the same definitions as ``evaluate.py
--table1`` (rel pooled over valid pixels with C >= T, at 1/4 resolution; kept =
share of all pixels with C >= T), so it also gives T = 0.9 when a run trained with
another T.  It adds what a diagnosis needs: calibration per confidence bin (mean C
against the mean eq. 1 target), and the pseudo-labels actually cached by the last
epoch (what L_semi would have pulled towards) next to the final model on the
same pixels.

``report`` reads config.json, metrics.jsonl, eval.json, table1.json and
pseudo_sweep.json of every run, pairs lambda = 0 and 0.1 by seed and writes the
tables; nothing is selected on the test set (eval.json scores the LAST checkpoint,
the per-epoch test curves are for display).
"""
import argparse
import glob
import json
import os
import shutil
import sys

import numpy as np

from training.checkpoint import write_json_atomic

from . import EvaluationError
from .report import read_json

TABLE2 = ("rel", "log10", "rms", "d1", "d2", "d3")
LOWER_IS_BETTER = {"rel", "log10", "rms"}
SWEEP = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
PAPER_T = 0.9


# ---- per run: pseudo-labels at many thresholds ------------------------------------------
def pseudo_sweep(run_dir, batch_size=8):
    """Pseudo-label quality of the run's LAST checkpoint on its unlabeled rows (see module doc)."""
    from data.dataset import UnlabeledDataset, read_depths
    from evaluate import load_run
    from evaluation.inference import predict
    from evaluation.metrics import PROTOCOLS, ErrorAccumulator, valid_mask
    from training.checkpoint import checkpoint_dir, load_state
    args = argparse.Namespace(run=run_dir, checkpoint="last", data=None, table1=True, gpus=[])
    run = load_run(args)
    cfg, full = run["config"], PROTOCOLS["full"]
    t_run, alpha = float(cfg["t_semi"]), float(cfg["alpha"])
    thresholds = sorted(set(SWEEP) | {t_run})
    train_path = os.path.join(run["data"], "train.h5")
    rows = np.asarray(run["split"]["unlabeled_rows"], np.int64)
    _, cache = load_state(checkpoint_dir(run_dir, "last"))
    cached = cache["written"].asnumpy() >= 0
    cache_depth, cache_conf = cache["depth"].asnumpy()[:, 0], cache["conf"].asnumpy()[:, 0]
    model = {t: ErrorAccumulator(full) for t in thresholds}
    kept = dict.fromkeys(thresholds, 0)
    edges = list(SWEEP) + [1.0 + 1e-9]
    bins = [{"lo": lo, "hi": min(hi, 1.0), "n": 0, "conf": 0.0, "target": 0.0, "rel": 0.0}
            for lo, hi in zip(edges[:-1], edges[1:])]
    lag = {t: (ErrorAccumulator(full), ErrorAccumulator(full)) for t in (t_run, PAPER_T)}
    n_pixels = 0
    for ids, depth, conf in predict(*run["nets"], UnlabeledDataset(train_path, rows), batch_size,
                                    run["ctxs"], progress=False):
        gt = read_depths(train_path, rows[ids], quarter=True)
        n_pixels += conf.size
        for k, i in enumerate(ids):
            valid = valid_mask(gt[k], full)
            for t in thresholds:
                kept[t] += int((conf[k] >= t).sum())
                model[t].add(gt[k], depth[k], mask=conf[k] >= t)
            rel = np.abs(np.maximum(depth[k][valid], full.pred_min) - gt[k][valid]) / gt[k][valid]
            for b in bins:
                inside = (conf[k][valid] >= b["lo"]) & (conf[k][valid] < b["hi"] + (b["hi"] == 1.0))
                b["n"] += int(inside.sum())
                b["conf"] += float(conf[k][valid][inside].sum())
                b["target"] += float(np.exp(-alpha * rel[inside]).sum())
                b["rel"] += float(rel[inside].sum())
            if cached[i]:  # the pseudo-label of the last epoch vs the final model, same pixels
                for t, (old, new) in lag.items():
                    mask = cache_conf[i] >= t
                    old.add(gt[k], cache_depth[i], mask=mask)
                    new.add(gt[k], depth[k], mask=mask)
    for b in bins:
        for key in ("conf", "target", "rel"):
            b[key] = b[key] / b["n"] if b["n"] else None
    train_mode = batch_stats_rel(run, train_path, rows, cache_conf, cached, (t_run, PAPER_T))
    return {"run": os.path.basename(os.path.normpath(run_dir)), "t_semi": t_run, "alpha": alpha,
            "n_images": int(len(rows)),
            "rows": [{"t": t, "rel": _rel(model[t]), "kept_fraction": kept[t] / max(n_pixels, 1),
                      "n_pixels": model[t].n_pixels} for t in thresholds],
            "calibration": bins,
            "cache": {"written_fraction": float(cached.mean()) if cached.size else 0.0,
                      "rows": [{"t": t, "cached_rel": _rel(old), "final_rel": _rel(new),
                                "final_batch_stats_rel": train_mode[t], "n_pixels": old.n_pixels}
                               for t, (old, new) in sorted(lag.items())]}}


def batch_stats_rel(run, train_path, rows, cache_conf, cached, thresholds, batch_size=16):
    """rel of the final depth net run as in training (BatchNorm on batch statistics, batches of
    ``batch_size`` unlabeled images, about a training step's 4 + 12), on the pixels C_cached >= T.

    Separates the two reasons a cached pseudo-label differs from the final network's
    prediction: the epoch lag (cached vs this) and the BatchNorm mode (this vs final).
    Running statistics this pass updates in memory are never saved.
    """
    import mxnet as mx
    from mxnet import autograd
    from data.dataset import UnlabeledDataset, read_depths
    from evaluation.metrics import PROTOCOLS, ErrorAccumulator
    accs = {t: ErrorAccumulator(PROTOCOLS["full"]) for t in thresholds}
    depth_net, ctx = run["nets"][0], run["ctxs"][0]
    loader = mx.gluon.data.DataLoader(UnlabeledDataset(train_path, rows), batch_size=batch_size, shuffle=False)
    for images, ids in loader:
        with autograd.train_mode():
            depth = depth_net(images.as_in_context(ctx)).asnumpy()[:, 0]
        ids = ids.asnumpy().astype(np.int64)
        gt = read_depths(train_path, rows[ids], quarter=True)
        for k, i in enumerate(ids):
            if cached[i]:
                for t, acc in accs.items():
                    acc.add(gt[k], depth[k], mask=cache_conf[i] >= t)
    return {t: _rel(acc) for t, acc in accs.items()}


def _rel(acc):
    return acc.result()["rel"] if acc.n_pixels else None


# ---- aggregation ---------------------------------------------------------------------------
def load_runs(out):
    """Every finished run under ``out``: its config, per-epoch metrics and evaluation files."""
    runs = []
    for cfg_path in sorted(glob.glob(os.path.join(out, "seed*_lambda*", "config.json"))):
        d = os.path.dirname(cfg_path)
        with open(os.path.join(d, "metrics.jsonl")) as f:
            history = [json.loads(line) for line in f if line.strip()]
        runs.append({"dir": d, "config": read_json(cfg_path), "history": history,
                     "eval": read_json(os.path.join(d, "eval.json")), "table1": read_json(os.path.join(d, "table1.json")),
                     "sweep": read_json(os.path.join(d, "pseudo_sweep.json"), required=False)})
    if not runs:
        raise EvaluationError("no run directories seed*_lambda* with config.json under %s" % out)
    return runs


def mean_std(values):
    """(mean, sample std) of the non-None values; std None with fewer than two."""
    v = [x for x in values if x is not None]
    if not v:
        return None, None
    return float(np.mean(v)), (float(np.std(v, ddof=1)) if len(v) > 1 else None)


def paired(base, semi, metric):
    """lambda=0.1 minus lambda=0 per seed, its mean/std, paired t-test and the sign count."""
    from scipy.stats import ttest_rel
    diffs = [s - b for b, s in zip(base, semi)]
    better = [(d < 0) if metric in LOWER_IS_BETTER else (d > 0) for d in diffs]
    t = p = None
    if len(diffs) > 1 and np.std(diffs) > 0:
        res = ttest_rel(semi, base)
        t, p = float(res.statistic), float(res.pvalue)
    m, s = mean_std(diffs)
    return {"diffs": diffs, "diff_mean": m, "diff_std": s, "t": t, "p": p,
            "improved": int(sum(better)), "n": len(diffs)}


def table1_entry(run):
    """Rows T -> (rel, kept) of one run: T = its own t_semi and 0 from evaluate.py, T = 0.9 from the sweep."""
    rows = {float(r["t_semi"]): {"rel": r["rel"], "kept_fraction": r["kept_fraction"], "source": "evaluate.py --table1"}
            for r in run["table1"]["rows"]}
    if PAPER_T not in rows and run["sweep"]:
        r = next(r for r in run["sweep"]["rows"] if abs(r["t"] - PAPER_T) < 1e-9)
        rows[PAPER_T] = {"rel": r["rel"], "kept_fraction": r["kept_fraction"], "source": "claims pseudo"}
    return rows


def ordered(entries, t):
    """Seeds where rel(T) < rel(0), out of the seeds that kept any pixel at T (None for T = 0 or none kept)."""
    scored = [e for e in entries if e[t]["rel"] is not None]
    if t == 0 or not scored:
        return None
    return [sum(1 for e in scored if e[t]["rel"] < e[0.0]["rel"]), len(scored)]


def test_curves(runs):
    """Per lambda: epochs and mean/std over seeds of the per-epoch test rel (--track-test)."""
    curves = {}
    for lam in sorted({r["config"]["lambda_semi"] for r in runs}):
        series = [[m["test"]["rel"] for m in r["history"] if m.get("test")] for r in runs
                  if r["config"]["lambda_semi"] == lam]
        n = min(len(s) for s in series) if series else 0
        if n:
            arr = np.array([s[:n] for s in series])
            curves["%g" % lam] = {"epoch": list(range(1, n + 1)), "mean": arr.mean(0).tolist(),
                                  "std": (arr.std(0, ddof=1) if len(arr) > 1 else np.zeros(n)).tolist(),
                                  "n_seeds": len(arr)}
    return curves


def coverage(runs, lam):
    """Per epoch of the runs with this lambda: mean over seeds of mask coverage, L_sup and L_semi."""
    semi = [r for r in runs if r["config"]["lambda_semi"] == lam]
    out = []
    for e in range(min((len(r["history"]) for r in semi), default=0)):
        ms = [r["history"][e] for r in semi]
        out.append({"epoch": e + 1, "phase": ms[0]["phase"],
                    "coverage_pct": mean_std([m.get("mask_coverage_pct") for m in ms])[0],
                    "semi": mean_std([m.get("semi") for m in ms])[0],
                    "sup": mean_std([m.get("sup") for m in ms])[0]})
    return out


def aggregate(runs, setup=None):
    """Everything claims.md shows, as one JSON-able dict."""
    by = {(r["config"]["seed"], r["config"]["lambda_semi"]): r for r in runs}
    lams = sorted({lam for _, lam in by})
    semi_lam = max(lams)
    seeds = sorted({s for s, _ in by if (s, 0.0) in by and (s, semi_lam) in by})
    # A control arm: lambda so small that L_semi's gradient is nil, but the same unlabeled
    # forward passes (with BatchNorm on batch statistics they change the labeled outputs too).
    control = next((lam for lam in lams if 0 < lam < semi_lam and all((s, lam) in by for s in seeds)), None)
    cfg = runs[0]["config"]
    per_seed = [{"seed": s, "lambda": lam, "metrics": {m: by[s, lam]["eval"]["metrics"][m] for m in TABLE2},
                 "table1": {"%g" % t: v for t, v in sorted(table1_entry(by[s, lam]).items(), reverse=True)}}
                for s in seeds for lam in (0.0, control, semi_lam) if lam is not None]
    t2 = {}
    for m in TABLE2:
        base = [by[s, 0.0]["eval"]["metrics"][m] for s in seeds]
        semi = [by[s, semi_lam]["eval"]["metrics"][m] for s in seeds]
        t2[m] = dict(paired(base, semi, m), base=mean_std(base), semi=mean_std(semi))
        if control is not None:
            ctrl = [by[s, control]["eval"]["metrics"][m] for s in seeds]
            t2[m]["control"] = mean_std(ctrl)
            t2[m]["semi_vs_control"] = paired(ctrl, semi, m)
            t2[m]["control_vs_base"] = paired(base, ctrl, m)
    t1 = {}
    for lam in (0.0, semi_lam):
        entries = [table1_entry(by[s, lam]) for s in seeds]
        t1["%g" % lam] = {"%g" % t: {"rel": mean_std([e[t]["rel"] for e in entries]),
                                     "kept_fraction": mean_std([e[t]["kept_fraction"] for e in entries]),
                                     "ordered": ordered(entries, t)}
                          for t in sorted(entries[0], reverse=True)}
    diag = {"coverage": coverage(runs, semi_lam), "sweep": {}, "cache": {}, "calibration": {}}
    diag["sup_by_lambda"] = {"%g" % lam: [e["sup"] for e in coverage(runs, lam)]
                             for lam in (0.0, control, semi_lam) if lam is not None}
    for lam in (0.0, semi_lam):
        sweeps = [by[s, lam]["sweep"] for s in seeds if by[s, lam]["sweep"]]
        if not sweeps:
            continue
        diag["sweep"]["%g" % lam] = [{"t": row["t"], "rel": mean_std([sw["rows"][i]["rel"] for sw in sweeps]),
                                      "kept_fraction": mean_std([sw["rows"][i]["kept_fraction"] for sw in sweeps])}
                                     for i, row in enumerate(sweeps[0]["rows"])]
        diag["calibration"]["%g" % lam] = [
            {"lo": b["lo"], "hi": b["hi"], "n": sum(sw["calibration"][i]["n"] for sw in sweeps),
             "conf": mean_std([sw["calibration"][i]["conf"] for sw in sweeps])[0],
             "target": mean_std([sw["calibration"][i]["target"] for sw in sweeps])[0],
             "rel": mean_std([sw["calibration"][i]["rel"] for sw in sweeps])[0]}
            for i, b in enumerate(sweeps[0]["calibration"])]
        if lam > 0:
            diag["cache"] = [{"t": row["t"], "cached_rel": mean_std([sw["cache"]["rows"][i]["cached_rel"] for sw in sweeps]),
                              "final_rel": mean_std([sw["cache"]["rows"][i]["final_rel"] for sw in sweeps]),
                              "final_batch_stats_rel": mean_std([sw["cache"]["rows"][i].get("final_batch_stats_rel")
                                                                 for sw in sweeps]),
                              "n_pixels": sum(sw["cache"]["rows"][i]["n_pixels"] for sw in sweeps)}
                             for i, row in enumerate(sweeps[0]["cache"]["rows"])]
    return {"setup": dict(setup or {}, seeds=seeds, lambdas=[0.0, semi_lam], control_lambda=control,
                          **{k: cfg.get(k) for k in ("labeled_frac", "epochs", "semi_start", "t_semi", "lr",
                                                     "batch_size", "pretrained", "input_size", "val_frac", "alpha")}),
            "table1": {"per_seed": per_seed, "summary": t1}, "table2": t2, "per_seed": per_seed,
            "curves": test_curves(runs), "diagnosis": diag}


# ---- writing -------------------------------------------------------------------------------
def _f(x, d=3):
    return "—" if x is None else "%.*f" % (d, x)


def _ms(pair, d=3):
    m, s = pair
    return "—" if m is None else ("%.*f" % (d, m) if s is None else "%.*f ± %.*f" % (d, m, d, s))


def markdown(c):
    s, t2, t1 = c["setup"], c["table2"], c["table1"]
    n, semi_lam = len(s["seeds"]), s["lambdas"][1]
    L = ["# Claims on the synthetic set: Table 1 ordering and Table 2 gain", ""]
    L += ["Data: %s synthetic scenes (%s train sources, %s test), inputs %s, %s rows per training source; "
          "labeled fraction %g, seeds %s (a seed sets split, initialisation and shuffling; λ = 0 and λ = %g "
          "share it). Schedule: %d epochs, L_semi from epoch %d (0-based; paper: 100 / 40), T_semi %g, "
          "lr %g from scratch (pretrained %s), batch %s. Evaluation: LAST checkpoint, protocol `%s`."
          % (s.get("n_scenes", "?"), s.get("n_train", "?"), s.get("n_test", "?"),
             "x".join(str(v) for v in s.get("input_size") or []), s.get("copies", "?"), s["labeled_frac"],
             ", ".join(map(str, s["seeds"])), semi_lam, s["epochs"], s["semi_start"], s["t_semi"], s["lr"],
             s["pretrained"], s["batch_size"], s.get("protocol", "eigen")), ""]
    if s.get("wall_seconds") is not None:
        L += ["Wall time %.1f min on %s (%s cores, shared with other jobs)." % (
            s["wall_seconds"] / 60, s.get("cpu", "?"), s.get("cores", "?")), ""]
    if s.get("why"):
        L += ["Why these settings: " + s["why"], ""]
    L += ["## Table 2 analogue: test set, λ = 0 vs λ = %g" % semi_lam, "",
          "| metric | λ = 0 | λ = %g | Δ (λ%g − λ0) | paired t | p | seeds improved |" % (semi_lam, semi_lam),
          "|---|---:|---:|---:|---:|---:|---:|"]
    for m in TABLE2:
        r = t2[m]
        L.append("| %s%s | %s | %s | %s | %s | %s | %d/%d |" % (
            m, " ↓" if m in LOWER_IS_BETTER else " ↑", _ms(r["base"]), _ms(r["semi"]),
            _ms((r["diff_mean"], r["diff_std"]), 4), _f(r["t"], 2), _f(r["p"], 3), r["improved"], r["n"]))
    if s.get("control_lambda") is not None:
        L += control_lines(c)
    wins = [m for m in TABLE2 if t2[m]["improved"] == n]
    sig = [m for m in TABLE2 if t2[m]["p"] is not None and t2[m]["p"] < 0.05]
    L += ["", "Per seed:", "", "| seed | λ | " + " | ".join(TABLE2) + " |", "|---|---|" + "---:|" * len(TABLE2)]
    for p in c["per_seed"]:
        L.append("| %d | %g | %s |" % (p["seed"], p["lambda"], " | ".join(_f(p["metrics"][m]) for m in TABLE2)))
    L += ["", "Reading: %d of 6 metrics improve on all %d seeds (%s); %d of 6 have p < 0.05 (%s). With n = %d "
          "paired seeds a t-test has little power: only a large, consistent effect would reach p < 0.05, and "
          "a sign count of %d/%d happens by chance with probability %.3f for one metric; the six metrics are "
          "strongly correlated, so they are not six independent confirmations. The paper's Table 2 gains are "
          "small (rel −0.003 at 1/4 labeled, one run each)." % (
              len(wins), n, ", ".join(wins) or "none", len(sig), ", ".join(sig) or "none", n, n, n, 0.5 ** n), ""]
    L += ["## Table 1 analogue: pseudo-labels of the unlabeled training images", "",
          "rel pooled over the valid pixels with confidence C ≥ T (1/4 resolution); kept = share of all "
          "unlabeled pixels with C ≥ T. Rows at T = %g (the runs' threshold) and T = 0 come from "
          "`evaluate.py --table1`; T = 0.9 (the paper's) from `python -m evaluation.claims pseudo` with the same "
          "definitions. *ordered* = seeds where rel(T) < rel(T = 0), the paper's claim, out of the seeds that "
          "kept any pixel at T (— when none did)." % s["t_semi"], "",
          "| λ | T | rel (mean ± std) | kept (mean ± std) | ordered |", "|---|---|---:|---:|---:|"]
    for lam, rows in t1["summary"].items():
        for t, r in rows.items():
            L.append("| %s | %s | %s | %s | %s |" % (lam, t, _ms(r["rel"]), _ms(r["kept_fraction"]),
                                                      "—" if r["ordered"] is None else "%d/%d" % tuple(r["ordered"])))
    L += ["", "Per seed:", "", "| seed | λ | T | rel | kept |", "|---|---|---|---:|---:|"]
    for p in c["per_seed"]:
        for t, r in p["table1"].items():
            L.append("| %d | %g | %s | %s | %s |" % (p["seed"], p["lambda"], t, _f(r["rel"]), _f(r["kept_fraction"])))
    L += ["", "## Test rel over epochs", "", "![test rel per epoch](claims_rel.png)", "",
          "Mean over seeds, band = ±1 std, from the per-epoch `test` entries of metrics.jsonl (`--track-test`). "
          "For display only: no checkpoint, epoch or setting was chosen with them.", ""]
    L += diagnosis_lines(c)
    return "\n".join(L) + "\n"


def control_lines(c):
    """λ = 0 vs control vs λ = 0.1: which part of the difference L_semi itself makes."""
    s, t2, n = c["setup"], c["table2"], len(c["setup"]["seeds"])
    lam, ctrl = s["lambdas"][1], s["control_lambda"]
    L = ["", "Attribution. With BatchNorm on batch statistics (training from scratch), every step of a λ > 0 run "
         "puts the unlabeled images into the same batch as the labeled ones, which changes the labeled "
         "outputs and gradients even where L_semi is 0. The control arm λ = %g runs exactly those batches, "
         "fill and cache (same seeds), but L_semi's gradient is scaled to nothing. Δ batches = control − λ0; "
         "Δ L_semi = λ%g − control; each with paired t-test p and seeds improved:" % (ctrl, lam), "",
         "| metric | λ = 0 | control λ = %g | λ = %g | Δ batches | p | improved | Δ L_semi | p | improved |"
         % (ctrl, lam), "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in TABLE2:
        r, a, b = t2[m], t2[m]["control_vs_base"], t2[m]["semi_vs_control"]
        L.append("| %s | %s | %s | %s | %s | %s | %d/%d | %s | %s | %d/%d |" % (
            m, _ms(r["base"]), _ms(r["control"]), _ms(r["semi"]), _f(a["diff_mean"], 4), _f(a["p"], 3),
            a["improved"], n, _f(b["diff_mean"], 4), _f(b["p"], 3), b["improved"], n))
    r = t2["rel"]
    L += ["", "Reading: λ %g − λ 0 changes rel by %+.4f; the control, without L_semi, by %+.4f; L_semi itself "
          "(λ %g − control) by %+.4f (improves on %d/%d seeds, p %s). L_semi improves all %d seeds on %d of 6 "
          "metrics." % (lam, r["diff_mean"], r["control_vs_base"]["diff_mean"], lam,
                       r["semi_vs_control"]["diff_mean"], r["semi_vs_control"]["improved"], n,
                       _f(r["semi_vs_control"]["p"], 3), n,
                       sum(1 for m in TABLE2 if t2[m]["semi_vs_control"]["improved"] == n))]
    return L


def diagnosis_lines(c):
    d, s = c["diagnosis"], c["setup"]
    sups = d.get("sup_by_lambda", {})
    L = ["## Diagnosis: what L_semi had to work with", "",
         "Mask coverage (share of unlabeled pixels with C ≥ T in the cache of the previous epoch) and L_semi "
         "of the λ = %g runs, and the training L_sup (labeled images) of every arm, means over seeds:"
         % s["lambdas"][1], "",
         "| epoch | phase (λ %g) | %s | L_semi | coverage %% |" % (
             s["lambdas"][1], " | ".join("L_sup λ %s" % lam for lam in sups)),
         "|---:|---|" + "---:|" * (len(sups) + 2)]
    for i, e in enumerate(d["coverage"]):
        L.append("| %d | %s | %s | %s | %s |" % (
            e["epoch"], e["phase"], " | ".join(_f(v[i]) if i < len(v) else "—" for v in sups.values()),
            _f(e["semi"], 4), _f(e["coverage_pct"], 1)))
    for lam, rows in d["sweep"].items():
        L += ["", "Pseudo-label error against threshold, final networks of λ = %s (mean over seeds):" % lam, "",
              "| T | " + " | ".join("%g" % r["t"] for r in rows) + " |", "|---|" + "---:|" * len(rows),
              "| rel | " + " | ".join(_f(r["rel"][0]) for r in rows) + " |",
              "| kept | " + " | ".join(_f(r["kept_fraction"][0]) for r in rows) + " |"]
    for lam, bins in d["calibration"].items():
        L += ["", "Calibration of C on the unlabeled valid pixels, λ = %s: mean C per bin against the mean of its "
              "eq. 1 target exp(−α·rel) (a calibrated net has them equal):" % lam, "",
              "| C bin | pixels | mean C | mean target | mean rel |", "|---|---:|---:|---:|---:|"]
        for b in bins:
            L.append("| [%.1f, %.1f) | %d | %s | %s | %s |" % (b["lo"], b["hi"], b["n"], _f(b["conf"]),
                                                               _f(b["target"]), _f(b["rel"])))
    if d["cache"]:
        L += ["", "Epoch lag: the pseudo-labels cached in the last epoch (made by the network while it trained "
              "through that epoch, in training mode) against the final network, on the same pixels C_cached ≥ T. "
              "*batch statistics* runs the final network as in training (BatchNorm on the statistics of "
              "batches of 16 unlabeled images): cached vs it is the epoch lag, it vs final is the BatchNorm mode.", "",
              "| T | pixels | cached pseudo-label rel | final, batch statistics | final network rel |",
              "|---|---:|---:|---:|---:|"]
        for r in d["cache"]:
            L.append("| %g | %d | %s | %s | %s |" % (r["t"], r["n_pixels"], _ms(r["cached_rel"]),
                                                     _ms(r.get("final_batch_stats_rel", (None, None))),
                                                     _ms(r["final_rel"])))
    cov = [e["coverage_pct"] for e in d["coverage"] if e["coverage_pct"] is not None]
    L += ["", "In short:", ""] + ["- %s." % f for f in diagnosis_facts(c, cov)] + [""]
    return L


def diagnosis_facts(c, cov):
    """Plain statements that follow from the numbers (no interpretation beyond them)."""
    facts, s, d = [], c["setup"], c["diagnosis"]
    if cov:
        facts.append("mean coverage over the semi epochs %.1f%% (min %.1f%%, max %.1f%%)"
                     % (float(np.mean(cov)), min(cov), max(cov)))
        if max(cov) == 0:
            facts.append("no pixel ever passed T = %g, so L_semi was identically 0: the two λ differ only "
                         "through the fill/semi forward passes, not through L_semi" % s["t_semi"])
    for lam, rows in c["table1"]["summary"].items():
        t0 = rows.get("0", {}).get("rel", (None,))[0]
        tr = rows.get("%g" % s["t_semi"], {}).get("rel", (None,))[0]
        kept = rows.get("%g" % s["t_semi"], {}).get("kept_fraction", (None,))[0]
        if t0 is not None and tr is not None:
            facts.append("λ = %s: pixels with C ≥ %g (%.1f%% of them) have rel %.4f vs %.4f for all (%+.4f)"
                         % (lam, s["t_semi"], 100 * kept, tr, t0, tr - t0))
    for lam, bins in d["calibration"].items():
        total = sum(b["n"] for b in bins)
        top = max(bins, key=lambda b: b["n"])
        if total:
            facts.append("λ = %s: %.1f%% of the unlabeled valid pixels have C in [%.1f, %.1f), i.e. the confidence "
                         "barely varies from pixel to pixel" % (lam, 100.0 * top["n"] / total, top["lo"], top["hi"])
                         if top["n"] > 0.9 * total else
                         "λ = %s: the largest confidence bin [%.1f, %.1f) holds %.1f%% of the unlabeled valid pixels"
                         % (lam, top["lo"], top["hi"], 100.0 * top["n"] / total))
    for lam, rows in d["sweep"].items():  # the threshold that would have selected best, for the record
        best = min((r for r in rows if r["rel"][0] is not None and r["kept_fraction"][0] >= 0.1),
                   key=lambda r: r["rel"][0], default=None)
        if best and best["t"] != s["t_semi"]:
            facts.append("λ = %s: among thresholds keeping ≥ 10%% of pixels, T = %g selects best after training "
                         "(rel %.3f, %.0f%% kept); training used T = %g, fixed before (not tuned on this)"
                         % (lam, best["t"], best["rel"][0], 100 * best["kept_fraction"][0], s["t_semi"]))
    sups = d.get("sup_by_lambda", {})
    fill = next((i for i, e in enumerate(d["coverage"]) if e["phase"] == "fill"), None)
    if fill is not None and "0" in sups and len(sups) > 1:
        facts.append("in the fill epoch, before any L_semi, training L_sup is already %s for λ = 0 / %s "
                     "(BatchNorm batch statistics over labeled + unlabeled images)" % (
                         " / ".join(_f(v[fill]) for v in sups.values()), " / ".join(list(sups)[1:])))
    if d["cache"]:
        r = d["cache"][0]
        if r["cached_rel"][0] is not None and r["final_rel"][0] is not None:
            facts.append("at T = %g the cached pseudo-labels have rel %.4f, the final network %.4f (%.4f run "
                         "with batch statistics)" % (r["t"], r["cached_rel"][0], r["final_rel"][0],
                                                    (r.get("final_batch_stats_rel") or (float("nan"),))[0]))
    r = c["table2"]["rel"]
    if "semi_vs_control" in r and r["diff_mean"] < 0:
        own, batches = r["semi_vs_control"], r["control_vs_base"]
        if own["improved"] < own["n"] and abs(own["diff_mean"]) < abs(batches["diff_mean"]) / 2:
            facts.append("so the test-rel gain of λ = %g over λ = 0 (%+.4f) is reproduced by the control without "
                         "L_semi (%+.4f): it comes from the unlabeled images in the BatchNorm batches, not from "
                         "the semi-supervised loss, which by itself changes rel by %+.4f"
                         % (s["lambdas"][1], r["diff_mean"], batches["diff_mean"], own["diff_mean"]))
    return facts


def rel_plot(curves, semi_start, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for lam, cur in curves.items():
        e, m, sd = np.array(cur["epoch"]), np.array(cur["mean"]), np.array(cur["std"])
        ax.plot(e, m, marker=".", label="λ = %s (%d seeds)" % (lam, cur["n_seeds"]))
        ax.fill_between(e, m - sd, m + sd, alpha=0.2)
    if semi_start is not None:  # 1-based epochs on the axis: the fill epoch is semi_start
        ax.axvline(semi_start - 0.5, color="grey", ls=":", lw=1, label="unlabeled images enter (fill)")
        ax.axvline(semi_start + 0.5, color="grey", ls="--", lw=1, label="L_semi starts")
    ax.set(xlabel="epoch", ylabel="test rel (eigen)", title="test rel per epoch (display only)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_report(out, setup=None, docs=None):
    """claims.json, claims.md and claims_rel.png in ``out`` (and copies in ``docs``)."""
    claims = aggregate(load_runs(out), setup)
    written = []
    path = os.path.join(out, "claims.json")
    write_json_atomic(path, claims)
    written.append(path)
    path = os.path.join(out, "claims.md")
    with open(path + ".tmp", "w") as f:
        f.write(markdown(claims))
    os.replace(path + ".tmp", path)
    written.append(path)
    written.append(rel_plot(claims["curves"], claims["setup"]["semi_start"], os.path.join(out, "claims_rel.png")))
    if docs:
        os.makedirs(docs, exist_ok=True)
        for p in list(written):
            written.append(shutil.copy(p, os.path.join(docs, os.path.basename(p))))
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m evaluation.claims", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pseudo", help="RUN/pseudo_sweep.json: pseudo-label rel / kept / calibration per threshold")
    p.add_argument("run")
    p = sub.add_parser("report", help="OUT/claims.md, claims.json, claims_rel.png from OUT/seed*_lambda*")
    p.add_argument("out")
    p.add_argument("--setup", default=None, help="JSON file of facts the runs do not record (data size, time, machine)")
    p.add_argument("--docs", default=None, help="also copy the three outputs into this directory")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "pseudo":
            result = pseudo_sweep(args.run)
            path = os.path.join(args.run, "pseudo_sweep.json")
            write_json_atomic(path, result)
            for r in result["rows"]:
                print("T=%.2f  rel %s  kept %.3f" % (r["t"], _f(r["rel"], 4), r["kept_fraction"]))
            print(path)
        else:
            setup = read_json(args.setup) if args.setup else None
            print("\n".join(write_report(args.out, setup, args.docs)))
    except (EvaluationError, OSError, KeyError, ValueError) as err:
        print("error: %s" % err, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
