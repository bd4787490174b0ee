"""The statistics of claims.md: the seed rule, paired intervals, verdicts and shares (pure numpy/scipy).

The seed rule is written here as constants, fixed before any result of the regimes it is applied
to (issue 22): primary metric rel; the paired std of Δrel over seeds measured in the earlier,
depth-pretrained regime (docs/claims/depth_pretrained/claims.json, 3 seeds: 0.00201); the paper's Δrel at 1/4
labeled (0.235 − 0.238 = −0.003); a two-sided paired t-test at α = 0.05; 80 % power.  The n it
asks for comes from the noncentral t distribution (``paired_power``), not from a normal
approximation.

A verdict compares the 95 % t-interval of a paired Δ (arm − lambda0 per seed) with 0 and with the
paper's Δ, in the direction that is better for the metric:

shown          the whole interval is on the better side of 0
reversed       the whole interval is on the worse side of 0
excluded       neither, and the paper's Δ lies beyond the interval on the better side: the data
               exclude an effect as large as the paper's
inconclusive   otherwise (also with fewer than two seeds, where there is no interval)
"""
import numpy as np
from scipy import stats

from evaluation.report import MATCH_TOL, load_paper

LOWER_IS_BETTER = {"rel", "log10", "rms"}
VERDICTS = ("shown", "reversed", "excluded", "inconclusive")

# ---- the seed rule (stated before the results; do not tune) ---------------------------------------
RULE_METRIC = "rel"
RULE_STD = 0.0020          # paired std of Δrel, depth-pretrained regime (docs/claims/depth_pretrained/claims.json)
RULE_EFFECT = -0.003       # the paper's Δrel at 1/4 labeled: 0.235 − 0.238 (Table 2)
RULE_ALPHA = 0.05          # two-sided paired t-test
RULE_POWER = 0.80
RULE_MIN_REFERENCE = 3     # seeds of the reference arms (reference points, not claims)
# The share arms (make claims-extra), fixed with the rule, before any of their results: the paper's
# T = 0.9 kept 0-0.6 % of the unlabeled pixels in most semi epochs of the depth-free probe
# (docs/claims/rotation_probe), so its lambda arm can hardly differ from lambda 0.  `share` keeps the
# RULE_SHARE most confident unlabeled pixels of each step instead (--keep-share; NOT the paper's
# method), `share_oracle` the same mask with ground truth in the cache.  0.25 is a round value, not tuned.
RULE_SHARE = 0.25
REFERENCE_ARMS = ("headroom", "oracle", "share", "share_oracle")
PAPER_FRAC = 0.25          # the labeled fraction of the claims runs (the paper's 1/4 row)
CI_LEVEL = 0.95


def better_sign(metric):
    """+1 where a larger value is better (d1-d3), -1 where a smaller one is (rel, log10, rms)."""
    return -1.0 if metric in LOWER_IS_BETTER else 1.0


def t_interval(diffs, level=CI_LEVEL):
    """(mean, sd, [low, high]) of paired differences: mean ± t(1 - (1 - level)/2, n - 1) · sd / √n.
    sd and the interval are None with fewer than two values; the mean is None without any."""
    d = np.asarray([x for x in diffs if x is not None], np.float64)
    if d.size == 0:
        return None, None, None
    mean = float(d.mean())
    if d.size < 2:
        return mean, None, None
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(1 - (1 - level) / 2, d.size - 1)) * sd / np.sqrt(d.size)
    return mean, sd, [mean - half, mean + half]


def verdict(ci, metric, paper_delta=None):
    """One of ``VERDICTS`` for a Δ interval ``ci`` ([low, high] or None) of ``metric`` (module docstring)."""
    if ci is None:
        return "inconclusive"
    sign = better_sign(metric)
    low, high = sorted((sign * ci[0], sign * ci[1]))  # the interval of the gain (> 0 = better)
    if low > 0:
        return "shown"
    if high < 0:
        return "reversed"
    if paper_delta is not None and sign * paper_delta > high:
        return "excluded"
    return "inconclusive"


def delta_stats(diffs, metric, paper_delta=None, seeds=None):
    """``delta`` (mean), ``sd``, ``ci95``, ``verdict``, ``n``, ``paper_delta`` and ``paper_in_ci`` of
    paired differences (arm − base, one per seed; None entries are left out)."""
    mean, sd, ci = t_interval(diffs)
    out = {"delta": mean, "sd": sd, "ci95": ci, "verdict": verdict(ci, metric, paper_delta),
           "n": sum(x is not None for x in diffs), "paper_delta": paper_delta,
           "paper_in_ci": None if ci is None or paper_delta is None else bool(ci[0] <= paper_delta <= ci[1])}
    if seeds is not None:
        out["seeds"] = list(seeds)
    return out


def share(delta, reference, metric):
    """``delta`` (an arm's mean Δ vs the base) as a fraction of ``reference`` (another arm's mean Δ vs
    the same base): better_sign · delta / |reference|.

    The share divides by the reference's size, so a positive share means the arm moved the better
    way whatever the reference did (whether the reference helped is told apart, see
    ``tables.shares``).  None if either is missing or the reference is 0."""
    if delta is None or reference is None or reference == 0:
        return None
    return better_sign(metric) * delta / abs(reference)


def paired_power(n, std=RULE_STD, effect=RULE_EFFECT, alpha=RULE_ALPHA):
    """Power of the two-sided paired t-test with ``n`` pairs against a true mean difference ``effect``
    with per-pair std ``std``: P(|T| > t_crit) where T is noncentral t, n - 1 degrees of freedom,
    noncentrality effect / (std / √n).  None for n < 2."""
    if n < 2:
        return None
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = abs(effect) / (std / np.sqrt(n))
    with np.errstate(divide="ignore"):  # scipy's boost nct warns spuriously for some df (values are fine)
        return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def seeds_for_power(std=RULE_STD, effect=RULE_EFFECT, alpha=RULE_ALPHA, power=RULE_POWER, n_max=1000):
    """The smallest n >= 2 whose ``paired_power`` reaches ``power``."""
    for n in range(2, n_max + 1):
        if paired_power(n, std, effect, alpha) >= power:
            return n
    raise ValueError("more than %d seeds needed" % n_max)


def seed_rule(achieved=None, reference_arms=REFERENCE_ARMS, main_arms=("lambda0", "lambda0.1")):
    """The rule's constants, the n it asks for and, with ``achieved`` ({arm: n seeds}), whether each
    arm reached it (the paper's two arms: the power n; ``reference_arms``: ``RULE_MIN_REFERENCE``)."""
    n = seeds_for_power()
    rule = {"primary_metric": RULE_METRIC, "paired_std": RULE_STD, "effect": RULE_EFFECT, "alpha": RULE_ALPHA,
            "power": RULE_POWER, "test": "two-sided paired t-test", "n_required": n,
            "power_at_n_required": paired_power(n), "power_at": {str(k): paired_power(k) for k in (3, 6, 10)},
            "n_required_at_std_0.003": seeds_for_power(std=0.003), "min_reference_seeds": RULE_MIN_REFERENCE,
            "paired_std_source": "docs/claims/depth_pretrained/claims.json (depth-pretrained stand-in, 3 seeds)",
            "keep_share": RULE_SHARE, "reference_arms": list(reference_arms)}
    if achieved is not None:
        need = {a: n for a in main_arms}
        need.update({a: RULE_MIN_REFERENCE for a in reference_arms})
        rule["achieved"] = {a: {"n": k, "required": need.get(a), "met": None if a not in need else k >= need[a]}
                            for a, k in sorted(achieved.items())}
        rule["achieved_power"] = {a: paired_power(k) for a, k in sorted(achieved.items()) if a in main_arms}
    return rule


# ---- the paper's numbers (NYU) ---------------------------------------------------------------------
def paper_row(labeled_frac, lam, paper=None):
    """The paper's Table 2 row at this labeled fraction and λ (None if it has none)."""
    paper = paper or load_paper()
    rows = [r for r in paper["table2"]["rows"] if abs(r["labeled_frac"] - labeled_frac) < MATCH_TOL
            and abs(r["lambda_semi"] - lam) < MATCH_TOL]
    return rows[0] if rows else None


def is_paper_method(arm):
    """An arm the paper has a row for: its own pseudo-labels, and T = 0.9 (no --keep-share) whenever λ > 0."""
    if arm.get("pseudo_labels", "model") not in (None, "model") or arm.get("keep_share") is not None:
        return False
    return arm["lambda"] == 0 or arm.get("t_semi") is None or abs(arm["t_semi"] - 0.9) < MATCH_TOL


def paper_delta(arm, base_frac=PAPER_FRAC, metric="rel", paper=None):
    """The paper's Δ of ``metric`` for an arm ({lambda, labeled_frac, t_semi, pseudo_labels}) against
    its λ = 0 row at ``base_frac``; None when the paper has no such pair (oracle, other T, ...)."""
    if not is_paper_method(arm):
        return None
    paper = paper or load_paper()
    mine, base = paper_row(arm["labeled_frac"], arm["lambda"], paper), paper_row(base_frac, 0.0, paper)
    if mine is None or base is None or mine is base:
        return None
    return round(mine[metric] - base[metric], 6)


def paper_table1_delta(labeled_frac=PAPER_FRAC, paper=None):
    """The paper's Table 1 rel(T = 0.9) − rel(T = 0) at ``labeled_frac`` (None if absent)."""
    paper = paper or load_paper()
    rows = {r["t_semi"]: r["rel"] for r in paper["table1"]["rows"] if abs(r["labeled_frac"] - labeled_frac) < MATCH_TOL}
    return round(rows[0.9] - rows[0.0], 6) if 0.9 in rows and 0.0 in rows else None


def paper_shares(metrics, paper=None):
    """Per metric, the paper's λ = 0.1 gain at 1/4 as a fraction of its headroom (λ = 0 at 1/4 minus
    λ = 0 at 1/2), signed like ``share``."""
    paper = paper or load_paper()
    lam = paper_row(PAPER_FRAC, 0.1, paper)
    base, half = paper_row(PAPER_FRAC, 0.0, paper), paper_row(0.5, 0.0, paper)
    if not (lam and base and half):
        return {m: None for m in metrics}
    return {m: share(lam[m] - base[m], half[m] - base[m], m) for m in metrics}
