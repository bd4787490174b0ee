"""claims.md and claims_rel.png from the dict of ``tables.aggregate`` (claims.json).

Every sentence that judges a claim is built from the numbers it states (``verdict``, the
Reading paragraph); the only fixed text is the setup and the definitions.
"""
import os
import shutil

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from common.files import write_json_atomic, write_text_atomic
from evaluation.report import MATCH_TOL, load_paper

from .tables import LOWER_IS_BETTER, PAPER_T, TABLE2, aggregate, load_runs


def fmt(x, d=3):
    """``x`` with ``d`` decimals, or a dash for None."""
    return "—" if x is None else "%.*f" % (d, x)


def fmt_ms(pair, d=3):
    """(mean, std) as 'mean ± std', the mean alone without a std, a dash without a mean."""
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
            m, " ↓" if m in LOWER_IS_BETTER else " ↑", fmt_ms(r["base"]), fmt_ms(r["semi"]),
            fmt_ms((r["diff_mean"], r["diff_std"]), 4), fmt(r["t"], 2), fmt(r["p"], 3), r["improved"], r["n"]))
    if s["extra_arms"]:
        L += ["", "Extra arms (they depart from the paper and are reported beside it, never in its place); "
              "Δ = arm − λ0, with paired t-test p and seeds improved:", "",
              "| metric | " + " | ".join("%s | Δ | p | improved" % a for a in s["extra_arms"]) + " |",
              "|---|" + "---:|---:|---:|---:|" * len(s["extra_arms"])]
        for m in TABLE2:
            L.append("| %s | %s |" % (m, " | ".join("%s | %s | %s | %d/%d" % (
                fmt_ms(e["mean"]), fmt(e["diff_mean"], 4), fmt(e["p"], 3), e["improved"], e["n"])
                for e in (t2[m]["extra"][a] for a in s["extra_arms"]))))
    wins = [m for m in TABLE2 if t2[m]["improved"] == n]
    sig = [m for m in TABLE2 if t2[m]["p"] is not None and t2[m]["p"] < 0.05]
    L += ["", "Per seed:", "", "| seed | arm | " + " | ".join(TABLE2) + " |", "|---|---|" + "---:|" * len(TABLE2)]
    for p in c["per_seed"]:
        L.append("| %d | %s | %s |" % (p["seed"], p["arm"], " | ".join(fmt(p["metrics"][m]) for m in TABLE2)))
    L += ["", "Reading: %d of 6 metrics improve on all %d seeds (%s); %d of 6 have p < 0.05 (%s). With n = %d "
          "paired seeds a t-test has little power: only a large, consistent effect would reach p < 0.05, and "
          "a sign count of %d/%d happens by chance with probability %.3f for one metric; the six metrics are "
          "strongly correlated, so they are not six independent confirmations.%s" % (
              len(wins), n, ", ".join(wins) or "none", len(sig), ", ".join(sig) or "none", n, n, n, 0.5 ** n,
              paper_gain_sentence(s["labeled_frac"], semi_lam)), ""]
    L += ["## Table 1 analogue: pseudo-labels of the unlabeled training images", "",
          "rel pooled over the valid pixels with confidence C ≥ T (1/4 resolution); kept = share of all "
          "unlabeled pixels with C ≥ T. Rows at the runs' own T and at T = 0 come from `evaluate.py --table1`; "
          "T = 0.9 (the paper's), when a run trained with another T, from `python -m experiments.claims pseudo` "
          "with the same definitions. *ordered* = seeds where rel(T) < rel(T = 0), the paper's claim, out of the "
          "seeds that kept any pixel at T (— when none did).", "",
          "| λ / arm | T | rel (mean ± std) | kept (mean ± std) | ordered |", "|---|---|---:|---:|---:|"]
    for lam, rows in t1["summary"].items():
        for t, r in rows.items():
            L.append("| %s | %s | %s | %s | %s |" % (lam, t, fmt_ms(r["rel"]), fmt_ms(r["kept_fraction"]),
                                                      "—" if r["ordered"] is None else "%d/%d" % tuple(r["ordered"])))
    L += ["", "Per seed:", "", "| seed | arm | T | rel | kept |", "|---|---|---|---:|---:|"]
    for p in c["per_seed"]:
        for t, r in p["table1"].items():
            L.append("| %d | %s | %s | %s | %s |" % (p["seed"], p["arm"], t, fmt(r["rel"]), fmt(r["kept_fraction"], 4)))
    L += ["", "## Test rel over epochs", "", "![test rel per epoch](claims_rel.png)", "",
          "Mean over seeds, band = ±1 std, from the per-epoch `test` entries of metrics.jsonl (`--track-test`). "
          "For display only: no checkpoint, epoch or setting was chosen with them.", ""]
    L += diagnosis_lines(c)
    L += ["## Verdict", ""] + ["- %s." % v for v in verdict(c)] + [""]
    if appendix:
        L += ["", appendix.rstrip(), ""]
    return "\n".join(L) + "\n"


def paper_gain_sentence(labeled_frac, lam):
    """The paper's own Table 2 difference in rel (λ = ``lam`` − λ = 0) at this labeled fraction, as a
    sentence; empty when the paper has no such pair of rows."""
    rows = [r for r in load_paper()["table2"]["rows"] if abs(r["labeled_frac"] - labeled_frac) < MATCH_TOL]
    base = [r["rel"] for r in rows if r["lambda_semi"] == 0]
    semi = [r["rel"] for r in rows if abs(r["lambda_semi"] - lam) < MATCH_TOL]
    if not (base and semi):
        return ""
    return " The paper's Table 2 difference is rel %s at labeled fraction %g (one run each)." % (
        ("%.3f" % (semi[0] - base[0])).replace("-", "−"), labeled_frac)


def diagnosis_lines(c):
    d, s = c["diagnosis"], c["setup"]
    semi = s["arms"][1]
    cov = d["coverage"]
    L = ["## Diagnosis: what L_semi had to work with", "",
         "Per epoch (0-based), means over seeds: training L_sup and L_conf of each arm, and for the λ = %g arm "
         "L_semi and the mask coverage (share of unlabeled pixels with C ≥ T in the cache of the previous epoch). "
         "The confidence net took %s Adam steps per run (the paper: ~45k, 7155 × 1/4 / 4 per epoch × 100)."
         % (s["lambdas"][1], ", ".join("%s %s" % (a, fmt(v, 0)) for a, v in d["confidence_steps"].items())), "",
         "| epoch | phase | " + " | ".join("L_sup %s | L_conf %s" % (a, a) for a in s["arms"])
         + " | L_semi | coverage % |",
         "|---:|---|" + "---:|---:|" * len(s["arms"]) + "---:|---:|"]
    for i, e in enumerate(cov[semi]):
        L.append("| %d | %s | %s | %s | %s |" % (
            e["epoch"], e["phase"],
            " | ".join("%s | %s" % (fmt(cov[a][i]["sup"]), fmt(cov[a][i]["conf"])) if i < len(cov[a]) else "— | —"
                       for a in s["arms"]),
            fmt(e["semi"], 4), fmt(e["coverage_pct"], 2)))
    for arm, sw in d.get("sweeps", {}).items():
        rows = sw["sweep"]
        L += ["", "Pseudo-label error against threshold, final networks of %s (mean over seeds):" % arm, "",
              "| T | " + " | ".join("%g" % r["t"] for r in rows) + " |", "|---|" + "---:|" * len(rows),
              "| rel | " + " | ".join(fmt(r["rel"][0]) for r in rows) + " |",
              "| kept | " + " | ".join(fmt(r["kept_fraction"][0], 4) for r in rows) + " |"]
        lb = sw.get("labeled")
        if lb:
            L += ["", "What the confidence net of %s learned from, on the labeled images with the final depth net: "
                  "eq. 1 target Y median %s, 90th percentile %s; mean C %s. An L1 loss drives C towards the "
                  "conditional median of Y, so C ≥ T needs most similar pixels at Y ≥ T (rel ≤ −ln T / α):" % (
                      arm, fmt(lb["target_median"]), fmt(lb["target_q90"]), fmt(lb["conf_mean"])), "",
                  "| T | labeled pixels with Y ≥ T | labeled pixels with C ≥ T |", "|---|---:|---:|"]
            L += ["| %g | %s | %s |" % (r["t"], fmt(r["target_at_least"], 4), fmt(r["conf_at_least"], 4))
                  for r in lb["rows"]]
        L += ["", "Calibration of C on the unlabeled valid pixels, %s: mean C per bin against the mean of its "
              "eq. 1 target exp(−α·rel) (a calibrated net has them equal):" % arm, "",
              "| C bin | pixels | mean C | mean target | mean rel |", "|---|---:|---:|---:|---:|"]
        for b in sw["calibration"]:
            L.append("| [%.1f, %.1f) | %d | %s | %s | %s |" % (b["lo"], b["hi"], b["n"], fmt(b["conf"]),
                                                               fmt(b["target"]), fmt(b["rel"])))
        if arm != s["arms"][0] and sw["cache"]:
            L += ["", "Epoch lag, %s: the pseudo-labels cached in the last epoch against the final network, on the "
                  "same pixels C_cached ≥ T:" % arm, "",
                  "| T | pixels | cached pseudo-label rel | final network rel |", "|---|---:|---:|---:|"]
            for r in sw["cache"]:
                L.append("| %g | %d | %s | %s |" % (r["t"], r["n_pixels"], fmt_ms(r["cached_rel"]),
                                                    fmt_ms(r["final_rel"])))
    return L + [""]


def verdict(c):
    """The claims, stated from the numbers (no judgement beyond them)."""
    s, t2, t1 = c["setup"], c["table2"], c["table1"]
    n, semi_key = len(s["seeds"]), "%g" % s["lambdas"][1]
    out = []
    r = t2["rel"]
    better = [m for m in TABLE2 if t2[m]["improved"] == n]
    significant = [m for m in better if t2[m]["p"] is not None and t2[m]["p"] < 0.05]
    if len(better) == len(TABLE2):
        finding = "holds"
    elif n > 1 and not significant:  # with few seeds a sign count alone is what chance gives
        finding = "is not shown: no metric differs beyond seed-to-seed noise (p < 0.05)"
    else:
        finding = "holds in part" if better else "does not hold"
    out.append("Table 2 (paper: λ = %s better than λ = 0 on all six metrics): λ = %s changes test rel by %+.4f "
               "(%d/%d seeds better, p %s) and is better on all %d seeds for %d of 6 metrics (%s); the claim %s "
               "on this data" % (semi_key, semi_key, r["diff_mean"], r["improved"], n, fmt(r["p"], 3), n,
                                 len(better), ", ".join(better) or "none", finding))
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
    fig = Figure(figsize=(6, 3.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
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
    return path


def write_report(out, setup=None, docs=None, appendix=None):
    """claims.json, claims.md and claims_rel.png in ``out`` (and copies in ``docs``); the text of
    the file ``appendix`` (an earlier experiment) becomes the last section of claims.md."""
    claims = aggregate(load_runs(out), setup)
    written = []
    written.append(write_json_atomic(os.path.join(out, "claims.json"), claims))
    text = markdown(claims, open(appendix).read() if appendix else None)
    written.append(write_text_atomic(os.path.join(out, "claims.md"), text))
    written.append(rel_plot(claims["curves"], claims["setup"]["semi_start"], os.path.join(out, "claims_rel.png")))
    if docs:
        os.makedirs(docs, exist_ok=True)
        for p in list(written):
            written.append(shutil.copy(p, os.path.join(docs, os.path.basename(p))))
    return written
