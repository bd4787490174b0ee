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
    # the ratios are medians over rounds of one step of each kind, paired (recomputed here)
    steps = result["step_samples_seconds"]
    assert len(steps["train_step"]) == len(steps["plain_script"]) == len(steps["bare"]) == 2
    assert result["train_step_seconds"]["hybridized"] == pytest.approx(sum(steps["train_step"]) / 2, rel=1e-12)
    for key, other in (("train_step_over_plain_script", "plain_script"), ("step_overhead_ratio", "bare")):
        ratios = sorted(t / o for t, o in zip(steps["train_step"], steps[other]))
        assert result[key] == pytest.approx((ratios[0] + ratios[1]) / 2, rel=1e-12)
        assert result[key + "_iqr"] == pytest.approx([ratios[0] * 0.75 + ratios[1] * 0.25,
                                                      ratios[0] * 0.25 + ratios[1] * 0.75], rel=1e-12)
    assert "[%.3f, %.3f]" % tuple(result["train_step_over_plain_script_iqr"]) in table


def test_paired_ratio_is_the_median_of_the_rounds_ratios():
    # rounds' ratios 0.5, 2, 3: median 2 (the ratio of the medians would be 3 / 2)
    median, iqr = train_step.paired_ratio([1.0, 10.0, 3.0], [2.0, 5.0, 1.0])
    assert median == 2.0
    assert iqr == [1.25, 2.5]  # numpy's linear interpolation between 0.5, 2 and 2, 3


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


def test_thread_determinism_compares_parameters_bit_for_bit(tmp_path):
    """bench/thread_determinism.py's comparison: 0.0 only for identical files, else the largest difference."""
    import mxnet as mx
    from bench.thread_determinism import max_difference
    a = {"w": mx.nd.array([1.0, 2.0, 3.0]), "b": mx.nd.array([0.5])}
    b = {"w": mx.nd.array([1.0, 2.25, 3.0]), "b": mx.nd.array([0.5 + 2 ** -20])}
    for name, arrays in (("a", a), ("b", b)):
        mx.nd.save(str(tmp_path / (name + ".params")), arrays)
    same = [str(tmp_path / "a.params")]
    assert max_difference(same, same) == 0.0
    assert max_difference(same, [str(tmp_path / "b.params")]) == 0.25


def test_thread_determinism_rejects_a_bad_size(capsys):
    from bench.thread_determinism import main
    assert main(["--size", "100x"]) == 2
    assert capsys.readouterr().err.startswith("error: --size")
