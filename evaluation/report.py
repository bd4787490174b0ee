"""Tables 1 and 2 of the paper next to the numbers of our runs.

Usage::

    python -m evaluation.report runs/A runs/B ... [--out report.md] [--note TEXT]

Each run directory needs ``config.json`` and ``eval.json`` (``evaluate.py``);
``table1.json`` (``evaluate.py --table1``) is used when present.  Table 2 rows
are matched by (labeled fraction, lambda), Table 1 rows by (labeled fraction,
T).  Differences are ours - paper.  When a run's data is not NYU Depth V2
(``"dataset"`` in config.json, or the ``dataset`` attribute of the prepared
``train.h5``), a banner says the paper columns are another dataset's numbers,
for reference only.
"""
import argparse
import json
import os
import sys

import h5py

from . import EvaluationError

PAPER_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "paper_results.json")
MATCH_TOL = 1e-6  # labeled fractions and lambdas are compared as floats


def load_paper(path=PAPER_RESULTS):
    with open(path) as f:
        return json.load(f)


def read_json(path, required=True):
    """A JSON file of a run (None if optional and missing); EvaluationError if unreadable."""
    if not os.path.isfile(path):
        if required:
            raise EvaluationError("%s not found" % path)
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as err:
        raise EvaluationError("%s is not valid JSON (%s)" % (path, err))


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


def load_run(run_dir):
    """config.json, eval.json and (optional) table1.json of a run, plus its dataset name."""
    config = read_json(os.path.join(run_dir, "config.json"))
    evaluation = read_json(os.path.join(run_dir, "eval.json"))
    for key in ("labeled_frac", "lambda_semi"):
        if key not in config:
            raise EvaluationError("%s: no '%s'" % (os.path.join(run_dir, "config.json"), key))
    return {"name": os.path.basename(os.path.normpath(run_dir)), "config": config, "eval": evaluation,
            "table1": read_json(os.path.join(run_dir, "table1.json"), required=False),
            "dataset": dataset_name(config)}


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


def table2_lines(runs, paper):
    metrics = paper["table2"]["metrics"]
    lines = ["| labeled | λ | run | metric | paper | ours | ours − paper |",
             "|---|---|---|---|---:|---:|---:|"]
    for run in runs:
        frac, lam = run["config"]["labeled_frac"], run["config"]["lambda_semi"]
        row = next((r for r in paper["table2"]["rows"]
                    if _close(r["labeled_frac"], frac) and _close(r["lambda_semi"], lam)), {})
        ours = run["eval"]["metrics"]
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


def build_report(run_dirs, note=None, paper=None):
    """The markdown text of the report for ``run_dirs``."""
    paper = paper or load_paper()
    # the paper's row order: 1/2 before 1/4, lambda 0 before 0.1
    runs = sorted((load_run(d) for d in run_dirs),
                  key=lambda r: (-r["config"]["labeled_frac"], r["config"]["lambda_semi"], r["name"]))
    protocols = sorted({r["eval"].get("protocol", {}).get("name", "?") for r in runs})
    lines = ["# Results next to the paper", ""] + banner_lines(runs, note)
    unrecorded = [r["name"] for r in runs if r["dataset"] is None]
    if unrecorded:
        lines += ["Dataset not recorded for %s; assumed NYU Depth V2." % ", ".join(unrecorded), ""]
    lines += ["## Table 2: test set", "",
              "Paper: %s Ours: protocol %s (see `evaluation/metrics.py`). %s" % (
                  paper["table2"]["caption"], ", ".join("`%s`" % p for p in protocols), paper["table2"]["note"]),
              ""] + table2_lines(runs, paper) + [""]
    t1 = table1_lines(runs, paper)
    lines += ["## Table 1: pseudo-labels of the unlabeled training images", "",
              "Paper: %s %s Ours: rel pooled over the valid pixels with confidence ≥ T of the "
              "unlabeled rows; *pixels kept* = share of all their pixels with confidence ≥ T." % (
                  paper["table1"]["caption"], paper["table1"]["note"]), ""]
    lines += t1 if len(t1) > 2 else ["No run has a table1.json (run `evaluate.py --table1`)."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    """Command-line entry point; returns the exit status (2 on bad input)."""
    parser = argparse.ArgumentParser(prog="python -m evaluation.report",
                                     description="Paper Tables 1-2 next to our runs, as markdown.")
    parser.add_argument("runs", nargs="+", help="run directories with config.json and eval.json")
    parser.add_argument("--out", default="report.md", help="output markdown file. default: %(default)s")
    parser.add_argument("--note", default=None, help="extra banner line at the top of the report")
    args = parser.parse_args(argv)
    try:
        text = build_report(args.runs, note=args.note)
    except EvaluationError as err:
        print("error: %s" % err, file=sys.stderr)
        return 2
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
