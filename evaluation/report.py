"""Tables 1 and 2 of the paper next to the numbers of our runs.

Usage::

    python -m evaluation.report runs/A runs/B ... [--out report.md] [--note TEXT] [--checkpoint best]

Each run directory needs ``config.json`` and ``eval.json`` (``evaluate.py``; with
``--checkpoint best``, ``eval_best.json``); a run without it is skipped with a
one-line warning, so ``runs/*`` works.  ``table1.json`` (``evaluate.py --table1``)
is used when present.  A table at the top names each run's checkpoint, threshold
T_semi, epochs and protocol as its own files record them.  Table 2 rows
are matched by (labeled fraction, lambda), Table 1 rows by (labeled fraction,
T).  Differences are ours - paper.  When a run's data is not NYU Depth V2
(``"dataset"`` in config.json, or the ``dataset`` attribute of the prepared
``train.h5``), a banner says the paper columns are another dataset's numbers,
for reference only.
"""
import json
import os
import sys

import h5py
import numpy as np

from common.cli import OneLineParser
from common.files import open_new_file, read_json
from rundir.records import read_config

from . import EvaluationError
from .metrics import DEFAULT_PROTOCOL

PAPER_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "paper_results.json")
MATCH_TOL = 1e-6  # labeled fractions and lambdas are compared as floats
# Depth above this median is far beyond any room (NYU: 0.7-10 m) and typical of millimetres.
MM_MEDIAN = 100.0


def checkpoint_file(name, checkpoint="last"):
    """The file ``evaluate.py --checkpoint CHECKPOINT`` writes for ``name``: ``last`` keeps the
    plain name (eval.json), any other checkpoint adds its own (eval_best.json, qualitative_best.png)."""
    tag = os.path.basename(os.path.normpath(str(checkpoint)))
    if tag in ("last", "", "."):
        return name
    stem, ext = os.path.splitext(name)
    return "%s_%s%s" % (stem, "".join(c if c.isalnum() or c in "-." else "_" for c in tag), ext)


def scoring_file(name, checkpoint="last", protocol=None, flip=False, int8=False):
    """The file one scoring writes: ``name`` with the checkpoint (``checkpoint_file``), then the protocol
    unless it is the default one, ``flip`` (--flip-tta) and ``int8``: eval.json, eval_full.json,
    eval_best_eigen-gt-filled-align-median_flip_int8.json.  Two scorings that differ in any of these
    never share a file."""
    stem, ext = os.path.splitext(checkpoint_file(name, checkpoint))
    tags = []
    if protocol and protocol != DEFAULT_PROTOCOL:
        tags.append("".join(c if c.isalnum() or c in "." else "-" for c in protocol).strip("-"))
    tags += ["flip"] * bool(flip) + ["int8"] * bool(int8)
    return "_".join([stem] + tags) + ext


def units_warning(median_depth, source):
    """A one-line warning when depth looks like millimetres (median > MM_MEDIAN), else None."""
    if np.isfinite(median_depth) and median_depth > MM_MEDIAN:
        return ("warning: %s: median predicted depth is %.4g; depth must be in metres (millimetres? divide by 1000)"
                % (source, median_depth))
    return None


def load_paper(path=PAPER_RESULTS):
    with open(path) as f:
        return json.load(f)


def dataset_name(config):
    """'nyu', 'synthetic', ... from config.json, else from train.h5's attrs; None if unrecorded."""
    if config.get("dataset"):
        return str(config["dataset"])
    train = os.path.join(str(config.get("data", "")), "train.h5")
    if os.path.isfile(train):
        try:
            with h5py.File(train, "r") as h5:
                name = h5.attrs.get("dataset")
        except OSError:
            return None
        if name is not None:
            return name.decode() if isinstance(name, bytes) else str(name)
    return None


def load_run(run_dir, checkpoint="last"):
    """config.json, eval.json and (optional) table1.json of a run, plus its dataset name."""
    config = read_config(run_dir, EvaluationError)
    evaluation = read_json(os.path.join(run_dir, checkpoint_file("eval.json", checkpoint)), error=EvaluationError)
    for key in ("labeled_frac", "lambda_semi"):
        if key not in config:
            raise EvaluationError("%s: no '%s'" % (os.path.join(run_dir, "config.json"), key))
    loaded = checkpoint_file("eval.json", checkpoint)
    others = sorted(n for n in os.listdir(run_dir) if n.startswith("eval") and n.endswith(".json") and n != loaded)
    return {"name": os.path.basename(os.path.normpath(run_dir)), "dir": run_dir, "config": config,
            "eval": evaluation, "other_scorings": others, "table1": read_json(os.path.join(run_dir, checkpoint_file("table1.json", checkpoint)),
                                                    required=False, error=EvaluationError),
            "dataset": dataset_name(config)}


def evaluated_runs(run_dirs, checkpoint="last"):
    """The run directories with an eval file, and a one-line warning for each one skipped.

    EvaluationError if none is left (a typo should not give an empty report).
    """
    name = checkpoint_file("eval.json", checkpoint)
    kept, warnings = [], []
    for run_dir in run_dirs:
        if os.path.isfile(os.path.join(run_dir, name)):
            kept.append(run_dir)
        elif os.path.isdir(run_dir):
            warnings.append("warning: %s has no %s (run evaluate.py --run %s%s); skipped"
                            % (run_dir, name, run_dir, "" if checkpoint == "last" else " --checkpoint " + checkpoint))
        else:
            warnings.append("warning: %s is not a run directory; skipped" % run_dir)
    if not kept:
        raise EvaluationError("no run to report: %s" % warnings[0][len("warning: "):])
    return kept, warnings


def runs_lines(runs):
    """What each run's own files say was scored: checkpoint, threshold, epochs, protocol."""
    lines = ["| run | data | labeled | λ | T_semi | epochs | checkpoint scored | protocol | other scorings |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        cfg, ev = run["config"], run["eval"]
        checkpoint = ev.get("checkpoint")
        if checkpoint:  # the path recorded by evaluate.py, shown relative to the run
            checkpoint = os.path.relpath(checkpoint, os.path.abspath(run["dir"])) \
                if os.path.isabs(checkpoint) else checkpoint
        t_semi = cfg.get("t_semi")
        scored = "`%s`" % checkpoint if checkpoint else "not recorded"
        if "chosen_on_val_images" in ev:
            scored += " (chosen on %d validation images)" % ev["chosen_on_val_images"]
        lines.append("| %s | %s | %s | %g | %s | %s | %s | %s | %s |" % (
            run["name"], run["dataset"] or "?", _frac(cfg["labeled_frac"]), cfg["lambda_semi"],
            "-" if t_semi is None else ("%g" % t_semi) + ("" if cfg["lambda_semi"] > 0 else " (unused, λ = 0)"),
            extent_cell(ev, cfg), scored, "`%s`%s%s" % (ev.get("protocol", {}).get("name", "?"),
                                                       " + flip TTA" if ev.get("flip_tta") else "",
                                                       " + INT8" if ev.get("int8") else ""),
            ", ".join("`%s`" % n for n in run.get("other_scorings", [])) or "-"))
    return lines


def extent_cell(ev, cfg):
    """'40 of 40', or how far a run that stopped early got (eval.json's trained_epochs)."""
    epochs = ev.get("epochs", cfg.get("epochs"))
    if "trained_epochs" not in ev:  # an eval.json from before the extent was recorded
        return "?" if epochs is None else str(epochs)
    cell = "%d of %s" % (ev["trained_epochs"], epochs)
    if ev.get("trained_iteration"):
        cell += " + %d steps" % ev["trained_iteration"]
    if epochs is not None and (ev["trained_epochs"] < epochs or ev.get("trained_iteration")):
        cell += " (stopped early; `train.py --resume`)"
    return cell


def _close(a, b):
    return a is not None and b is not None and abs(float(a) - float(b)) < MATCH_TOL


def _fmt(value, digits=3, sign=False):
    return "-" if value is None else ("%+.*f" if sign else "%.*f") % (digits, value)


def _diff(ours, paper):
    """ours - paper, signed, or '-' when either is missing."""
    return _fmt(None if ours is None or paper is None else ours - paper, sign=True)


def _frac(value):
    """0.5 -> '1/2', 0.25 -> '1/4', as the paper writes them."""
    for den in (2, 3, 4, 5, 8, 10):
        if abs(value * den - round(value * den)) < MATCH_TOL and round(value * den) >= 1:
            return "%d/%d" % (round(value * den), den)
    return "%g" % value


def table2_lines(runs, paper, protocol=None):
    """Table 2 rows: each run's headline metrics (eval.json ``metrics``), or those of preset ``protocol``
    (``metrics_by_protocol``; runs without it are left out)."""
    metrics = paper["table2"]["metrics"]
    lines = ["| labeled | λ | run | metric | paper | ours | ours − paper |",
             "|---|---|---|---|---:|---:|---:|"]
    for run in runs:
        frac, lam = run["config"]["labeled_frac"], run["config"]["lambda_semi"]
        row = next((r for r in paper["table2"]["rows"]
                    if _close(r["labeled_frac"], frac) and _close(r["lambda_semi"], lam)), {})
        ours = run["eval"]["metrics"] if protocol is None else \
            run["eval"].get("metrics_by_protocol", {}).get(protocol)
        if ours is None:
            continue
        for metric in metrics:
            mine = ours.get(metric)
            lines.append("| %s | %g | %s | %s | %s | %s | %s |" % (
                _frac(frac), lam, run["name"], metric, _fmt(row.get(metric)), _fmt(mine),
                _diff(mine, row.get(metric))))
    return lines


def table1_lines(runs, paper):
    lines = ["| labeled | T | run (λ) | paper rel | ours rel | ours − paper | pixels kept |",
             "|---|---|---|---:|---:|---:|---:|"]
    for run in runs:
        if run["table1"] is None:
            continue
        frac, lam = run["config"]["labeled_frac"], run["config"]["lambda_semi"]
        for entry in run["table1"]["rows"]:
            row = next((r for r in paper["table1"]["rows"]
                        if _close(r["labeled_frac"], frac) and _close(r["t_semi"], entry["t_semi"])), {})
            lines.append("| %s | %g | %s (%g) | %s | %s | %s | %.3f |" % (
                _frac(frac), entry["t_semi"], run["name"], lam, _fmt(row.get("rel"), 2),
                _fmt(entry["rel"]), _diff(entry["rel"], row.get("rel")), entry["kept_fraction"]))
    return lines


def banner_lines(runs, note=None):
    lines = []
    for run in runs:
        name = run["dataset"]
        if name is not None and not name.lower().startswith("nyu"):
            lines.append("> **%s was trained and evaluated on `%s` data, not NYU Depth V2: the paper "
                         "columns are another dataset's numbers, for reference only.**" % (run["name"], name))
    if note:
        lines.append("> **%s**" % note)
    return lines + [""] if lines else []


def build_report(run_dirs, note=None, paper=None, checkpoint="last"):
    """The markdown text of the report for ``run_dirs`` (each needs its eval file)."""
    paper = paper or load_paper()
    # the paper's row order: 1/2 before 1/4, lambda 0 before 0.1
    runs = sorted((load_run(d, checkpoint) for d in run_dirs),
                  key=lambda r: (-r["config"]["labeled_frac"], r["config"]["lambda_semi"], r["name"]))
    lines = ["# Results next to the paper", ""] + banner_lines(runs, note)
    unrecorded = [r["name"] for r in runs if r["dataset"] is None]
    if unrecorded:
        lines += ["Dataset not recorded for %s; assumed NYU Depth V2." % ", ".join(unrecorded), ""]
    lines += ["## Our runs", "", "As recorded in each run's config.json and %s (protocols: "
              "`evaluation/metrics.py`)." % checkpoint_file("eval.json", checkpoint), ""] + runs_lines(runs) + [""]
    lines += ["## Table 2: test set", "",
              "Paper: %s %s Ours: the runs above, with their own T_semi and protocol." % (
                  paper["table2"]["caption"], paper["table2"]["note"]),
              ""] + table2_lines(runs, paper) + [""]
    full = table2_lines(runs, paper, "full")
    if len(full) > 2:  # the protocol of the released code of Laina et al. [6], the paper's baseline
        lines += ["### The same under `full`", "",
                  "Filled ground truth, no crop, every pixel > 0, pooled over pixels: the protocol of the "
                  "released code of Laina et al. [6], whose network the paper builds on; the paper does not "
                  "say which protocol its Table 2 used (README \"Evaluation\").", ""] + full + [""]
    t1 = table1_lines(runs, paper)
    lines += ["## Table 1: pseudo-labels of the unlabeled training images", "",
              "Paper: %s %s Ours: rel pooled over the valid pixels with confidence ≥ T of the "
              "unlabeled rows; *pixels kept* = share of all their pixels with confidence ≥ T." % (
                  paper["table1"]["caption"], paper["table1"]["note"]), ""]
    lines += t1 if len(t1) > 2 else ["No run has a %s (run `evaluate.py --table1%s`)." % (
        checkpoint_file("table1.json", checkpoint), "" if checkpoint == "last" else " --checkpoint " + checkpoint)]
    return "\n".join(lines) + "\n"


def main(argv=None):
    """Command-line entry point; returns the exit status (2 on bad input)."""
    parser = OneLineParser(prog="python -m evaluation.report", description="Paper Tables 1-2 next to our runs, as markdown.")
    parser.add_argument("runs", nargs="+", help="run directories with config.json and eval.json")
    parser.add_argument("--out", default="report.md", help="output markdown file. default: %(default)s")
    parser.add_argument("--note", default=None, help="extra banner line at the top of the report")
    parser.add_argument("--checkpoint", default="last",
                        help="whose scores: last (eval.json) or the name given to evaluate.py --checkpoint "
                             "(best: eval_best.json). default: %(default)s")
    args = parser.parse_args(argv)
    try:
        run_dirs, warnings = evaluated_runs(args.runs, args.checkpoint)
        text = build_report(run_dirs, note=args.note, checkpoint=args.checkpoint)
    except EvaluationError as err:
        print("error: %s" % err, file=sys.stderr)
        return 2
    for warning in warnings:
        print(warning, file=sys.stderr)
    tmp = args.out + ".tmp"
    with open_new_file(tmp) as f:
        f.write(text)
    os.replace(tmp, args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
