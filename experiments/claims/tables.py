"""The numbers of claims.md: the runs of OUT paired by seed, as one JSON-able dict (claims.json).

A run is ``OUT/seed<S>_<ARM>`` with config.json, metrics.jsonl, eval.json, table1.json and
(optional) pseudo_sweep.json.  Table 2 compares each arm with ``lambda0`` seed by seed (paired
t-test, sign count); Table 1 takes the rows of ``evaluate.py --table1`` and, for the paper's
T = 0.9 when a run trained with another T, the row of ``pseudo_sweep.json``.
"""
import glob
import json
import os
import sys

import numpy as np
from scipy.stats import ttest_rel

from common.files import read_json
from config import T_SEMI as PAPER_T  # the paper's threshold (§5.1)
from evaluation import EvaluationError
from training.checkpoint import froze_bn

TABLE2 = ("rel", "log10", "rms", "d1", "d2", "d3")
LOWER_IS_BETTER = {"rel", "log10", "rms"}
BASE_ARM = "lambda0"


def run_file(path, required=True):
    """A JSON file of a run (None if optional and missing); EvaluationError if unreadable."""
    return read_json(path, required=required, error=EvaluationError)


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
        runs.append({"dir": d, "arm": os.path.basename(d).split("_", 1)[1], "config": run_file(cfg_path),
                     "history": history, "eval": run_file(os.path.join(d, "eval.json")),
                     "table1": run_file(os.path.join(d, "table1.json")),
                     "sweep": run_file(os.path.join(d, "pseudo_sweep.json"), required=False)})
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
    return run_file(os.path.join(run["dir"], "split.json"), required=False)


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
                          "rows": [{"t": row["t"], **{key: mean_std([lb["rows"][i][key] for lb in labeled])[0]
                                                      for key in ("target_at_least", "conf_at_least")}}
                                   for i, row in enumerate(labeled[0]["rows"])]}
    return out


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
                          extra_arms=extras, freeze_bn=froze_bn(cfg),
                          backbone_params=cfg.get("backbone_params"),
                          **{k: cfg.get(k) for k in ("labeled_frac", "epochs", "semi_start", "t_semi", "lr", "conf_lr",
                                                     "momentum", "wd", "poly_power", "batch_size", "pretrained",
                                                     "input_size", "val_frac", "alpha")}),
            "table1": {"per_seed": per_seed, "summary": t1}, "table2": t2, "per_seed": per_seed,
            "curves": test_curves(runs), "diagnosis": diag}
