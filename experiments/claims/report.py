"""claims.md and claims_rel.png from the dict of ``tables.aggregate`` (claims.json).

Every sentence that judges a claim is built from the numbers it states; the only fixed text is the
seed rule, the setup and the definitions.  Each paired Δ is printed with its 95 % t-interval and
its verdict (``stats``); the paper's numbers, measured on NYU Depth V2, appear only in columns
headed "paper (NYU)", beside ours, and are never compared with ours as levels.
"""
import os
import shutil

import numpy as np

from common.files import read_json, write_json_atomic, write_text_atomic
from evaluation import EvaluationError

from . import stats
from .diagnosis import diagnosis_lines, rel_plot
from .formatting import arrow, fmt, fmt_ci, fmt_ms, pct, seeds_text, signed
from .tables import (HEADROOM_ARM, ORACLE_ARM, TABLE2, aggregate, from_claims, load_runs,
                     mixed_cpu_seeds)

PROTOCOL_TEXT = {"eigen": "`eigen`: raw ground truth, Eigen crop, 1e-3 < depth < 10 m, mean over images",
                 "full": "`full`: filled ground truth, no crop, every pixel > 0, pooled over pixels "
                         "(the protocol of Table 1's rel, so the two tables can be read under one protocol)"}


# ---- the rule, stated first ---------------------------------------------------------------------------
def rule_lines(regimes):
    r = regimes[0][1]["seed_rule"]
    L = ["## Seed rule (fixed before any result)", "",
         "Written in `experiments/claims/stats.py` before the runs it applies to and not changed after them: "
         "primary metric %s; the paired std of Δrel over seeds measured in the earlier, depth-pretrained regime "
         "(%s); the effect to detect is the paper's Δrel at 1/4 labeled (column paper (NYU)); %s at α = %g; %d %% "
         "power. The reference arms (%s) are reference points, not claims: at least %d seeds each."
         % (r["primary_metric"], r["paired_std_source"], r["test"], r["alpha"], 100 * r["power"],
            ", ".join(r.get("reference_arms") or ("headroom", "oracle")), r["min_reference_seeds"]), ""]
    if r.get("keep_share") is not None:
        L += ["Fixed with the rule, before any of their results: the `share` arm keeps the %g %% most confident "
              "unlabeled pixels of each step (`--keep-share %g`, NOT the paper's method; the paper's T = 0.9 kept "
              "almost no pixel of the depth-free probe in most semi epochs), `share_oracle` the same mask with ground truth "
              "in the cache." % (100 * r["keep_share"], r["keep_share"]), ""]
    L += ["| primary metric | paired std of Δrel | paper (NYU) Δrel at 1/4 | test | power | seeds needed |",
          "|---|---:|---:|---|---:|---:|",
          "| %s | %.4f | %s | %s, α = %g | %d %% | %d |" % (r["primary_metric"], r["paired_std"],
                                                         signed(r["effect"], 3), r["test"], r["alpha"],
                                                         100 * r["power"], r["n_required"]), "",
          "The power is exact (noncentral t, n − 1 degrees of freedom): %s with 3 seeds, %s with 6, %s with 10; "
          "at a paired std of 0.003 the rule would need %d seeds." % (
              fmt(r["power_at"]["3"]), fmt(r["power_at"]["6"]), fmt(r["power_at"]["10"]),
              r["n_required_at_std_0.003"]), "",
          "Achieved (each arm paired with lambda0 on the seeds both have):", "",
          "| regime | arm | seeds | n | required | met | power of this n against the paper (NYU) Δrel |",
          "|---|---|---|---:|---:|---|---:|"]
    for name, block in regimes:
        rule, by_arm = block["seed_rule"], block["setup"].get("seeds_by_arm", {})
        for arm, a in rule.get("achieved", {}).items():
            L.append("| %s | %s | %s | %d | %s | %s | %s |" % (
                name, arm, seeds_text(by_arm.get(arm)), a["n"], "—" if a["required"] is None else a["required"],
                "—" if a["met"] is None else ("yes" if a["met"] else "**no**"),
                fmt(rule.get("achieved_power", {}).get(arm))))
    return L + [""]


# ---- setup ------------------------------------------------------------------------------------------
def setup_lines(name, c):
    s = c["setup"]
    pre = s.get("pretrain") or {}
    L = ["Data: %s synthetic scenes (%s train sources, %s test), inputs %s, %s rows per training source; "
         "labeled fraction %g (arms: %s), seeds %s (a seed sets split, initialisation and shuffling; every arm "
         "shares it). Schedule: %s epochs, L_semi from epoch %s (0-based; paper: 100 / 40). Paper settings: "
         "T_semi %g, α %g, λ %g, SGD lr %g momentum %g wd %g poly %g, Adam %g, batch %s. Evaluation: LAST "
         "checkpoint." % (
             s.get("n_scenes", "?"), s.get("n_train", "?"), s.get("n_test", "?"),
             "x".join(str(v) for v in s.get("input_size") or []), s.get("copies", "?"), s["labeled_frac"],
             ", ".join("%s %g" % kv for kv in (s.get("labeled_fracs") or {}).items()) or "—",
             seeds_text(s["seeds"]), s.get("epochs", "?"), s.get("semi_start", "?"), s["t_semi"], s["alpha"],
             s["lambdas"][1], s["lr"], s["momentum"], s["wd"], s["poly_power"], s["conf_lr"], s["batch_size"]), ""]
    if s.get("backbone_params"):
        L += ["Backbone: %s, loaded with `--backbone-params` as ImageNet weights would be (BatchNorm frozen: %s, "
              "top-down layers fresh), saved by `python -m %s` from a ResNet-50 trained from scratch "
              "on %s other synthetic scenes (generator seed %s; the claims' scenes use seed %s) for %s epochs at lr "
              "%s. %s" % (pre.get("backbone", s["backbone_params"]), s.get("freeze_bn"),
                          "training.pretext" if pre.get("task") == "rotation" else "training.save_backbone", pre.get("n_scenes", "?"),
                          pre.get("generator_seed", "?"), pre.get("scenes_seed_of_claims", "?"),
                          pre.get("epochs", "?"), pre.get("lr", "?"), stand_in_sentence(pre)), ""]
    cpus, mixed = mixed_cpu_seeds(c.get("per_seed") or [])
    if cpus:
        L += [("Every run trained on one CPU model: %s." % cpus[0]) if len(cpus) == 1 else
              ("Runs trained on %d CPU models (%s); seeds whose arms come from more than one: %s (their paired "
               "Δ mixes machines, whose numbers differ for the same seed)." % (
                  len(cpus), ", ".join(cpus), seeds_text(mixed))), ""]
    if s.get("wall_seconds") is not None:
        spread = "" if s.get("invocations", 1) == 1 else \
            " over %d invocations (the time between them not counted)" % s["invocations"]
        L += ["Wall time %.1f min%s on %s (%s cores, OMP_NUM_THREADS %s), pretraining included." % (
            s["wall_seconds"] / 60, spread, s.get("cpu", "?"), s.get("cores", "?"), s.get("omp_num_threads", "?")), ""]
    return L


def stand_in_sentence(pre):
    """What the stand-in learned and what it did not, from its task and pretext.json."""
    task, pt = pre.get("task"), pre.get("pretext") or {}
    if task == "depth":
        return ("Its task was depth itself, supervised: it starts the claims runs knowing depth on this "
                "generator's scenes, far more of it than the 1/4-labeled runs are meant to have.")
    if task == "rotation":
        acc = ""
        if pt:
            acc = " Pretext accuracy %s on its training images, %s on held-out ones (chance %s) after %s epochs." % (
                fmt(pt.get("accuracy_train")), fmt(pt.get("accuracy_heldout")),
                fmt(1.0 / pt["classes"]) if pt.get("classes") else "?", pt.get("epochs", "?"))
        return ("Its task was to tell each image's rotation (0/90/180/270°), labels that hold no depth and no "
                "geometry computed from depth; whatever it knows about depth is what telling up from down needed, "
                "and it never saw a depth map." + acc)
    return "Its pretraining task: %s." % (task or "not recorded")


# ---- tables -------------------------------------------------------------------------------------------
def table2_lines(t2, semi_lam, protocol):
    L = ["### Table 2 analogue, protocol `%s`" % protocol, "", "Test set, protocol %s." % PROTOCOL_TEXT[protocol], ""]
    if not t2:
        return L + ["Not scored under this protocol (no `test_full` in pseudo_sweep.json nor "
                    "`metrics_by_protocol.full` in eval.json).", ""]
    L += ["| metric | λ = 0 | λ = %g | Δ (λ%g − λ0) | 95 %% CI | verdict | seeds | paper (NYU) Δ at 1/4 |"
          % (semi_lam, semi_lam), "|---|---:|---:|---:|---|---|---:|---:|"]
    for m in TABLE2:
        r = t2[m]
        L.append("| %s | %s | %s | %s | %s | %s | %d | %s |" % (
            arrow(m), fmt_ms(r["base"]), fmt_ms(r["semi"]), signed(r["delta"]), fmt_ci(r["ci95"]), r["verdict"],
            r["n"], signed(r["paper_delta"], 3)))
    extras = sorted({a for m in TABLE2 for a in t2[m]["extra"]})
    if extras:
        L += ["", "Extra arms against λ = 0 on the seeds both have (they depart from the paper and are reported "
              "beside it, never in its place; %s = λ 0 at 1/2 labeled, %s = λ %g with ground truth as pseudo-labels, "
              "same mask):" % (HEADROOM_ARM, ORACLE_ARM, semi_lam), "",
              "| arm | metric | arm | Δ (arm − λ0) | 95 % CI | verdict | seeds | paper (NYU) Δ |",
              "|---|---|---:|---:|---|---|---:|---:|"]
        for a in extras:
            for m in TABLE2:
                e = t2[m]["extra"].get(a)
                if e:
                    L.append("| %s | %s | %s | %s | %s | %s | %d | %s |" % (
                        a, arrow(m), fmt_ms(e["mean"]), signed(e["delta"]), fmt_ci(e["ci95"]), e["verdict"], e["n"],
                        signed(e["paper_delta"], 3)))
    return L + [""]


def shares_lines(sh, semi_lam, arm=None, oracle=ORACLE_ARM):
    """The shares table of the λ arm (or of extra ``arm`` against its own ``oracle`` arm)."""
    name = arm or "λ%g" % semi_lam
    L = ["### The %s gain as a share of %s's and of the headroom (protocol `eigen`)" % (
             "λ = %g" % semi_lam if arm is None else "`%s`" % arm, "the oracle" if arm is None else "`%s`" % oracle), "",
         "Share = (%s − λ0) / |reference − λ0|, mean over the seeds the three arms share, signed so that a positive "
         "share means %s moved the better way; %s = %s with ground-truth pseudo-labels (what L_semi can give "
         "with this mask and λ), headroom = λ 0 at 1/2 labeled (what more labels give)." % (
             name, name, oracle, name), ""]
    run = {ref: sh.get(ref) for ref in (oracle, HEADROOM_ARM)}
    for ref, v in run.items():
        if v is None:
            L += ["`%s`: not run." % ref, ""]
    if not any(run.values()):
        return L
    L += ["| metric | Δ %s | Δ %s | share of %s | Δ headroom | share of headroom | "
          "paper (NYU) share of headroom |" % (name, oracle, oracle), "|---|---:|---:|---:|---:|---:|---:|"]
    for m in TABLE2:
        o, h = (run[oracle] or {}).get(m), (run[HEADROOM_ARM] or {}).get(m)
        first = o or h
        L.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            arrow(m), signed(first["delta"]), signed(o and o["reference_delta"]), ref_share(o),
            signed(h and h["reference_delta"]), ref_share(h), pct(h["paper_share"] if h else None)))
    return L + ["", "A share marked † has a reference that did not improve on λ = 0, so it is no fraction of a gain.",
                ""]


def ref_share(entry):
    if not entry:
        return "—"
    return pct(entry["share"]) + ("" if entry["reference_helped"] else " †")


def table1_lines(c):
    t1, s = c["table1"], c["setup"]
    L = ["### Table 1 analogue: pseudo-labels of the unlabeled training images, protocol `full`", "",
         "rel pooled over the valid pixels with confidence C ≥ T (1/4 resolution); kept = share of all unlabeled "
         "pixels with C ≥ T. Rows at the runs' own T and at T = 0 come from `evaluate.py --table1`; T = 0.9 (the "
         "paper's), when a run trained with another T, from `python -m experiments.claims pseudo` with the same "
         "definitions. *ordered* = seeds where rel(T) < rel(T = 0), out of the seeds that kept any pixel at T.", "",
         "| λ / arm | T | rel (mean ± std) | kept (mean ± std) | ordered |", "|---|---|---:|---:|---:|"]
    for lam, rows in t1["summary"].items():
        for t, r in rows.items():
            L.append("| %s | %s | %s | %s | %s |" % (lam, t, fmt_ms(r["rel"]), fmt_ms(r["kept_fraction"]),
                                                      "—" if r["ordered"] is None else "%d/%d" % tuple(r["ordered"])))
    L += ["", "Paired over seeds: Δ = rel(T = 0.9) − rel(T = 0) of each arm, and how well the final confidence ranks "
          "the errors of the same pixels: AURG = area between the random and the confidence sparsification curves "
          "(> 0: better than chance), AUSE = area between the confidence and the oracle curves (0 = perfect), "
          "fractions 0 to 0.99, not normalised.", "",
          "| arm | Δ rel (T 0.9 − T 0) | 95 % CI | verdict | seeds | AURG (95 % CI) | AUSE (95 % CI) | "
          "paper (NYU) Δ |", "|---|---:|---|---|---:|---|---|---:|"]
    for arm in s["arms"]:
        d, sp = t1["delta"].get(arm), t1.get("sparsification", {}).get(arm)
        if d is None:
            continue
        L.append("| %s | %s | %s | %s | %d | %s | %s | %s |" % (
            arm, signed(d["delta"]), fmt_ci(d["ci95"]), d["verdict"], d["n"], sparse_cell(sp, "aurg"),
            sparse_cell(sp, "ause"), signed(d["paper_delta"], 2)))
    return L + [""]


def sparse_cell(sp, key):
    if not sp:
        return "—"
    return "%s %s" % (fmt(sp[key]["mean"], 4), fmt_ci(sp[key]["ci95"]))


def per_seed_lines(c):
    L = ["Per seed (test set, protocol `eigen`):", "", "| seed | arm | labeled | " + " | ".join(TABLE2) + " |",
         "|---|---|---:|" + "---:|" * len(TABLE2)]
    for p in c["per_seed"]:
        L.append("| %d | %s | %g | %s |" % (p["seed"], p["arm"], p["labeled_frac"],
                                            " | ".join(fmt(p["metrics"][m]) for m in TABLE2)))
    L += ["", "Per seed, Table 1:", "", "| seed | arm | T | rel | kept |", "|---|---|---|---:|---:|"]
    for p in c["per_seed"]:
        for t, r in p["table1"].items():
            L.append("| %d | %s | %s | %s | %s |" % (p["seed"], p["arm"], t, fmt(r["rel"]), fmt(r["kept_fraction"], 4)))
    return L + [""]


def regime_lines(name, c, main):
    s = c["setup"]
    L = ["## Regime `%s`%s" % (name, " (main)" if main else ""), ""] + setup_lines(name, c)
    L += table2_lines(c["table2"], s["lambdas"][1], "eigen")
    L += table2_lines(c.get("table2_full"), s["lambdas"][1], "full")
    L += shares_lines(c.get("shares") or {}, s["lambdas"][1])
    for arm, v in sorted((c.get("shares_by_arm") or {}).items()):
        L += shares_lines(v["eigen"], s["lambdas"][1], arm, v["oracle_arm"])
    L += table1_lines(c) + per_seed_lines(c)
    return L


# ---- the verdicts, one sentence per claim -------------------------------------------------------------
def claim_sentences(c):
    """The claims of one regime stated from its numbers (no judgement beyond them)."""
    s, t1 = c["setup"], c["table1"]
    semi = s["arms"][1]
    lam = "%g" % s["lambdas"][1]
    out = []
    d, sp = t1["delta"].get(semi), (t1.get("sparsification") or {}).get(semi)
    if d is None or d["n"] == 0:
        out.append("Table 1 (pixels with C ≥ 0.9 have a lower rel than all pixels): no unlabeled pixel reached C ≥ 0.9 "
                   "on any seed of λ = %s, so the ordering cannot be checked at the paper's threshold" % lam)
    else:
        rank = "; AURG/AUSE not measured (no `sparsification` in the sweeps)"
        if sp:
            chance = {"shown": "better than chance", "reversed": "worse than chance"}.get(
                stats.verdict(sp["aurg"]["ci95"], "aurg"), "not shown to be better than chance")
            rank = ("; the confidence ranks the errors of these pixels %s: AURG %s %s, AUSE %s %s (0 = the oracle's "
                    "ranking); any confidence that ranks errors better than chance gives this ordering" % (
                        chance, fmt(sp["aurg"]["mean"], 4), fmt_ci(sp["aurg"]["ci95"]), fmt(sp["ause"]["mean"], 4),
                        fmt_ci(sp["ause"]["ci95"])))
        out.append("Table 1 (pixels with C ≥ 0.9 have a lower rel than all pixels), λ = %s, protocol `full`: "
                   "rel(T = 0.9) − rel(T = 0) = %s, 95 %% CI %s over %d seeds%s: **%s**%s" % (
                       lam, signed(d["delta"]), fmt_ci(d["ci95"]), d["n"],
                       " (%d more kept no pixel)" % d["n_no_pixel"] if d["n_no_pixel"] else "", d["verdict"], rank))
    for key, protocol in (("table2", "eigen"), ("table2_full", "full")):
        t2 = c.get(key)
        if not t2:
            continue
        counts = {v: sum(t2[m]["verdict"] == v for m in TABLE2) for v in stats.VERDICTS}
        out.append("Table 2 (λ = %s better than λ = 0 on all six metrics), protocol `%s`, %d paired seeds: %s; "
                   "shown on %d of 6 metrics, reversed on %d, excluded on %d, inconclusive on %d" % (
                       lam, protocol, t2["rel"]["n"], "; ".join("%s Δ %s %s **%s**" % (
                           m, signed(t2[m]["delta"]), fmt_ci(t2[m]["ci95"]), t2[m]["verdict"]) for m in TABLE2),
                       counts["shown"], counts["reversed"], counts["excluded"], counts["inconclusive"]))
    sh = c.get("shares") or {}
    parts = []
    for ref, what in ((ORACLE_ARM, "of the oracle's gain"), (HEADROOM_ARM, "of the headroom")):
        v = sh.get(ref)
        if v is not None:
            parts.append("%s %s (seeds %s)" % (", ".join("%s %s" % (m, ref_share(v[m])) for m in ("rel", "log10", "d1")),
                                               what, seeds_text(v["rel"]["seeds"])))
    missing = [ref for ref in (ORACLE_ARM, HEADROOM_ARM) if sh.get(ref) is None]
    if parts:
        out.append("The λ = %s gain over λ = 0 (protocol `eigen`) is %s%s; the paper (NYU) column of the shares "
                   "table holds the paper's own shares of its headroom" % (
                       lam, "; ".join(parts), "; %s not run" % " and ".join(missing) if missing else ""))
    else:
        out.append("The λ = %s gain cannot be set against an oracle or a headroom: neither arm was run" % lam)
    for arm, v in sorted((c.get("shares_by_arm") or {}).items()):
        t2 = (c.get("table2") or {}).get("rel", {}).get("extra", {}).get(arm)
        o = (v["eigen"] or {}).get(v["oracle_arm"])
        if t2:
            out.append("`%s` (not the paper's method, see the rule), protocol `eigen`, %d paired seeds: rel Δ %s %s "
                       "**%s**; %s" % (arm, t2["n"], signed(t2["delta"]), fmt_ci(t2["ci95"]), t2["verdict"],
                                       "%s of `%s`'s gain in rel" % (ref_share(o["rel"]), v["oracle_arm"]) if o
                                       else "`%s` not run" % v["oracle_arm"]))
    cov = [e["coverage_pct"] for e in (c.get("diagnosis") or {}).get("coverage", {}).get(semi, [])
           if e["coverage_pct"] is not None]
    if cov:
        out.append("mask coverage over the semi epochs of λ = %s: mean %.2f%%, min %.2f%%, max %.2f%%%s" % (
            lam, float(np.mean(cov)), min(cov), max(cov),
            " — L_semi was identically 0, so λ = %s trained exactly like λ = 0 apart from run-to-run noise" % lam
            if max(cov) == 0 else ""))
    return out


def markdown(regimes, appendix=None):
    """claims.md of ``regimes`` [(name, block)], the main regime first."""
    main = regimes[0][1]
    L = ["# Claims on the synthetic set: Table 1 ordering and Table 2 gain", ""]
    L += rule_lines(regimes)
    L += ["## Verdict", "", "Verdicts of a paired Δ's 95 %% CI: %s." % "; ".join([
        "**shown** = entirely on the better side of 0", "**reversed** = entirely on the worse side",
        "**excluded** = the paper (NYU)'s Δ lies beyond the CI on the better side: the data exclude an effect as "
        "large as the paper's", "**inconclusive** otherwise"]), ""]
    for name, block in regimes:
        L += ["Regime `%s`:" % name, ""] + ["- %s." % v for v in claim_sentences(block)] + [""]
    for k, (name, block) in enumerate(regimes):
        L += regime_lines(name, block, k == 0)
    L += ["## Test rel over epochs (regime `%s`)" % regimes[0][0], "", "![test rel per epoch](claims_rel.png)", "",
          "Mean over seeds, band = ±1 std, from the per-epoch `test` entries of metrics.jsonl (`--track-test`). "
          "For display only: no checkpoint, epoch or setting was chosen with them.", ""]
    L += diagnosis_lines(main)
    if appendix:
        L += ["", appendix.rstrip(), ""]
    return "\n".join(L) + "\n"


def read_pretext(out):
    """The depth-free stand-in's pretext task and accuracy: OUT/pretrain/pretext.json, else the
    backbone.json that ``python -m training.pretext`` writes beside backbone.params; None if neither."""
    for name in ("pretext.json", "backbone.json"):
        record = read_json(os.path.join(out, "pretrain", name), required=False, error=EvaluationError)
        if record and record.get("task"):
            return record
    return None


def load_regime(path):
    """A regime block from another claims OUT directory (with its setup.json, if any) or from a
    claims.json written earlier (``tables.from_claims``)."""
    if os.path.isdir(path):
        setup = read_json(os.path.join(path, "setup.json"), required=False, error=EvaluationError)
        return aggregate(load_runs(path), setup, read_pretext(path))
    return from_claims(read_json(path, error=EvaluationError))


def write_report(out, setup=None, docs=None, appendix=None, regimes=()):
    """claims.json, claims.md and claims_rel.png in ``out`` (and copies in ``docs``).

    The runs of ``out`` are the main regime, named after its stand-in's pretraining task;
    ``regimes`` [(name, path)] are the others (``load_regime``), in claims.json under
    ``other_regimes``; the text of the file ``appendix`` (an earlier experiment) becomes the last
    section of claims.md."""
    main = aggregate(load_runs(out), setup, read_pretext(out))
    name = main["regime"] = main["regime"] or "main"
    others = []
    for other, path in regimes:
        if other == name or other in dict(others):
            raise EvaluationError("regime name %s is used twice" % other)
        block = load_regime(path)
        block["regime"] = other
        others.append((other, block))
    claims = dict(main, other_regimes=dict(others))
    written = [write_json_atomic(os.path.join(out, "claims.json"), claims)]
    text = markdown([(name, main)] + others, open(appendix).read() if appendix else None)
    written.append(write_text_atomic(os.path.join(out, "claims.md"), text))
    written.append(rel_plot(main["curves"], main["setup"]["semi_start"], os.path.join(out, "claims_rel.png")))
    if docs:
        os.makedirs(docs, exist_ok=True)
        for p in list(written):
            written.append(shutil.copy(p, os.path.join(docs, os.path.basename(p))))
    return written
