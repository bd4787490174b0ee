"""bench/train_step.py at tiny settings: every figure is reported (no timing assertions)."""
import json

import pytest

from bench import train_step

FIGURES = ("bare_forward_backward_seconds", "bare_step_seconds", "step_overhead_ratio", "plain_script_step_seconds",
           "train_step_over_plain_script", "epoch_ratio",
           "epoch_ratio_per_image", "imperative_over_hybridized", "peak_rss_mib", "cache_bytes")
PHASES = ("data", "depth_fwd", "conf_fwd", "backward", "cache", "losses_other", "optimiser", "total")


def test_bench_reports_every_figure(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert train_step.main(["--size", "64x48", "--batch", "2", "--steps", "2", "--repeats", "1",
                            "--no-progress", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    for key in FIGURES:
        assert result[key] > 0, key
    for key in PHASES:
        assert result["instrumented_step_seconds"][key] > 0, key
    for key in ("hybridized", "imperative"):
        assert result["train_step_seconds"][key] > 0, key
    for key in ("semi", "supervised"):
        assert result["epoch_seconds"][key] > 0, key
    assert result["settings"]["labeled_images"] == 4 and result["settings"]["unlabeled_images"] == 12
    table = capsys.readouterr().out
    assert "adds syncs" in table and "per processed image" in table and "peak resident memory" in table
    assert "train_step / plain script" in table
    assert result["train_step_over_plain_script"] == result["train_step_seconds"]["hybridized"] / \
        result["plain_script_step_seconds"]


@pytest.mark.parametrize("argv,message", [
    (["--size", "50x40"], "input size 50x40 (width x height) is not a multiple of 16 in both"),
    (["--labeled-frac", "1"], "--labeled-frac must be in (0, 1): the semi-supervised step needs unlabeled images"),
    (["--steps", "0"], "--batch, --steps and --repeats must be >= 1"),
    (["--json", "/no/such/dir/x.json"], "the folder of --json /no/such/dir/x.json does not exist"),
])
def test_bench_rejects_bad_settings(argv, message, capsys):
    assert train_step.main(argv + ["--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert message in err, err
