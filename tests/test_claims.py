"""scripts/claims.sh end to end at tiny sizes: the same path as `make claims`, 1 seed, 2 epochs."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = ("rel", "log10", "rms", "d1", "d2", "d3")


@pytest.fixture(scope="module")
def claims_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("claims")
    env = dict(os.environ, CLAIMS_OUT=str(out), CLAIMS_DOCS=str(out / "docs"), CLAIMS_N="12",
               CLAIMS_SIZE="64x48", CLAIMS_RAW_SIZE="128x96", CLAIMS_COPIES="2", CLAIMS_EPOCHS="2",
               CLAIMS_SEEDS="1", CLAIMS_T="0.4")
    proc = subprocess.run(["bash", "scripts/claims.sh", sys.executable], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_progress_lines(claims_out):
    _, stdout = claims_out
    assert "== run 1/3  seed 0  lambda 0 " in stdout
    assert "== run 2/3  seed 0  lambda 0.1 " in stdout
    assert "== run 3/3  seed 0  lambda 1e-6 " in stdout
    assert "claims finished in" in stdout


def test_outputs_written_and_copied(claims_out):
    out, _ = claims_out
    for name in ("claims.md", "claims.json", "claims_rel.png"):
        assert os.path.getsize(out / name) > 0
        assert (out / "docs" / name).read_bytes() == (out / name).read_bytes()


def test_json_has_every_field(claims_out):
    out, _ = claims_out
    c = json.loads((out / "claims.json").read_text())
    assert c["setup"]["seeds"] == [0] and c["setup"]["lambdas"] == [0.0, 0.1]
    for key in ("epochs", "semi_start", "t_semi", "lr", "labeled_frac", "n_scenes", "wall_seconds", "cores"):
        assert c["setup"][key] is not None, key
    assert c["setup"]["semi_start"] == 1 and c["setup"]["labeled_frac"] == 0.25
    assert c["setup"]["control_lambda"] == 1e-6
    for m in METRICS:  # Table 2: both lambdas, difference, test, sign count
        r = c["table2"][m]
        assert r["base"][0] is not None and r["semi"][0] is not None
        assert {"diff_mean", "diff_std", "t", "p", "improved", "n"} <= set(r) and r["n"] == 1
        assert r["control"][0] is not None and r["semi_vs_control"]["n"] == r["control_vs_base"]["n"] == 1
    for lam in ("0", "0.1"):  # Table 1: T = run's 0.4, paper's 0.9 and 0, each with kept fraction
        assert set(c["table1"]["summary"][lam]) == {"0.9", "0.4", "0"}
        for row in c["table1"]["summary"][lam].values():
            assert row["kept_fraction"][0] is not None
    assert c["table1"]["summary"]["0"]["0"]["kept_fraction"][0] == 1.0
    assert len(c["per_seed"]) == 3 and all(set(p["metrics"]) == set(METRICS) for p in c["per_seed"])
    assert set(c["curves"]) == {"0", "0.1"}  # per-epoch test rel from --track-test (not for the control)
    for lam in ("0", "0.1"):
        assert len(c["curves"][lam]["mean"]) == 2
    assert [e["phase"] for e in c["diagnosis"]["coverage"]] == ["fill", "semi"]
    assert c["diagnosis"]["cache"] and c["diagnosis"]["calibration"]["0.1"]


def test_table1_rows_agree_with_evaluate(claims_out):
    """The sweep reproduces evaluate.py --table1 where both score the same threshold."""
    out, _ = claims_out
    for lam in ("0", "0.1"):
        run = out / ("seed0_lambda%s" % lam)
        table1 = {r["t_semi"]: r for r in json.loads((run / "table1.json").read_text())["rows"]}
        sweep = {r["t"]: r for r in json.loads((run / "pseudo_sweep.json").read_text())["rows"]}
        for t, row in table1.items():
            assert sweep[t]["kept_fraction"] == pytest.approx(row["kept_fraction"])
            assert (sweep[t]["rel"] is None) == (row["rel"] is None)
            if row["rel"] is not None:
                assert sweep[t]["rel"] == pytest.approx(row["rel"], rel=1e-6)


def test_markdown_has_every_section(claims_out):
    out, _ = claims_out
    md = (out / "claims.md").read_text()
    for text in ("Table 2 analogue", "Table 1 analogue", "paired t", "seeds improved", "little power",
                 "| 0.1 | 0.9 |", "| 0.1 | 0.4 |", "| 0 | 0 |", "claims_rel.png", "LAST checkpoint",
                 "Diagnosis", "coverage", "Epoch lag", "Calibration", "Attribution", "Δ L_semi"):
        assert text in md, text
    for m in METRICS:
        assert "| %s " % m in md


def test_other_settings_are_refused(claims_out):
    out, _ = claims_out
    env = dict(os.environ, CLAIMS_OUT=str(out), CLAIMS_DOCS="", CLAIMS_N="12", CLAIMS_SIZE="64x48",
               CLAIMS_RAW_SIZE="128x96", CLAIMS_EPOCHS="3", CLAIMS_SEEDS="1")
    proc = subprocess.run(["bash", "scripts/claims.sh", sys.executable], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "other settings" in proc.stderr


def test_help():
    proc = subprocess.run(["bash", "scripts/claims.sh", "--help"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0 and "CLAIMS_EPOCHS" in proc.stdout and "Usage" in proc.stdout
