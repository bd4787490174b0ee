"""Mutation check: put small known bugs into a scratch copy of the tree, one at a time, and see
whether the tests named with each bug catch it.

    .venv/bin/python tests/mutants.py              # every mutant, about 5 min on 2 cores
    .venv/bin/python tests/mutants.py crop alpha   # only the mutants whose names contain a word
    .venv/bin/python tests/mutants.py --list
    .venv/bin/python tests/mutants.py --tests-of main crop   # against the tests/ of another commit

Each mutant copies the tree (without .git, .venv, runs, datasets) to a temporary directory,
replaces one exact piece of text in one file (it must occur exactly once, so a mutant whose
text the code no longer holds is reported as STALE instead of passing silently), runs the
named tests there with this Python and reports KILLED (the tests failed) or SURVIVED.
Exit status 1 if any mutant survived or went stale.

A manual tool: the file name does not match pytest's test_*.py, so the suite (and CI) never
collects it.  When a test or the code changes, keep the list below in step.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IGNORE = shutil.ignore_patterns(".git", ".venv", "runs", "datasets", "__pycache__", ".pytest_cache", "*.egg-info")

# name: (file, text, replacement, pytest arguments)
MUTANTS = {
    "target_stop_gradient": ("training/losses.py", "    pred = F.stop_gradient(pred)\n", "",
                             ["tests/test_losses.py"]),
    "loss_stop_gradient": ("training/losses.py", "F.abs(conf - F.stop_gradient(target))", "F.abs(conf - target)",
                           ["tests/test_losses.py"]),
    "alpha_dropped_from_eq1": ("training/losses.py", "F.exp(-alpha * F.abs(", "F.exp(-F.abs(",
                               ["tests/test_losses.py"]),
    "shape_guard_removed": ("evaluation/metrics.py", "if gt.shape != pred.shape or gt.size == 0:",
                            "if gt.size == 0:", ["tests/test_metrics.py"]),
    "crop_one_row_down": ("evaluation/metrics.py", "region[..., top:bottom, left:right] = True",
                          "region[..., top + 1:bottom + 1, left:right] = True", ["tests/test_evaluate.py"]),
    "evaluate_no_test_h5_check": ("evaluation/runs.py",
                                  "    if not os.path.isfile(path):\n        raise EvaluationError(\"%s has no",
                                  "    if False:\n        raise EvaluationError(\"%s has no",
                                  ["tests/test_evaluate.py", "-k", "bad_input"]),
    "evaluate_no_missing_file_check": ("evaluation/external.py",
                                       "    if not os.path.isfile(path):\n        raise EvaluationError(\"%s not found",
                                       "    if False:\n        raise EvaluationError(\"%s not found",
                                       ["tests/test_evaluate.py", "-k", "bad_input"]),
    "topdown_relu_without_onednn": ("symbols/depth_net.py",
                                    'F.Activation(self.smooth[i](lateral + up), act_type="relu")',
                                    "F.relu(self.smooth[i](lateral + up))",
                                    ["tests/test_symbols.py", "-k", "topdown"]),
    "carried_checkpoints_kept": ("experiments/claims/records.py",
                                 "if not (rel_root == \".\" and d == \"checkpoints\")]",
                                 "if True]", ["tests/test_claims_records.py"]),
    "restore_without_fingerprints": ("experiments/claims/records.py", "    if differ:\n", "    if False:\n",
                                     ["tests/test_claims_records.py"]),
    "paired_ratio_of_medians": ("bench/train_step.py",
                                "    ratios = np.asarray(times, dtype=float) / np.asarray(over, dtype=float)\n"
                                "    return float(np.median(ratios)),",
                                "    ratios = np.asarray(times, dtype=float) / np.asarray(over, dtype=float)\n"
                                "    return float(np.median(times) / np.median(over)),",
                                ["tests/test_bench.py", "-k", "paired"]),
    "bench_size_swapped": ("bench/shared.py", "check_input_size(args.size[1], args.size[0])",
                           "check_input_size(args.size[0], args.size[1])",
                           ["tests/test_bench.py", "-k", "rejects"]),
    "export_no_run_dir_check": ("export.py", "    if not os.path.isdir(run_dir):\n", "    if False:\n",
                                ["tests/test_predict_export.py", "-k", "export_errors"]),
    "predict_size_ignored": ("predict.py", "size = args.size or run_config.get(\"input_size\")",
                             "size = run_config.get(\"input_size\")",
                             ["tests/test_predict_export.py", "-k", "network_size"]),
    "resize_depth_all_zero": ("data/grid.py", "    return out.astype(np.float32)",
                              "    return np.zeros((height, width), np.float32)",
                              ["tests/test_augment.py", "-k", "resize_depth"]),
    "augment_global_rng": ("data/augment.py", "flip = bool(rng.uniform() < EIGEN_FLIP_PROBABILITY)",
                           "flip = bool(np.random.uniform() < EIGEN_FLIP_PROBABILITY)",
                           ["tests/test_augment.py", "-k", "eigen_augment"]),
    "augment_fixed_seed": ("data/augment.py", "return apply_augment(sample_params(rng, size)",
                           "return apply_augment(sample_params(np.random.RandomState(0), size)",
                           ["tests/test_augment.py", "-k", "eigen_augment"]),
    "trainer_ignores_alpha": ("training/trainer.py",
                              "losses.confidence_target(mx.nd, pred.detach(), depth, self.opts.alpha)",
                              "losses.confidence_target(mx.nd, pred.detach(), depth, 5.0)",
                              ["tests/test_trainer.py", "-k", "alpha"]),
    "resume_from_epoch_start": ("training/trainer.py", "self.start_iter = state.epoch, state.iteration",
                                "self.start_iter = state.epoch, 0",
                                ["tests/test_trainer.py", "-k", "sigkill"]),
    "conf_loss_not_backpropagated": ("training/trainer.py",
                                     "self.precision.scaled([t[\"conf\"] for t in per_device], self.conf_trainer) +",
                                     "[] +", ["tests/test_step.py", "-k", "hand_written"]),
    "bn_stats_restored_on_every_step": ("training/trainer.py",
                                        "            self.bn_snapshot.restore()\n            self.precision.skipped()",
                                        "            self.precision.skipped()\n        self.bn_snapshot.restore()",
                                        ["tests/test_step.py", "-k", "hand_written"]),
    "snapshot_takes_nothing": ("training/bn_snapshot.py", "mx.nd.concat(*[a.reshape((-1,)) for a in arrays], dim=0, out=buffer)",
                               "pass", ["tests/test_step.py", "-k", "snapshot"]),
    "cache_earlier_uses_this_epoch": ("training/cache.py", "(written >= 0) * (written < epoch)",
                                      "(written >= 0) * (written <= epoch)",
                                      ["tests/test_unlabeled_per_step.py", "-k", "earlier_rule"]),
    "cache_age_off_by_one": ("training/cache.py", "age = (epoch - written)", "age = (epoch - 1 - written)",
                             ["tests/test_unlabeled_per_step.py", "-k", "earlier_rule"]),
    "bounded_plan_restarts_every_epoch": ("training/distributed.py",
                                          "first, last = epoch * steps * k, (epoch + 1) * steps * k",
                                          "first, last = 0, steps * k",
                                          ["tests/test_distributed.py", "-k", "whole_passes"]),
    "inference_last_batch_not_padded": ("evaluation/inference.py",
                                        "launch(padded(batch[0], batch_size))", "launch(batch[0])",
                                        ["tests/test_inference.py", "-k", "padded_last_batch"]),
    "inference_padded_outputs_kept": ("evaluation/inference.py",
                                      "np.concatenate([d.asnumpy()[:, 0] for d, _ in outputs])[:n]",
                                      "np.concatenate([d.asnumpy()[:, 0] for d, _ in outputs])",
                                      ["tests/test_inference.py", "-k", "padded_last_batch"]),
    "inference_read_back_before_next_launch": ("evaluation/inference.py",
                                               "        current = (batch, batch[0].shape[0], launch(padded(batch[0], "
                                               "batch_size)))\n        if pending is not None:\n            yield pending\n",
                                               "        if pending is not None:\n            yield pending\n"
                                               "        current = (batch, batch[0].shape[0], launch(padded(batch[0], "
                                               "batch_size)))\n",
                                               ["tests/test_inference.py", "-k", "launched_before"]),
    "table1_without_paper_t": ("evaluation/pseudo_labels.py", "PseudoLabelTable({config.T_SEMI, t_semi, 0.0})",
                               "PseudoLabelTable({t_semi, 0.0})", ["tests/test_claims.py"]),
    "claims_diff_reversed": ("experiments/claims/tables.py", "diffs = [s - b for b, s in zip(base, semi)]",
                             "diffs = [b - s for b, s in zip(base, semi)]", ["tests/test_claims.py", "-k", "paired"]),
    "subpixel_phases_swapped": ("symbols/subpixel_deconv.py", "F.stack(phase[2 * a], phase[2 * a + 1], axis=-1)",
                                "F.stack(phase[2 * a + 1], phase[2 * a], axis=-1)",
                                ["tests/test_symbols.py", "-k", "subpixel"]),
    "subpixel_weights_not_transposed": ("symbols/subpixel_deconv.py", "= weight[:, :, ku, kv].T",
                                        "= weight[:, :, kv, ku].T", ["tests/test_symbols.py", "-k", "subpixel"]),
    "conf_first_conv_padding": ("symbols/confidence_net.py", '    ("conv", 128, 3, 1, 1),', '    ("conv", 128, 3, 1, 2),',
                                ["tests/test_symbols.py", "-k", "every_layer_constant"]),
    "delta_not_strict": ("evaluation/metrics.py", '"d1": float(np.sum(ratio < DELTA))', '"d1": float(np.sum(ratio <= DELTA))',
                         ["tests/test_metrics.py", "-k", "strict_powers"]),
    "per_image_average_pooled": ("evaluation/metrics.py", '        return self.average == "image"', '        return False',
                                 ["tests/test_metrics.py", "-k", "every_measure_of_every_protocol"]),
    "colour_scale_over_255": ("predict.py", "np.float32(256 / span)", "np.float32(255 / span)",
                              ["tests/test_predict_export.py", "-k", "colour_png"]),
}


def mutate(root, name):
    """Apply mutant ``name`` to the copy in ``root``; False if its text is not there exactly once."""
    path, old, new, _ = MUTANTS[name]
    path = os.path.join(root, path)
    with open(path) as f:
        text = f.read()
    if text.count(old) != 1:
        return False
    with open(path, "w") as f:
        f.write(text.replace(old, new))
    return True


def run_mutant(name, tests_of=None):
    """'KILLED', 'SURVIVED', 'STALE' (text not found) or 'ERROR' (pytest could not run the tests,
    or selected none: exit status 5)."""
    with tempfile.TemporaryDirectory(prefix="mutant-") as tmp:
        root = os.path.join(tmp, "tree")
        shutil.copytree(REPO, root, ignore=IGNORE)
        if tests_of:  # the tests/ directory of commit ``tests_of`` instead of the working tree's
            shutil.rmtree(os.path.join(root, "tests"))
            archive = subprocess.run(["git", "-C", REPO, "archive", tests_of, "tests"], capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", root], input=archive.stdout, check=True)
        if not mutate(root, name):
            return "STALE", ""
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), PYTHONDONTWRITEBYTECODE="1")
        # conftest.py puts the copy first on sys.path, ahead of an editable install of REPO
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"] + MUTANTS[name][3],
                              cwd=root, env=env, capture_output=True, text=True)
    status = {0: "SURVIVED", 1: "KILLED"}.get(proc.returncode, "ERROR")
    return status, proc.stdout[-1500:] + proc.stderr[-1500:]


def main(argv):
    if argv[:1] == ["--list"]:
        for name, (path, _, _, tests) in MUTANTS.items():
            print("%-32s %-24s %s" % (name, path, " ".join(tests)))
        return 0
    tests_of = None
    if argv[:1] == ["--tests-of"]:
        tests_of, argv = argv[1], argv[2:]
    names = [n for n in MUTANTS if not argv or any(word in n for word in argv)]
    if not names:
        print("error: no mutant matches %s (see --list)" % " ".join(argv), file=sys.stderr)
        return 2
    bad = []
    for name in names:
        tic = time.time()
        status, log = run_mutant(name, tests_of)
        print("%-9s %-32s %5.0fs" % (status, name, time.time() - tic), flush=True)
        if status != "KILLED":
            bad.append(name)
            if status == "ERROR":
                print(log)
    print("%d of %d mutants killed%s" % (len(names) - len(bad), len(names),
                                         "; not killed: " + ", ".join(bad) if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
