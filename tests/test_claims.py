"""experiments/claims/run.sh end to end at tiny sizes: the chain of `make claims-extra` (rotation pretraining ->
backbone file -> claims runs with --backbone-params, forked from a lambda = 0 prefix where they can -> evaluation
-> report), 1 seed, 3 epochs, the oracle and headroom arms and one more extra arm."""
import json
import math
import os
import subprocess
import sys

import pytest

from common.threads import cpu_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = ("rel", "log10", "rms", "d1", "d2", "d3")
ARMS = ("lambda0", "lambda0.1", "headroom", "oracle", "share", "t0.5")  # claims.json's order: the paper's, then by name
PLAN = ("lambda0", "lambda0.1", "t0.5", "share", "oracle", "headroom")  # run.sh's order
FORKED = {"lambda0", "lambda0.1", "t0.5", "share", "oracle"}  # differ from the lambda = 0 prefix only from epoch 1 on
TINY = dict(CLAIMS_N="12", CLAIMS_SIZE="64x48", CLAIMS_RAW_SIZE="128x96", CLAIMS_COPIES="2", CLAIMS_EPOCHS="3",
            CLAIMS_SEMI_START="2", CLAIMS_SEEDS="1", CLAIMS_EXTRA_SEEDS="1", CLAIMS_PRE_N="8", CLAIMS_PRE_EPOCHS="1",
            CLAIMS_EXTRA_ARMS="t0.5:--t-semi+0.5;share:--keep-share+0.5;oracle:--pseudo-labels+oracle;headroom:--lambda-semi+0+--labeled-frac+0.5",
            CLAIMS_REGIMES="")


def run_claims(out, **extra):
    env = dict(os.environ, CLAIMS_OUT=str(out), CLAIMS_DOCS=str(out / "docs"), **TINY)
    env.update(extra)
    return subprocess.run(["bash", "experiments/claims/run.sh", sys.executable], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=400)


@pytest.fixture(scope="module")
def claims_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("claims")
    proc = run_claims(out)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return out, proc.stdout


def read(path):
    return json.loads(path.read_text())


def test_pretraining_then_runs_on_its_backbone(claims_out):
    out, stdout = claims_out
    assert "== pretraining (rotation), from scratch, 1 epochs" in stdout
    for k, arm in enumerate(PLAN, 1):
        assert "== run %d/6  seed 0  %s " % (k, arm) in stdout
    backbone = out / "pretrain" / "backbone.params"
    assert backbone.stat().st_size > 90e6  # a whole ResNet-50 in float32
    pretext = read(out / "pretrain" / "backbone.json")
    assert (pretext["task"], pretext["classes"], pretext["epochs"]) == ("rotation", 4, 1)
    assert not (out / "pretrain" / "config.json").exists()  # no depth net was trained to pretrain
    prefix = read(out / "seed0_prefix" / "config.json")
    assert (prefix["lambda_semi"], prefix["stop_at"]) == (0.0, 1)
    for arm in PLAN:
        cfg = read(out / ("seed0_" + arm) / "config.json")
        assert cfg["backbone_params"] == str(backbone)
        assert (cfg["t_semi"], cfg["alpha"], cfg["lr"], cfg["conf_lr"]) == (0.5 if arm == "t0.5" else 0.9, 5.0, 1e-3, 2e-4)
        assert cfg["keep_share"] == (0.5 if arm == "share" else None)
        assert cfg["lambda_semi"] == (0.0 if arm in ("lambda0", "headroom") else 0.1)
        assert cfg["labeled_frac"] == (0.5 if arm == "headroom" else 0.25)
        assert cfg["pseudo_labels"] == ("oracle" if arm == "oracle" else "model")
        assert cfg["fork_from"] == (str(out / "seed0_prefix") if arm in FORKED else None)
        history = [json.loads(line) for line in (out / ("seed0_" + arm) / "metrics.jsonl").read_text().splitlines()]
        assert [m["epoch"] for m in history] == [0, 1, 2]
    # the working time: this one invocation's seconds, as run.sh recorded them
    (recorded,) = (out / "invocations").iterdir()
    setup = read(out / "setup.json")
    assert (setup["invocations"], setup["wall_seconds"]) == (1, int(recorded.read_text())) and setup["wall_seconds"] > 0
    # the pretraining scenes come from another generator seed than the claims' scenes
    assert read(out / "pretrain_data" / "synthetic.json")["seed"] == 1
    assert read(out / "data" / "synthetic.json")["seed"] == 0


def test_tables_are_the_runs_numbers(claims_out):
    out, _ = claims_out
    c = read(out / "claims.json")
    assert c["setup"]["seeds"] == [0] and c["setup"]["arms"] == list(ARMS)
    assert c["setup"]["extra_arms"] == ["headroom", "oracle", "share", "t0.5"]
    assert c["setup"]["freeze_bn"] is True and c["setup"]["t_semi"] == 0.9 and c["setup"]["pretrain"]["epochs"] == 1
    assert c["setup"]["pretrain"]["task"] == "rotation" and c["regime"] == "rotation"
    evals = {arm: read(out / ("seed0_" + arm) / "eval.json")["metrics"] for arm in ARMS}
    for m in METRICS:
        r = c["table2"][m]
        assert r["base"][0] == evals["lambda0"][m] and r["semi"][0] == evals["lambda0.1"][m]
        assert r["diff_mean"] == pytest.approx(evals["lambda0.1"][m] - evals["lambda0"][m])
        assert r["delta"] == pytest.approx(r["diff_mean"]) and r["ci95"] is None  # one seed: no interval
        assert r["verdict"] == "inconclusive"
        for arm in ("headroom", "oracle"):
            assert r["extra"][arm]["delta"] == pytest.approx(evals[arm][m] - evals["lambda0"][m])
        better = evals["lambda0.1"][m] < evals["lambda0"][m] if m in ("rel", "log10", "rms") else \
            evals["lambda0.1"][m] > evals["lambda0"][m]
        assert (r["improved"], r["n"]) == (int(better), 1)
        assert r["extra"]["t0.5"]["diff_mean"] == pytest.approx(evals["t0.5"][m] - evals["lambda0"][m])
    assert [(p["arm"], p["metrics"]) for p in c["per_seed"]] == [(a, {m: evals[a][m] for m in METRICS}) for a in ARMS]
    assert [p["labeled_frac"] for p in c["per_seed"]] == [0.25, 0.25, 0.5, 0.25, 0.25, 0.25]
    assert [p["keep_share"] for p in c["per_seed"]] == [None, None, None, None, 0.5, None]
    assert all(p["cpus"] == [cpu_model()] for p in c["per_seed"])
    history = [json.loads(x) for x in (out / "seed0_share" / "metrics.jsonl").read_text().splitlines()]
    assert history[2]["phase"] == "semi" and abs(history[2]["mask_coverage_pct"] - 50) < 1  # whatever C is
    for key, arm in (("0", "lambda0"), ("0.1", "lambda0.1"), ("t0.5", "t0.5"), ("oracle", "oracle")):
        rows = {"%g" % r["t_semi"]: r for r in read(out / ("seed0_" + arm) / "table1.json")["rows"]}
        summary = c["table1"]["summary"][key]
        assert set(summary) >= set(rows) and "0.9" in summary and "0" in summary
        for t, row in rows.items():
            assert summary[t]["rel"][0] == row["rel"] and summary[t]["kept_fraction"][0] == row["kept_fraction"]
        assert summary["0"]["kept_fraction"][0] == 1.0
    split = read(out / "seed0_lambda0" / "split.json")
    steps = math.ceil(len(split["labeled_rows"]) / 4) * 3
    assert c["diagnosis"]["confidence_steps"]["lambda0"] == steps
    assert [e["phase"] for e in c["diagnosis"]["coverage"]["lambda0.1"]] == ["supervised", "fill", "semi"]
    assert [e["epoch"] for e in c["diagnosis"]["coverage"]["lambda0.1"]] == [0, 1, 2]
    assert c["curves"]["lambda0"]["epoch"] == [0, 1, 2]


def test_table1_rows_agree_with_evaluate(claims_out):
    """The sweep reproduces evaluate.py --table1 where both score the same threshold."""
    out, _ = claims_out
    for arm in ARMS:
        run = out / ("seed0_" + arm)
        table1 = {r["t_semi"]: r for r in read(run / "table1.json")["rows"]}
        sweep = {r["t"]: r for r in read(run / "pseudo_sweep.json")["rows"]}
        t_run = 0.5 if arm == "t0.5" else 0.9
        # the paper's T, the run's own T and every pixel; the sweep adds the run's T to its grid
        assert set(table1) == {0.9, t_run, 0.0}
        assert set(sweep) == {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, t_run}
        assert table1[0.0]["kept_fraction"] == 1.0 and table1[0.0]["rel"] > 0
        for t, row in table1.items():
            assert sweep[t]["kept_fraction"] == pytest.approx(row["kept_fraction"])
            assert (sweep[t]["rel"] is None) == (row["rel"] is None)
            if row["rel"] is not None:
                assert sweep[t]["rel"] == pytest.approx(row["rel"], rel=1e-6)
        labeled = read(run / "pseudo_sweep.json")["labeled"]
        q = labeled["target_quantiles"]
        assert 0 < q["0.1"] <= q["0.25"] <= q["0.5"] <= q["0.75"] <= q["0.9"] <= 1


def test_curves_and_coverage_are_the_runs_metrics(claims_out):
    out, _ = claims_out
    c = read(out / "claims.json")
    for arm in ARMS:
        history = [json.loads(line) for line in (out / ("seed0_" + arm) / "metrics.jsonl").read_text().splitlines()]
        assert c["curves"][arm]["mean"] == [pytest.approx(m["test"]["rel"]) for m in history]
    history = [json.loads(line) for line in (out / "seed0_lambda0.1" / "metrics.jsonl").read_text().splitlines()]
    coverage = c["diagnosis"]["coverage"]["lambda0.1"]
    for key, field in (("sup", "sup"), ("conf", "conf"), ("semi", "semi"), ("coverage_pct", "mask_coverage_pct")):
        want = [None if m[field] is None else pytest.approx(m[field]) for m in history]
        assert [e[key] for e in coverage] == want, key


def md_row(md, first):
    """The cells of the first markdown table row whose first cell is ``first``."""
    for line in md.splitlines():
        cells = [x.strip() for x in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first:
            return cells
    raise AssertionError("no row %r" % first)


def test_markdown_tables_print_the_json_numbers(claims_out):
    out, _ = claims_out
    md = (out / "claims.md").read_text()
    c = read(out / "claims.json")
    paper = {"rel": "−0.003", "log10": "−0.005", "rms": "−0.001", "d1": "+0.024", "d2": "+0.013", "d3": "+0.001"}
    for m in METRICS:  # Table 2: one seed, so no interval
        r = c["table2"][m]
        first = "%s %s" % (m, "↓" if m in ("rel", "log10", "rms") else "↑")
        assert md_row(md, first) == [first, "%.3f" % r["base"][0], "%.3f" % r["semi"][0],
                                     ("%+.4f" % r["delta"]).replace("-", "−"), "n < 2", r["verdict"], "1", paper[m]]
    for key, rows in c["table1"]["summary"].items():  # Table 1: arm, T, rel, kept, ordered
        assert set(rows) >= {"0.9", "0"}
        for t, r in rows.items():
            rel = "—" if r["rel"][0] is None else "%.3f" % r["rel"][0]
            ordered = "—" if r["ordered"] is None else "%d/%d" % tuple(r["ordered"])
            line = "| %s | %s | %s | %.3f | %s |" % (key, t, rel, r["kept_fraction"][0], ordered)
            assert line in md, line


def test_markdown_sections_and_appendix(claims_out):
    out, _ = claims_out
    md = (out / "claims.md").read_text()
    for text in ("Table 2 analogue, protocol `eigen`", "Table 2 analogue, protocol `full`", "95 % CI",
                 "Table 1 analogue: pseudo-labels of the unlabeled training images, protocol `full`",
                 "paper (NYU)", "share of oracle", "share of headroom", "AURG", "AUSE", "rotation (0/90/180/270°)",
                 "| 0.1 | 0.9 |", "| 0 | 0 |", "| t0.5 | 0.5 |", "claims_rel.png", "LAST checkpoint", "Backbone:",
                 "Every run trained on one CPU model: %s." % cpu_model(), "Extra arms", "Diagnosis", "Adam steps", "Calibration", "Epoch lag", "## Verdict",
                 "## The earlier experiment: from scratch"):
        assert text in md, text
    assert "close" not in md.lower()  # the paper's numbers sit in their own columns, never "close"
    assert md.index("## Seed rule") < md.index("## Verdict") < md.index("### Table 2 analogue") \
        < md.index("## The earlier experiment")
    for name in ("claims.md", "claims.json", "claims_rel.png"):
        assert (out / "docs" / name).read_bytes() == (out / name).read_bytes()


def test_rerun_reuses_pretraining_and_refuses_other_settings(claims_out):
    out, _ = claims_out
    again = run_claims(out)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "== pretraining" not in again.stdout and "== data" not in again.stdout
    # two invocations: their working times add up, the time between them does not count
    seconds = sorted(int(p.read_text()) for p in (out / "invocations").iterdir())
    setup = read(out / "setup.json")
    assert len(seconds) == 2 and (setup["invocations"], setup["wall_seconds"]) == (2, sum(seconds))
    assert "over 2 invocations (the time between them not counted)" in (out / "claims.md").read_text()
    other = run_claims(out, CLAIMS_PRE_EPOCHS="2")
    assert other.returncode == 2 and "holds runs of other settings" in other.stderr


def test_carried_runs_continue_on_a_new_out_without_training(claims_out, tmp_path):
    """make claims on another machine: carry the finished runs (no checkpoints), re-create the data and the backbone
    with CLAIMS_SEEDS=0 (bit for bit the same on one machine), restore, and run.sh trains nothing and reports the
    same numbers."""
    out, _ = claims_out
    carried, new = tmp_path / "carried", tmp_path / "new"
    assert subprocess.run([sys.executable, "-m", "experiments.claims", "carry", str(out), str(carried)],
                          cwd=REPO, capture_output=True, text=True).returncode == 0
    assert not list(carried.glob("**/*.params")) and not (carried / "seed0_prefix").exists()
    prepared = run_claims(new, CLAIMS_SEEDS="0", CLAIMS_EXTRA_ARMS="")
    assert prepared.returncode == 0 and "no runs asked" in prepared.stdout, prepared.stderr[-2000:]
    assert "== pretraining" in prepared.stdout and not list(new.glob("seed*"))
    restored = subprocess.run([sys.executable, "-m", "experiments.claims", "restore", str(carried), str(new)],
                              cwd=REPO, capture_output=True, text=True)
    assert restored.returncode == 0 and "restored 6 run(s)" in restored.stdout, restored.stderr
    again = run_claims(new)
    assert again.returncode == 0, again.stderr[-2000:]
    # nothing trained or evaluated again (either would need or write a checkpoint's networks)
    assert not list(new.glob("seed0_*/checkpoints/last/*.params")) and not (new / "seed0_prefix").exists()
    before, after = read(out / "claims.json"), read(new / "claims.json")
    assert after["per_seed"] == before["per_seed"] and after["table2"] == before["table2"]


def test_paired_differences_by_hand():
    """Table 2's statistics on numbers where they are not 0 (the tiny runs above often tie)."""
    from experiments.claims.tables import paired
    r = paired([0.30, 0.20, 0.25], [0.28, 0.21, 0.20], "rel")
    assert r["diffs"] == pytest.approx([-0.02, 0.01, -0.05]) and r["n"] == 3
    # mean -0.02, sample std sqrt((0 + 0.03^2 + 0.03^2) / 2) = 0.03; rel: lower is better
    assert (r["diff_mean"], r["diff_std"], r["improved"]) == (pytest.approx(-0.02), pytest.approx(0.03), 2)
    t = -0.02 / (0.03 / math.sqrt(3))
    assert r["t"] == pytest.approx(t)
    assert r["p"] == pytest.approx(1 - abs(t) / math.sqrt(2 + t * t))   # two-sided, 2 degrees of freedom
    assert paired([0.5, 0.6, 0.7], [0.52, 0.59, 0.75], "d1")["improved"] == 2   # d1: higher is better


def test_help():
    proc = subprocess.run(["bash", "experiments/claims/run.sh", "--help"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0 and "CLAIMS_PRE_EPOCHS" in proc.stdout and "Usage" in proc.stdout


def test_calibration_bins_by_hand():
    """pseudo_sweep.json's calibration: bins [0, 0.1), ..., [0.9, 1] with mean C, eq. 1 target and rel."""
    import numpy as np
    from experiments.claims.sweep import Calibration
    cal = Calibration(alpha=5.0)
    cal.add(np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 3.0]), np.array([0.05, 0.95, 1.0], np.float32))
    rows = cal.rows()
    assert [(r["lo"], r["hi"]) for r in rows] == [(k / 10, (k + 1) / 10) for k in range(10)]
    assert [r["n"] for r in rows] == [1] + [0] * 8 + [2]           # C = 1 falls into the last bin
    assert (rows[0]["conf"], rows[0]["rel"]) == (pytest.approx(0.05), pytest.approx(0.5))
    assert rows[0]["target"] == pytest.approx(math.exp(-5 * 0.5))
    assert rows[1]["conf"] is None and rows[1]["target"] is None and rows[1]["rel"] is None
    # last bin: rel 0 and 1/4, targets 1 and exp(-1.25)
    assert rows[9]["rel"] == pytest.approx(0.125) and rows[9]["conf"] == pytest.approx(0.975)
    assert rows[9]["target"] == pytest.approx((1 + math.exp(-1.25)) / 2)
