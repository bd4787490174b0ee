"""claims.md's diagnosis section (what L_semi had to work with) and the test-rel-per-epoch figure."""
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .formatting import fmt, fmt_ms


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
