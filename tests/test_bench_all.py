"""bench/all.py: the summary of hand-made benchmark JSONs, and its errors (the benchmarks themselves are
tested in test_bench*.py)."""
import json

from bench import all as bench_all


def step_json(size, frac, step, bare, per_image, plain=None):
    r = {"settings": {"size": list(size), "labeled_frac": frac, "batch": 4, "unlabeled_per_step": 12,
                      "omp_num_threads": "2"},
         "train_step_seconds": {"hybridized": step, "imperative": None}, "bare_step_seconds": bare,
         "step_overhead_ratio": step / bare, "epoch_ratio_per_image": per_image}
    if plain:
        r.update(plain_script_step_seconds=plain, train_step_over_plain_script=step / plain,
                 train_step_over_plain_script_iqr=[0.95, 1.2])
    return r


def test_summary_keys_every_figure_by_size_and_fraction(capsys):
    results = {
        "step_160x128_q": step_json((160, 128), 0.25, 1.0, 1.01, 0.7, plain=0.9),
        "step_320x240_h": step_json((320, 240), 0.5, 3.9, 3.8, 0.8),
        "amp": {"settings": {"amp_dtype": "bfloat16", "omp_num_threads": "2"},
                "amp_over_float32": {"train_step": 1.25, "bare": 1.2}},
        "inference_160x128": {"settings": {"size": [160, 128], "omp_num_threads": "2"},
                              "training_forward_images_per_s": 10.0,
                              "images_per_s": {"evaluate": 12.0, "predict": 9.0},
                              "evaluate_over_training_forward": 1.2, "predict_over_training_forward": 0.9},
        "inference_320x240": {"settings": {"size": [320, 240], "omp_num_threads": "2"},
                              "training_forward_images_per_s": 2.0,
                              "images_per_s": {"evaluate": 4.0, "predict": 3.0},
                              "evaluate_over_training_forward": 2.0, "predict_over_training_forward": 1.5,
                              "evaluate_int8_over_training_forward": 4.25, "predict_int8_over_training_forward": 3.5},
        "unlabeled_scale": {"sizes": [{"unlabeled_slots": 10000, "step_seconds_median": 0.4, "peak_rss_mib": 1000.0,
                                       "other": 1}]},
    }
    summary = bench_all.summarise(results)
    assert set(summary["step"]) == {"160x128 labeled 0.25", "320x240 labeled 0.5"}
    assert summary["step"]["320x240 labeled 0.5"]["step_overhead_ratio"] == 3.9 / 3.8
    assert summary["step"]["160x128 labeled 0.25"]["epoch_ratio_per_image"] == 0.7
    assert summary["step"]["160x128 labeled 0.25"]["train_step_over_plain_script"] == 1.0 / 0.9
    assert summary["step"]["320x240 labeled 0.5"]["train_step_over_plain_script"] is None  # an older result
    assert summary["step"]["160x128 labeled 0.25"]["train_step_over_plain_script_iqr"] == [0.95, 1.2]
    assert summary["step"]["320x240 labeled 0.5"]["train_step_over_plain_script_iqr"] is None
    assert summary["amp"]["amp_over_float32"] == {"train_step": 1.25, "bare": 1.2}
    assert summary["inference"]["160x128"]["predict_over_training_forward"] == 0.9
    assert summary["inference"]["160x128"]["evaluate_int8_over_training_forward"] is None  # no oneDNN there
    assert summary["inference"]["320x240"]["predict_int8_over_training_forward"] == 3.5
    assert summary["unlabeled_scale"] == [{"unlabeled_slots": 10000, "step_seconds_median": 0.4,
                                           "peak_rss_mib": 1000.0}]
    bench_all.report(dict(summary, machine={"cpu": "X", "cpu_count": 2, "omp_num_threads": "2", "date": "d"}))
    out = capsys.readouterr().out
    assert "3.900 s / bare  3.800 s = 1.026" in out
    assert "160x128  evaluate 1.20 x, predict 0.90 x the training forward (target >= 2)" in out
    assert ("320x240  evaluate 2.00 x, predict 1.50 x the training forward; INT8 evaluate 4.25 x, predict 3.50 x "
            "(target >= 2)") in out
    json.dumps(summary)  # what summary.json holds


def test_unknown_benchmark_is_refused_in_one_line(tmp_path, capsys):
    assert bench_all.main(["--only", "nope", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no benchmark named nope (there are: step_160x128_q") and "\n" not in err
    assert not (tmp_path / "b").exists()
