"""bench/unlabeled_scale.py at tiny settings: every figure is reported (no timing assertions)."""
import json

import numpy as np
import pytest

from bench import unlabeled_scale


def test_scale_bench_reports_every_size(tmp_path, capsys):
    out = tmp_path / "scale.json"
    assert unlabeled_scale.main(["--sizes", "30", "500", "--per-step", "3", "--batch", "2", "--steps", "2",
                                 "--warmup", "1", "--dir", str(tmp_path), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [r["unlabeled_slots"] for r in result["sizes"]] == [30, 500]
    for r in result["sizes"]:
        assert (r["unlabeled_per_step"], r["steps_per_epoch"], r["timed_steps"]) == (3, 4, 2)
        assert r["epochs_per_pass"] == -(-r["unlabeled_slots"] // 12)  # ceil(M / (4 steps x 3))
        for key in ("step_seconds_median", "step_cpu_seconds_median", "peak_rss_mib", "plan_seconds_per_epoch"):
            assert r[key] > 0, key
        assert r["peak_rss_mib"] >= r["baseline_rss_mib"]
    # depth + conf float32 at 16x12 per slot, and the int32 epoch: the cache files' bytes
    assert result["sizes"][1]["cache_file_mib"] == pytest.approx(500 * (2 * 12 * 16 * 4 + 4) / 2 ** 20)
    assert result["settings"]["cache_on"] == "disk" and result["settings"]["machine"]["cpu_count"] > 0
    assert "peak RSS MiB" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == [out]  # its temporary files are gone


def test_virtual_images_are_a_function_of_their_index():
    data = unlabeled_scale.VirtualUnlabeled(10 ** 6, (64, 48))
    image, slot = data[999999]
    assert image.shape == (3, 48, 64) and image.dtype == np.float32 and slot == 999999
    np.testing.assert_array_equal(data[999999][0], image)
    assert not np.array_equal(data[5][0], image)


@pytest.mark.parametrize("argv,message", [
    (["--per-step", "0"], "--sizes, --per-step, --batch and --steps must be >= 1, --warmup >= 0"),
    (["--size", "50x40"], "input size 50x40 (width x height) is not a multiple of 16 in both"),
    (["--size", "big"], "size must look like 320x240"),
    (["--json", "/no/such/dir/x.json"], "the folder of --json /no/such/dir/x.json does not exist"),
    (["--dir", "/no/such/dir"], "--dir /no/such/dir is not a directory"),
])
def test_scale_bench_rejects_bad_settings(argv, message, capsys):
    assert unlabeled_scale.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert message in err, err
