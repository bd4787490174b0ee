"""The numbers of claims.md: the runs of OUT paired by seed, as one JSON-able dict (claims.json).

A run is ``OUT/seed<S>_<ARM>`` with config.json, metrics.jsonl, eval.json, table1.json and
(optional) pseudo_sweep.json.  ``aggregate`` turns the runs into ``per_seed`` entries (seed, arm,
labeled_frac, λ, the test metrics under ``eigen`` and ``full``, Table 1's rows, AUSE/AURG), and
``statistics`` computes everything else from that list alone, so an old claims.json (a regime
run earlier) gets the same tables from its own ``per_seed``.  Table 2 compares each arm with
``lambda0`` on the seeds both have (paired Δ, 95 % t-interval, verdict: ``stats``); Table 1
takes the rows of ``evaluate.py --table1`` and, for the paper's T = 0.9 when a run trained with
another T, the row of ``pseudo_sweep.json``.
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
from rundir.nets import froze_bn

from .stats import (LOWER_IS_BETTER, better_sign, delta_stats, is_paper_method, paper_delta, paper_shares,
                    paper_table1_delta, seed_rule, share, t_interval)

TABLE2 = ("rel", "log10", "rms", "d1", "d2", "d3")
BASE_ARM = "lambda0"
HEADROOM_ARM = "headroom"   # λ = 0 at 1/2 labeled: what more labels give
ORACLE_ARM = "oracle"       # λ = 0.1 with ground truth in the pseudo-label cache: what L_semi can give
ORACLE_SUFFIX = "_oracle"    # <arm>_oracle: the arm's flags with ground truth in the cache (e.g. share_oracle)
PREFIX_ARM = "prefix"       # run.sh's shared λ = 0 epochs before the first unlabeled one: not an arm
T_KEY, ALL_KEY = "%g" % PAPER_T, "0"


def run_file(path, required=True):
    """A JSON file of a run (None if optional and missing); EvaluationError if unreadable."""
    return read_json(path, required=required, error=EvaluationError)


def load_runs(out):
    """Every finished run ``OUT/seed<S>_<ARM>``: its arm, config, per-epoch metrics and evaluation files
    (run.sh's ``seed<S>_prefix``, the λ = 0 epochs its arms fork from, is no arm and is skipped)."""
    runs = []
    for cfg_path in sorted(glob.glob(os.path.join(out, "seed*_*", "config.json"))):
        d = os.path.dirname(cfg_path)
        if os.path.basename(d).split("_", 1)[1] == PREFIX_ARM:
            continue
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


def arms_of(arms):
    """(base, semi, extras) of {arm: λ}: lambda0, the lambda arm with the largest λ, the other named arms."""
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
    """Seeds where rel(T) < rel(0), out of the seeds that kept any pixel at T (None for T = 0 or none kept);
    ``entries`` are per-seed Table 1 rows keyed by '%g' of T."""
    scored = [e for e in entries if e[t]["rel"] is not None]
    if t == ALL_KEY or not scored:
        return None
    return [sum(1 for e in scored if e[t]["rel"] < e[ALL_KEY]["rel"]), len(scored)]


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


def full_metrics(run):
    """(test metrics under the ``full`` protocol, their source) of a run: pseudo_sweep.json's
    ``test_full`` if present, else eval.json's ``metrics_by_protocol.full`` (the same checkpoint and
    scorer), else (None, None)."""
    sweep = run["sweep"] or {}
    if sweep.get("test_full"):
        return sweep["test_full"]["metrics"], "pseudo_sweep.json test_full"
    full = (run["eval"].get("metrics_by_protocol") or {}).get("full")
    return (full, "eval.json metrics_by_protocol.full") if full else (None, None)


def per_seed_entry(run):
    """One run as a ``per_seed`` entry: what ``statistics`` needs, nothing that needs the run directory."""
    cfg = run["config"]
    full, source = full_metrics(run)
    spars = (run["sweep"] or {}).get("sparsification")
    return {"seed": cfg["seed"], "arm": run["arm"], "labeled_frac": cfg["labeled_frac"], "lambda": cfg["lambda_semi"],
            "t_semi": cfg["t_semi"], "pseudo_labels": cfg.get("pseudo_labels", "model"),
            "metrics": {m: run["eval"]["metrics"][m] for m in TABLE2},
            "metrics_full": {m: full[m] for m in TABLE2} if full else None, "metrics_full_source": source,
            "table1": {"%g" % t: v for t, v in sorted(table1_entry(run).items(), reverse=True)},
            "sparsification": {k: spars[k] for k in ("ause", "aurg", "n_pixels", "mean")} if spars else None,
            "keep_share": cfg.get("keep_share"), "cpus": run_cpus(cfg)}


def run_cpus(cfg):
    """Every CPU model a run's numbers came from (config.json: cpu_model, cpu_changes; a fork's
    source is among them when it differed); [] for runs from before they were recorded."""
    cpus = {cfg.get("cpu_model")}
    for change in cfg.get("cpu_changes") or []:
        cpus |= {change.get("cpu_model"), change.get("before")}
    return sorted(c for c in cpus if c)


def mixed_cpu_seeds(per_seed):
    """(every CPU model in the regime, the seeds whose runs together came from more than one)."""
    by_seed = {}
    for p in per_seed:
        by_seed.setdefault(p["seed"], set()).update(p.get("cpus") or [])
    cpus = sorted(set().union(*by_seed.values())) if by_seed else []
    return cpus, sorted(s for s, c in by_seed.items() if len(c) > 1)


def roles(per_seed):
    """(base, semi, extras, seeds_of, by): the arms, {arm: seeds it shares with the base}, {(seed, arm): entry}."""
    by = {(p["seed"], p["arm"]): p for p in per_seed}
    base, semi, extras = arms_of({p["arm"]: p["lambda"] for p in per_seed})
    seeds_of = {a: sorted(s for s, b in by if b == a and (s, base) in by) for a in [base, semi] + extras}
    return base, semi, extras, seeds_of, by


def compare(by, base, arm, seeds, metric, key="metrics"):
    """The Table 2 entry of ``arm`` against ``base`` for one metric: the old keys (``paired``) and
    ``delta``, ``ci95``, ``verdict``, ``seeds``, ``paper_delta`` (``stats.delta_stats``)."""
    seeds = [s for s in seeds if by[s, arm][key] and by[s, base][key]]
    b = [by[s, base][key][metric] for s in seeds]
    x = [by[s, arm][key][metric] for s in seeds]
    pd = paper_delta(by[seeds[0], arm], by[seeds[0], base]["labeled_frac"], metric) if seeds else None
    return dict(paired(b, x, metric), mean=mean_std(x), base_mean=mean_std(b),
                **delta_stats([v - u for u, v in zip(b, x)], metric, pd, seeds))


def table2(per_seed, key="metrics"):
    """Table 2 keyed by metric (the shape of claims.json's ``table2``); None if no seed has ``key``."""
    base, semi, extras, seeds_of, by = roles(per_seed)
    if not any(by[s, semi][key] and by[s, base][key] for s in seeds_of[semi]):
        return None
    out = {}
    for m in TABLE2:
        main = compare(by, base, semi, seeds_of[semi], m, key)
        main["base"], main["semi"] = main.pop("base_mean"), main.pop("mean")  # the keys claims.json had
        main["extra"] = {a: compare(by, base, a, seeds_of[a], m, key) for a in extras
                         if any(by[s, a][key] for s in seeds_of[a])}
        out[m] = main
    return out


def table1_stats(per_seed):
    """Table 1: the mean rows per arm (``summary``), per arm the paired Δ = rel(T = 0.9) − rel(T = 0)
    with its interval and verdict against the paper's (``delta``) and AUSE/AURG over seeds."""
    base, semi, extras, seeds_of, by = roles(per_seed)
    summary, delta, spars = {}, {}, {}
    for a in [base, semi] + extras:
        entries = [by[s, a]["table1"] for s in seeds_of[a]]
        key = "%g" % by[seeds_of[a][0], a]["lambda"] if a in (base, semi) else a
        summary[key] = {t: {"rel": mean_std([e[t]["rel"] for e in entries if t in e]),
                            "kept_fraction": mean_std([e[t]["kept_fraction"] for e in entries if t in e]),
                            "ordered": ordered([e for e in entries if t in e], t)}
                        for t in sorted(entries[0], key=float, reverse=True)}
        scored = [(s, by[s, a]["table1"]) for s in seeds_of[a]]
        scored = [(s, e) for s, e in scored if T_KEY in e and e[T_KEY]["rel"] is not None]
        arm = by[seeds_of[a][0], a]
        paper = paper_table1_delta(arm["labeled_frac"]) if is_paper_method(arm) else None
        delta[a] = dict(delta_stats([e[T_KEY]["rel"] - e[ALL_KEY]["rel"] for _, e in scored], "rel", paper,
                                    [s for s, _ in scored]), n_no_pixel=len(seeds_of[a]) - len(scored))
        sp = [by[s, a]["sparsification"] for s in seeds_of[a] if by[s, a].get("sparsification")]
        if sp:
            spars[a] = {k: dict(zip(("mean", "sd", "ci95"), t_interval([v[k] for v in sp])), n=len(sp),
                                values=[v[k] for v in sp]) for k in ("aurg", "ause")}
    return {"per_seed": per_seed, "summary": summary, "delta": delta, "sparsification": spars,
            "paper_delta": paper_table1_delta()}


def shares(per_seed, key="metrics", arm=None, oracle=ORACLE_ARM):
    """An arm's (default: the λ arm's) mean gain over ``lambda0`` as a fraction of its ``oracle``'s and of
    the headroom's (``stats.share``), per metric, on the seeds all three arms share; None for an arm not run."""
    base, semi, _, seeds_of, by = roles(per_seed)
    semi = arm or semi
    paper = paper_shares(TABLE2)
    out = {}
    for ref in (oracle, HEADROOM_ARM):
        seeds = [s for s in seeds_of.get(ref, []) if s in seeds_of[semi]
                 and all(by[s, a][key] for a in (base, semi, ref))]
        if not seeds:
            out[ref] = None
            continue
        out[ref] = {}
        for m in TABLE2:
            d_lam = float(np.mean([by[s, semi][key][m] - by[s, base][key][m] for s in seeds]))
            d_ref = float(np.mean([by[s, ref][key][m] - by[s, base][key][m] for s in seeds]))
            out[ref][m] = {"share": share(d_lam, d_ref, m), "delta": d_lam, "reference_delta": d_ref,
                           "reference_helped": better_sign(m) * d_ref > 0, "seeds": seeds,
                           "paper_share": paper[m] if ref == HEADROOM_ARM else None}
    return out


def own_oracles(arms):
    """{arm: its oracle} for the extra arms run with an oracle twin named ``<arm>_oracle`` (e.g. share)."""
    return {a: a + ORACLE_SUFFIX for a in arms if a + ORACLE_SUFFIX in arms}


def statistics(per_seed):
    """Every number of a regime computed from its ``per_seed`` list alone."""
    base, semi, extras, seeds_of, _ = roles(per_seed)
    full = table2(per_seed, "metrics_full")
    return {"table2": table2(per_seed), "table2_full": full, "table1": table1_stats(per_seed),
            "shares": shares(per_seed), "shares_full": shares(per_seed, "metrics_full") if full else None,
            "shares_by_arm": {a: {"oracle_arm": o, "eigen": shares(per_seed, arm=a, oracle=o)}
                              for a, o in own_oracles(extras).items()},
            "seed_rule": seed_rule(dict({a: len(s) for a, s in seeds_of.items()}, **{base: len(seeds_of[semi])}),
                                   main_arms=(base, semi))}


def pretrain_task(setup, pretext=None):
    """The stand-in's pretraining task: setup's ``pretrain.task``, else pretext.json's, else ``depth``
    when the setup describes a pretraining (the only one before issue 22), else None."""
    pre = (setup or {}).get("pretrain") or {}
    return pre.get("task") or (pretext or {}).get("task") or ("depth" if pre else None)


def aggregate(runs, setup=None, pretext=None):
    """Everything claims.md shows for one OUT (one regime), as one JSON-able dict."""
    per_seed_all = [per_seed_entry(r) for r in runs]
    base, semi, extras, seeds_of, _ = roles(per_seed_all)
    arms = [base, semi] + extras
    seeds = sorted(set(seeds_of[base]) & set(seeds_of[semi]))
    if not seeds:
        raise EvaluationError("no seed has both %s and %s runs" % (base, semi))
    order = {a: k for k, a in enumerate(arms)}
    per_seed = sorted((p for p in per_seed_all if p["seed"] in seeds_of[p["arm"]]),
                      key=lambda p: (p["seed"], order[p["arm"]]))
    by = {(r["config"]["seed"], r["arm"]): r for r in runs}
    cfg = by[seeds[0], semi]["config"]
    pre = dict((setup or {}).get("pretrain") or {})
    pre["task"] = pretrain_task(setup, pretext)
    if pretext:
        pre["pretext"] = pretext
    diag = {"coverage": {a: coverage([by[s, a] for s in seeds_of[a]], a) for a in arms},
            "confidence_steps": {a: mean_std([confidence_steps(by[s, a]) for s in seeds_of[a]])[0] for a in arms}}
    for a in arms:
        sweeps = [by[s, a]["sweep"] for s in seeds_of[a] if by[s, a]["sweep"]]
        if sweeps:
            diag.setdefault("sweeps", {})[a] = sweep_summary(sweeps)
    block = {"setup": dict(setup or {}, pretrain=pre, seeds=seeds, seeds_by_arm=seeds_of, arms=arms,
                           lambdas=[0.0, cfg["lambda_semi"]], extra_arms=extras, freeze_bn=froze_bn(cfg),
                           backbone_params=cfg.get("backbone_params"),
                           labeled_fracs={a: by[seeds_of[a][0], a]["config"]["labeled_frac"] for a in arms},
                           **{k: cfg.get(k) for k in ("labeled_frac", "epochs", "semi_start", "t_semi", "lr",
                                                      "conf_lr", "momentum", "wd", "poly_power", "batch_size",
                                                      "pretrained", "input_size", "val_frac", "alpha")}),
             "regime": pre["task"], "per_seed": per_seed,
             "curves": test_curves([r for r in runs if r["config"]["seed"] in seeds_of[r["arm"]]]),
             "diagnosis": diag}
    block.update(statistics(per_seed))
    return block


def from_claims(claims):
    """A regime block from a claims.json written earlier: its own tables when it has this report's
    (``ci95``, ``arm``, ``labeled_frac``), else recomputed from its ``per_seed`` list (an old file has
    seed, arm, λ, t_semi, metrics and Table 1 rows; its arms are at its setup's labeled fraction,
    with the paper's pseudo-labels, and its stand-in, when unnamed, was the depth-pretrained one)."""
    block = {k: v for k, v in claims.items() if k != "other_regimes"}
    setup = dict(block.get("setup") or {})
    setup["pretrain"] = dict(setup.get("pretrain") or {}, task=pretrain_task(setup) or "depth")
    block["setup"] = setup
    block["regime"] = setup["pretrain"]["task"]
    current = all("ci95" in v for v in (block.get("table2") or {"x": {}}).values()) and \
        all("labeled_frac" in p for p in block.get("per_seed", []))
    if current:
        return block
    per_seed = [dict({"labeled_frac": setup.get("labeled_frac"), "pseudo_labels": "model", "metrics_full": None,
                      "sparsification": None, "table1": {}, "t_semi": setup.get("t_semi")}, **p)
                for p in block["per_seed"]]
    per_seed = [dict(p, arm=p.get("arm") or ("%s%g" % ("lambda", p["lambda"]) if p["lambda"] else BASE_ARM))
                for p in per_seed]
    block["per_seed"] = per_seed
    block.update(statistics(per_seed))
    setup.setdefault("seeds_by_arm", roles(per_seed)[3])
    setup.setdefault("labeled_fracs", {p["arm"]: p["labeled_frac"] for p in per_seed})
    return block
