"""The paper's two claims on data we can run: Table 1's ordering and Table 2's gain.

    python -m evaluation.claims pseudo RUN             # RUN/pseudo_sweep.json (per run, after training)
    python -m evaluation.claims report OUT [--docs D]  # OUT/claims.{md,json}, OUT/claims_rel.png

``scripts/claims.sh`` trains seeds x arms into ``OUT/seed<S>_<ARM>``: the paper's arms
``lambda0`` and ``lambda0.1`` and any extra, named arm (a variant that departs from the
paper, reported beside it, never in its place), runs ``evaluate.py --table1`` and
``pseudo`` on each, then ``report``.

``pseudo`` scores the final networks' pseudo-labels on the unlabeled training rows
at many thresholds T in one pass, with the same definitions as ``evaluate.py
--table1`` (rel pooled over valid pixels with C >= T, at 1/4 resolution; kept =
share of all pixels with C >= T), so it also gives T = 0.9 when a run trained with
another T.  It adds what a diagnosis needs: calibration per confidence bin (mean C
against the mean eq. 1 target), the eq. 1 target and the confidence on the LABELED
rows (what the confidence net learned from), and the pseudo-labels actually cached by
the last epoch (what L_semi pulled towards) next to the final model on the same pixels.

``report`` reads config.json, metrics.jsonl, eval.json, table1.json and
pseudo_sweep.json of every run, pairs the arms by seed and writes the tables;
nothing is selected on the test set (eval.json scores the LAST checkpoint, the
per-epoch test curves are for display).
"""
import argparse
import glob
import json
import os
import shutil
import sys

import numpy as np

from common.files import read_json, write_json_atomic

from . import EvaluationError

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
    return {"run": os.path.basename(os.path.normpath(run_dir)), "t_semi": t_run, "alpha": alpha,
            "n_images": int(len(rows)),
            "rows": [{"t": t, "rel": _rel(model[t]), "kept_fraction": kept[t] / max(n_pixels, 1),
                      "n_pixels": model[t].n_pixels} for t in thresholds],
            "calibration": bins,
            "labeled": labeled_targets(run, train_path, alpha, thresholds=(t_run, PAPER_T)),
            "cache": {"written_fraction": float(cached.mean()) if cached.size else 0.0,
                      "rows": [{"t": t, "cached_rel": _rel(old), "final_rel": _rel(new),
                                "n_pixels": old.n_pixels}
                               for t, (old, new) in sorted(lag.items())]}}


def labeled_targets(run, train_path, alpha, thresholds, batch_size=8):
    """What the confidence net learned from: on the labeled rows, the eq. 1 target Y of the
    final depth net and the final confidence C.  C is trained towards Y with an L1 loss, so
    it tends to the conditional MEDIAN of Y: a pixel reaches C >= T only where most pixels
    like it have Y >= T, i.e. relative error <= -ln(T) / alpha (0.021 at T = 0.9, alpha = 5)."""
    from data.dataset import UnlabeledDataset, read_depths
    from evaluation.inference import predict
    rows = np.asarray(run["split"]["labeled_rows"], np.int64)
    targets, confs = [], []
    # UnlabeledDataset reads only the images of the rows; their depths come from read_depths
    for ids, depth, conf in predict(*run["nets"], UnlabeledDataset(train_path, rows), batch_size, run["ctxs"],
                                    progress=False):
        gt = read_depths(train_path, rows[ids], quarter=True)
        valid = np.isfinite(gt) & (gt > 0)
        targets.append(np.exp(-alpha * np.abs(depth[valid] - gt[valid]) / gt[valid]))
        confs.append(conf[valid])
    y, c = (np.concatenate(v) if v else np.zeros(0) for v in (targets, confs))
    if not y.size:
        return None
    return {"n_pixels": int(y.size), "target_quantiles": {"%g" % q: float(np.quantile(y, q))
                                                          for q in (0.1, 0.25, 0.5, 0.75, 0.9)},
            "target_mean": float(y.mean()), "conf_mean": float(c.mean()),
            "rows": [{"t": t, "target_at_least": float((y >= t).mean()), "conf_at_least": float((c >= t).mean())}
                     for t in sorted(set(thresholds))]}


def _rel(acc):
    return acc.result()["rel"] if acc.n_pixels else None


# ---- aggregation ---------------------------------------------------------------------------
BASE_ARM = "lambda0"


def load_runs(out):
    """Every finished run ``OUT/seed<S>_<ARM>``: its arm, config, per-epoch metrics and evaluation files."""
    runs = []
    for cfg_path in sorted(glob.glob(os.path.join(out, "seed*_*", "config.json"))):
        d = os.path.dirname(cfg_path)
        if not os.path.isfile(os.path.join(d, "eval.json")):
            print("warning: %s is not evaluated yet (unfinished?); left out" % d, file=sys.stderr)
            continue
        with open(os.path.join(d, "metrics.jsonl")) as f:
            history = [json.loads(line) for line in f if line.strip()]
        runs.append({"dir": d, "arm": os.path.basename(d).split("_", 1)[1], "config": read_json(cfg_path, error=EvaluationError),
                     "history": history, "eval": read_json(os.path.join(d, "eval.json"), error=EvaluationError),
                     "table1": read_json(os.path.join(d, "table1.json"), error=EvaluationError),
                     "sweep": read_json(os.path.join(d, "pseudo_sweep.json"), required=False, error=EvaluationError)})
    if not runs:
        raise EvaluationError("no run directories seed*_<arm> with config.json under %s" % out)
    return runs


def arms_of(runs):
    """(base, semi, extras): lambda0, the lambda arm with the largest lambda, the other named arms."""
    arms = {r["arm"]: r["config"]["lambda_semi"] for r in runs}
    if BASE_ARM not in arms:
        raise EvaluationError("no %s runs: the paper's supervised baseline is missing" % BASE_ARM)
    lams = [a for a in arms if a.startswith("lambda") and a != BASE_ARM]
    if not lams:
        raise EvaluationError("no lambda > 0 runs to compare with %s" % BASE_ARM)
    semi = max(lams, key=lambda a: arms[a])
    return BASE_ARM, semi, sorted(a for a in arms if a not in (BASE_ARM, semi))


def mean_std(values):
    """(mean, sample std) of the non-None values; std None with fewer than two."""
    v = [x for x in values if x is not None]
    if not v:
        return None, None
    return float(np.mean(v)), (float(np.std(v, ddof=1)) if len(v) > 1 else None)


def paired(base, semi, metric):
    """semi minus base per seed, its mean/std, paired t-test and the sign count."""
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
    """Per arm: epochs (0-based, as metrics.jsonl) and mean/std over seeds of the per-epoch test rel."""
    curves = {}
    for arm in sorted({r["arm"] for r in runs}):
        series = [[m["test"]["rel"] for m in r["history"] if m.get("test")] for r in runs if r["arm"] == arm]
        n = min(len(s) for s in series) if series else 0
        if n:
            arr = np.array([s[:n] for s in series])
            curves[arm] = {"epoch": list(range(n)), "mean": arr.mean(0).tolist(),
                           "std": (arr.std(0, ddof=1) if len(arr) > 1 else np.zeros(n)).tolist(),
                           "n_seeds": len(arr)}
    return curves


def coverage(runs, arm):
    """Per epoch of the runs of an arm: mean over seeds of mask coverage, L_sup, L_semi and L_conf."""
    mine = [r for r in runs if r["arm"] == arm]
    out = []
    for e in range(min((len(r["history"]) for r in mine), default=0)):
        ms = [r["history"][e] for r in mine]
        out.append({"epoch": e, "phase": ms[0]["phase"],
                    "coverage_pct": mean_std([m.get("mask_coverage_pct") for m in ms])[0],
                    "semi": mean_std([m.get("semi") for m in ms])[0],
                    "sup": mean_std([m.get("sup") for m in ms])[0],
                    "conf": mean_std([m.get("conf") for m in ms])[0]})
    return out


def confidence_steps(run):
    """Adam steps the confidence net took: one per training step of every epoch."""
    split = run_split(run)
    steps = int(np.ceil(len(split["labeled_rows"]) / run["config"]["batch_size"])) if split else None
    return steps * len(run["history"]) if steps else None


def run_split(run):
    return read_json(os.path.join(run["dir"], "split.json"), required=False, error=EvaluationError)


def sweep_summary(sweeps):
    """Mean over seeds of each pseudo_sweep row, calibration bin and labeled-target row."""
    out = {"sweep": [{"t": row["t"], "rel": mean_std([sw["rows"][i]["rel"] for sw in sweeps]),
                      "kept_fraction": mean_std([sw["rows"][i]["kept_fraction"] for sw in sweeps])}
                     for i, row in enumerate(sweeps[0]["rows"])],
           "calibration": [{"lo": b["lo"], "hi": b["hi"], "n": sum(sw["calibration"][i]["n"] for sw in sweeps),
                            "conf": mean_std([sw["calibration"][i]["conf"] for sw in sweeps])[0],
                            "target": mean_std([sw["calibration"][i]["target"] for sw in sweeps])[0],
                            "rel": mean_std([sw["calibration"][i]["rel"] for sw in sweeps])[0]}
                           for i, b in enumerate(sweeps[0]["calibration"])],
           "cache": [{"t": row["t"], "cached_rel": mean_std([sw["cache"]["rows"][i]["cached_rel"] for sw in sweeps]),
                      "final_rel": mean_std([sw["cache"]["rows"][i]["final_rel"] for sw in sweeps]),
                      "n_pixels": sum(sw["cache"]["rows"][i]["n_pixels"] for sw in sweeps)}
                     for i, row in enumerate(sweeps[0]["cache"]["rows"])]}
    labeled = [sw.get("labeled") for sw in sweeps if sw.get("labeled")]
    if labeled:
        out["labeled"] = {"target_median": mean_std([lb["target_quantiles"]["0.5"] for lb in labeled])[0],
                          "target_q90": mean_std([lb["target_quantiles"]["0.9"] for lb in labeled])[0],
                          "conf_mean": mean_std([lb["conf_mean"] for lb in labeled])[0],
                          "rows": [{"t": row["t"],
                                    "target_at_least": mean_std([lb["rows"][i]["target_at_least"] for lb in labeled])[0],
                                    "conf_at_least": mean_std([lb["rows"][i]["conf_at_least"] for lb in labeled])[0]}
                                   for i, row in enumerate(labeled[0]["rows"])]}
    return out


def freeze_bn(cfg):
    """Whether the backbone's BatchNorm was frozen (the rule of training.checkpoint.load_nets)."""
    if cfg.get("freeze_bn") is not None:
        return bool(cfg["freeze_bn"])
    return bool(cfg.get("pretrained") or cfg.get("backbone_params"))


def aggregate(runs, setup=None):
    """Everything claims.md shows, as one JSON-able dict."""
    by = {(r["config"]["seed"], r["arm"]): r for r in runs}
    base, semi, extras = arms_of(runs)
    seeds = sorted({s for s, _ in by if (s, base) in by and (s, semi) in by})
    extras = [a for a in extras if all((s, a) in by for s in seeds)]
    arms = [base, semi] + extras
    cfg = by[seeds[0], semi]["config"]
    per_seed = [{"seed": s, "arm": a, "lambda": by[s, a]["config"]["lambda_semi"],
                 "t_semi": by[s, a]["config"]["t_semi"],
                 "metrics": {m: by[s, a]["eval"]["metrics"][m] for m in TABLE2},
                 "table1": {"%g" % t: v for t, v in sorted(table1_entry(by[s, a]).items(), reverse=True)}}
                for s in seeds for a in arms]
    t2 = {}
    for m in TABLE2:
        values = {a: [by[s, a]["eval"]["metrics"][m] for s in seeds] for a in arms}
        t2[m] = dict(paired(values[base], values[semi], m), base=mean_std(values[base]), semi=mean_std(values[semi]),
                     extra={a: dict(paired(values[base], values[a], m), mean=mean_std(values[a])) for a in extras})
    t1 = {}
    for a in arms:
        entries = [table1_entry(by[s, a]) for s in seeds]
        key = "%g" % by[seeds[0], a]["config"]["lambda_semi"] if a in (base, semi) else a
        t1[key] = {"%g" % t: {"rel": mean_std([e[t]["rel"] for e in entries]),
                              "kept_fraction": mean_std([e[t]["kept_fraction"] for e in entries]),
                              "ordered": ordered(entries, t)}
                   for t in sorted(entries[0], reverse=True)}
    diag = {"coverage": {a: coverage(runs, a) for a in arms},
            "confidence_steps": {a: mean_std([confidence_steps(by[s, a]) for s in seeds])[0] for a in arms}}
    for a in arms:
        sweeps = [by[s, a]["sweep"] for s in seeds if by[s, a]["sweep"]]
        if sweeps:
            diag.setdefault("sweeps", {})[a] = sweep_summary(sweeps)
    return {"setup": dict(setup or {}, seeds=seeds, arms=arms, lambdas=[0.0, cfg["lambda_semi"]],
                          extra_arms=extras, freeze_bn=freeze_bn(cfg),
                          backbone_params=cfg.get("backbone_params"),
                          **{k: cfg.get(k) for k in ("labeled_frac", "epochs", "semi_start", "t_semi", "lr", "conf_lr",
                                                     "momentum", "wd", "poly_power", "batch_size", "pretrained",
                                                     "input_size", "val_frac", "alpha")}),
            "table1": {"per_seed": per_seed, "summary": t1}, "table2": t2, "per_seed": per_seed,
            "curves": test_curves(runs), "diagnosis": diag}


# ---- writing -------------------------------------------------------------------------------
def _f(x, d=3):
    return "—" if x is None else "%.*f" % (d, x)


def _ms(pair, d=3):
    m, s = pair
    return "—" if m is None else ("%.*f" % (d, m) if s is None else "%.*f ± %.*f" % (d, m, d, s))


def markdown(c, appendix=None):
    s, t2, t1 = c["setup"], c["table2"], c["table1"]
    n, semi_lam = len(s["seeds"]), s["lambdas"][1]
    pre = s.get("pretrain") or {}
    L = ["# Claims on the synthetic set: Table 1 ordering and Table 2 gain", ""]
    L += ["Data: %s synthetic scenes (%s train sources, %s test), inputs %s, %s rows per training source; "
          "labeled fraction %g, seeds %s (a seed sets split, initialisation and shuffling; every arm shares it). "
          "Schedule: %d epochs, L_semi from epoch %d (0-based; paper: 100 / 40). Paper settings: T_semi %g, "
          "α %g, λ %g, SGD lr %g momentum %g wd %g poly %g, Adam %g, batch %s. Evaluation: LAST checkpoint, "
          "protocol `%s`."
          % (s.get("n_scenes", "?"), s.get("n_train", "?"), s.get("n_test", "?"),
             "x".join(str(v) for v in s.get("input_size") or []), s.get("copies", "?"), s["labeled_frac"],
             ", ".join(map(str, s["seeds"])), s["epochs"], s["semi_start"], s["t_semi"], s["alpha"], semi_lam,
             s["lr"], s["momentum"], s["wd"], s["poly_power"], s["conf_lr"], s["batch_size"],
             s.get("protocol", "eigen")), ""]
    if s.get("backbone_params"):
        L += ["Backbone: %s, loaded with `--backbone-params` as ImageNet weights would be (BatchNorm frozen: %s, "
              "top-down layers fresh). It is a depth net trained from scratch, supervised, on %s other synthetic "
              "scenes (generator seed %s; the claims' scenes use seed %s) for %s epochs at lr %s, then saved by "
              "`python -m symbols.backbone`." % (
                  pre.get("backbone", s["backbone_params"]), s["freeze_bn"], pre.get("n_scenes", "?"),
                  pre.get("generator_seed", "?"), pre.get("scenes_seed_of_claims", "?"), pre.get("epochs", "?"),
                  pre.get("lr", "?")), ""]
    if s.get("wall_seconds") is not None:
        L += ["Wall time %.1f min on %s (%s cores, OMP_NUM_THREADS %s), pretraining included." % (
            s["wall_seconds"] / 60, s.get("cpu", "?"), s.get("cores", "?"), s.get("omp_num_threads", "?")), ""]
    L += ["## Table 2 analogue: test set, λ = 0 vs λ = %g" % semi_lam, "",
          "| metric | λ = 0 | λ = %g | Δ (λ%g − λ0) | paired t | p | seeds improved |" % (semi_lam, semi_lam),
          "|---|---:|---:|---:|---:|---:|---:|"]
    for m in TABLE2:
        r = t2[m]
        L.append("| %s%s | %s | %s | %s | %s | %s | %d/%d |" % (
            m, " ↓" if m in LOWER_IS_BETTER else " ↑", _ms(r["base"]), _ms(r["semi"]),
            _ms((r["diff_mean"], r["diff_std"]), 4), _f(r["t"], 2), _f(r["p"], 3), r["improved"], r["n"]))
    if s["extra_arms"]:
        L += ["", "Extra arms (they depart from the paper and are reported beside it, never in its place); "
              "Δ = arm − λ0, with paired t-test p and seeds improved:", "",
              "| metric | " + " | ".join("%s | Δ | p | improved" % a for a in s["extra_arms"]) + " |",
              "|---|" + "---:|---:|---:|---:|" * len(s["extra_arms"])]
        for m in TABLE2:
            L.append("| %s | %s |" % (m, " | ".join("%s | %s | %s | %d/%d" % (
                _ms(e["mean"]), _f(e["diff_mean"], 4), _f(e["p"], 3), e["improved"], e["n"])
                for e in (t2[m]["extra"][a] for a in s["extra_arms"]))))
    wins = [m for m in TABLE2 if t2[m]["improved"] == n]
    sig = [m for m in TABLE2 if t2[m]["p"] is not None and t2[m]["p"] < 0.05]
    L += ["", "Per seed:", "", "| seed | arm | " + " | ".join(TABLE2) + " |", "|---|---|" + "---:|" * len(TABLE2)]
    for p in c["per_seed"]:
        L.append("| %d | %s | %s |" % (p["seed"], p["arm"], " | ".join(_f(p["metrics"][m]) for m in TABLE2)))
    L += ["", "Reading: %d of 6 metrics improve on all %d seeds (%s); %d of 6 have p < 0.05 (%s). With n = %d "
          "paired seeds a t-test has little power: only a large, consistent effect would reach p < 0.05, and "
          "a sign count of %d/%d happens by chance with probability %.3f for one metric; the six metrics are "
          "strongly correlated, so they are not six independent confirmations. The paper's Table 2 gains are "
          "small (rel −0.003 at 1/4 labeled, one run each)." % (
              len(wins), n, ", ".join(wins) or "none", len(sig), ", ".join(sig) or "none", n, n, n, 0.5 ** n), ""]
    L += ["## Table 1 analogue: pseudo-labels of the unlabeled training images", "",
          "rel pooled over the valid pixels with confidence C ≥ T (1/4 resolution); kept = share of all "
          "unlabeled pixels with C ≥ T. Rows at the runs' own T and at T = 0 come from `evaluate.py --table1`; "
          "T = 0.9 (the paper's), when a run trained with another T, from `python -m evaluation.claims pseudo` "
          "with the same definitions. *ordered* = seeds where rel(T) < rel(T = 0), the paper's claim, out of the "
          "seeds that kept any pixel at T (— when none did).", "",
          "| λ / arm | T | rel (mean ± std) | kept (mean ± std) | ordered |", "|---|---|---:|---:|---:|"]
    for lam, rows in t1["summary"].items():
        for t, r in rows.items():
            L.append("| %s | %s | %s | %s | %s |" % (lam, t, _ms(r["rel"]), _ms(r["kept_fraction"]),
                                                      "—" if r["ordered"] is None else "%d/%d" % tuple(r["ordered"])))
    L += ["", "Per seed:", "", "| seed | arm | T | rel | kept |", "|---|---|---|---:|---:|"]
    for p in c["per_seed"]:
        for t, r in p["table1"].items():
            L.append("| %d | %s | %s | %s | %s |" % (p["seed"], p["arm"], t, _f(r["rel"]), _f(r["kept_fraction"], 4)))
    L += ["", "## Test rel over epochs", "", "![test rel per epoch](claims_rel.png)", "",
          "Mean over seeds, band = ±1 std, from the per-epoch `test` entries of metrics.jsonl (`--track-test`). "
          "For display only: no checkpoint, epoch or setting was chosen with them.", ""]
    L += diagnosis_lines(c)
    L += ["## Verdict", ""] + ["- %s." % v for v in verdict(c)] + [""]
    if appendix:
        L += ["", appendix.rstrip(), ""]
    return "\n".join(L) + "\n"


def diagnosis_lines(c):
    d, s = c["diagnosis"], c["setup"]
    semi = s["arms"][1]
    cov = d["coverage"]
    L = ["## Diagnosis: what L_semi had to work with", "",
         "Per epoch (0-based), means over seeds: training L_sup and L_conf of each arm, and for the λ = %g arm "
         "L_semi and the mask coverage (share of unlabeled pixels with C ≥ T in the cache of the previous epoch). "
         "The confidence net took %s Adam steps per run (the paper: ~45k, 7155 × 1/4 / 4 per epoch × 100)."
         % (s["lambdas"][1], ", ".join("%s %s" % (a, _f(v, 0)) for a, v in d["confidence_steps"].items())), "",
         "| epoch | phase | " + " | ".join("L_sup %s | L_conf %s" % (a, a) for a in s["arms"]) + " | L_semi | coverage % |",
         "|---:|---|" + "---:|---:|" * len(s["arms"]) + "---:|---:|"]
    for i, e in enumerate(cov[semi]):
        L.append("| %d | %s | %s | %s | %s |" % (
            e["epoch"], e["phase"],
            " | ".join("%s | %s" % (_f(cov[a][i]["sup"]), _f(cov[a][i]["conf"])) if i < len(cov[a]) else "— | —"
                       for a in s["arms"]),
            _f(e["semi"], 4), _f(e["coverage_pct"], 2)))
    for arm, sw in d.get("sweeps", {}).items():
        rows = sw["sweep"]
        L += ["", "Pseudo-label error against threshold, final networks of %s (mean over seeds):" % arm, "",
              "| T | " + " | ".join("%g" % r["t"] for r in rows) + " |", "|---|" + "---:|" * len(rows),
              "| rel | " + " | ".join(_f(r["rel"][0]) for r in rows) + " |",
              "| kept | " + " | ".join(_f(r["kept_fraction"][0], 4) for r in rows) + " |"]
        lb = sw.get("labeled")
        if lb:
            L += ["", "What the confidence net of %s learned from, on the labeled images with the final depth net: "
                  "eq. 1 target Y median %s, 90th percentile %s; mean C %s. An L1 loss drives C towards the "
                  "conditional median of Y, so C ≥ T needs most similar pixels at Y ≥ T (rel ≤ −ln T / α):" % (
                      arm, _f(lb["target_median"]), _f(lb["target_q90"]), _f(lb["conf_mean"])), "",
                  "| T | labeled pixels with Y ≥ T | labeled pixels with C ≥ T |", "|---|---:|---:|"]
            L += ["| %g | %s | %s |" % (r["t"], _f(r["target_at_least"], 4), _f(r["conf_at_least"], 4))
                  for r in lb["rows"]]
        L += ["", "Calibration of C on the unlabeled valid pixels, %s: mean C per bin against the mean of its "
              "eq. 1 target exp(−α·rel) (a calibrated net has them equal):" % arm, "",
              "| C bin | pixels | mean C | mean target | mean rel |", "|---|---:|---:|---:|---:|"]
        for b in sw["calibration"]:
            L.append("| [%.1f, %.1f) | %d | %s | %s | %s |" % (b["lo"], b["hi"], b["n"], _f(b["conf"]),
                                                               _f(b["target"]), _f(b["rel"])))
        if arm != s["arms"][0] and sw["cache"]:
            L += ["", "Epoch lag, %s: the pseudo-labels cached in the last epoch against the final network, on the "
                  "same pixels C_cached ≥ T:" % arm, "",
                  "| T | pixels | cached pseudo-label rel | final network rel |", "|---|---:|---:|---:|"]
            for r in sw["cache"]:
                L.append("| %g | %d | %s | %s |" % (r["t"], r["n_pixels"], _ms(r["cached_rel"]), _ms(r["final_rel"])))
    return L + [""]


def verdict(c):
    """The claims, stated from the numbers (no judgement beyond them)."""
    s, t2, t1 = c["setup"], c["table2"], c["table1"]
    n, semi_key = len(s["seeds"]), "%g" % s["lambdas"][1]
    out = []
    r = t2["rel"]
    better = [m for m in TABLE2 if t2[m]["improved"] == n]
    out.append("Table 2 (paper: λ = %s better than λ = 0 on all six metrics): λ = %s changes test rel by %+.4f "
               "(%d/%d seeds better, p %s) and is better on all %d seeds for %d of 6 metrics (%s); the claim %s "
               "on this data" % (semi_key, semi_key, r["diff_mean"], r["improved"], n, _f(r["p"], 3), n,
                                 len(better), ", ".join(better) or "none",
                                 "holds" if len(better) == len(TABLE2) else
                                 ("holds in part" if better else "does not hold")))
    rows = t1["summary"].get(semi_key, {})
    at, all_ = rows.get("%g" % PAPER_T), rows.get("0")
    if at and all_:
        if at["rel"][0] is None:
            out.append("Table 1 (paper: pixels with C ≥ 0.9 have lower rel than all): no unlabeled pixel reached "
                       "C ≥ 0.9 on any seed, so the claim cannot be checked at the paper's threshold here "
                       "(see the diagnosis)")
        else:
            o = at["ordered"]
            out.append("Table 1 (paper: pixels with C ≥ 0.9 have lower rel than all): at T = 0.9 the λ = %s runs kept "
                       "%.2f%% of the unlabeled pixels with rel %.3f against %.3f for all pixels; ordered on %d of %d "
                       "seeds that kept any; the claim %s" % (
                           semi_key, 100 * at["kept_fraction"][0], at["rel"][0], all_["rel"][0], o[0], o[1],
                           "holds" if o[0] == o[1] == n else ("holds in part" if o[0] else "does not hold")))
    cov = [e["coverage_pct"] for e in c["diagnosis"]["coverage"][s["arms"][1]] if e["coverage_pct"] is not None]
    if cov:
        out.append("mask coverage over the semi epochs of λ = %s: mean %.2f%%, min %.2f%%, max %.2f%%%s" % (
            semi_key, float(np.mean(cov)), min(cov), max(cov),
            " — L_semi was identically 0, so λ = %s trained exactly like λ = 0 apart from run-to-run noise"
            % semi_key if max(cov) == 0 else ""))
    return out


def rel_plot(curves, semi_start, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for arm, cur in curves.items():
        e, m, sd = np.array(cur["epoch"]), np.array(cur["mean"]), np.array(cur["std"])
        ax.plot(e, m, marker=".", label="%s (%d seeds)" % (arm, cur["n_seeds"]))
        ax.fill_between(e, m - sd, m + sd, alpha=0.2)
    if semi_start is not None:  # 0-based epochs, as metrics.jsonl and --semi-start count them
        ax.axvline(semi_start - 1, color="grey", ls=":", lw=1, label="fill epoch (unlabeled images enter)")
        ax.axvline(semi_start, color="grey", ls="--", lw=1, label="L_semi starts")
    ax.set(xlabel="epoch (0-based)", ylabel="test rel (eigen)", title="test rel per epoch (display only)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_report(out, setup=None, docs=None, appendix=None):
    """claims.json, claims.md and claims_rel.png in ``out`` (and copies in ``docs``); the text of
    the file ``appendix`` (an earlier experiment) becomes the last section of claims.md."""
    claims = aggregate(load_runs(out), setup)
    written = []
    path = os.path.join(out, "claims.json")
    write_json_atomic(path, claims)
    written.append(path)
    path = os.path.join(out, "claims.md")
    with open(path + ".tmp", "w") as f:
        f.write(markdown(claims, open(appendix).read() if appendix else None))
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
    p = sub.add_parser("report", help="OUT/claims.md, claims.json, claims_rel.png from OUT/seed*_<arm>")
    p.add_argument("out")
    p.add_argument("--setup", default=None, help="JSON file of facts the runs do not record (data size, time, machine)")
    p.add_argument("--docs", default=None, help="also copy the three outputs into this directory")
    p.add_argument("--appendix", default=None, help="a markdown file appended to claims.md as its last section")
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
            setup = read_json(args.setup, error=EvaluationError) if args.setup else None
            print("\n".join(write_report(args.out, setup, args.docs, args.appendix)))
    except (EvaluationError, OSError, KeyError, ValueError) as err:
        print("error: %s" % err, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
