"""Flags checked before anything is written: ranges from the paper's meaning, one error line in every
command line, a resume under another thread count, and the Makefile's virtualenv rule."""
import json
import os
import shutil
import subprocess
import sys

import pytest

import train
from rundir.resume import fork_free, not_restored, resume_free
from test_train import BASE, REPO


def usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize("flag, value, rule", [
    ("--t-semi", "1.5", "in [0, 1] (a confidence, eq. 5)"),
    ("--t-semi", "-0.1", "in [0, 1] (a confidence, eq. 5)"),
    ("--alpha", "0", "> 0 (eq. 1: exp(-alpha |E - D| / D))"),
    ("--alpha", "-5", "> 0 (eq. 1: exp(-alpha |E - D| / D))"),
    ("--lambda-semi", "-1", ">= 0 (eq. 6: a weight of L_semi)"),
    ("--momentum", "1", "in [0, 1)"),
    ("--wd", "-1e-4", ">= 0"),
    ("--poly-power", "-1", ">= 0"),
    ("--stop-at", "0", ">= 1 (epochs to train before stopping)"),
    ("--stop-at", "-2", ">= 1 (epochs to train before stopping)"),
])
def test_values_outside_the_papers_meaning_are_one_usage_line(flag, value, rule, capsys):
    line = usage_error(BASE + [flag + "=" + value], capsys)  # "--wd -1e-4" would read -1e-4 as a flag
    assert line == "error: %s must be %s, got %s (see --help)" % (flag, rule, float(value) if "." in value
                                                                   or flag != "--stop-at" else int(value))


@pytest.mark.parametrize("flag, value", [("--t-semi", "0"), ("--t-semi", "1"), ("--lambda-semi", "0"),
                                         ("--momentum", "0"), ("--wd", "0"), ("--stop-at", "100")])
def test_the_edges_of_each_range_are_accepted(flag, value):
    assert str(getattr(train.parse_args(BASE + [flag, value]), flag[2:].replace("-", "_"))) in (value, value + ".0")


def test_stop_at_beyond_epochs(capsys):
    assert usage_error(BASE + ["--epochs", "3", "--stop-at", "4"], capsys) == \
        "error: --stop-at 4 is beyond --epochs 3 (see --help)"
    assert train.parse_args(BASE + ["--epochs", "3", "--stop-at", "3"]).stop_at == 3


@pytest.mark.parametrize("command", [
    ["train.py", "--no-such-flag"],
    ["train.py", "--epochs", "many"],
    ["-m", "data.prepare", "--no-such-flag"],
    ["-m", "data.synthetic", "--no-such-flag"],
    ["-m", "training.save_backbone", "--no-such-flag"],
    ["-m", "evaluation.report", "--no-such-flag"],
    ["bench/cache_memory.py", "--no-such-flag"],
    ["evaluate.py", "--no-such-flag"],
    ["predict.py", "--no-such-flag"],
])
def test_every_command_line_gives_one_error_line_and_exit_2(command):
    done = subprocess.run([sys.executable] + command, cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "usage:" not in done.stdout + done.stderr


def resume(run, threads, *extra):
    env = dict(os.environ, OMP_NUM_THREADS=threads)
    return subprocess.run([sys.executable, "train.py", "--resume", str(run), "--no-progress", *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def stopped_run(tiny_data, tmp_path, epochs, semi_start):
    """A run in tmp_path/r stopped after epoch 0 (--stop-at 1), and its config.json."""
    run = tmp_path / "r"
    assert train.main(BASE + ["--data", tiny_data, "--out", str(run), "--epochs", str(epochs), "--semi-start",
                              str(semi_start), "--stop-at", "1"]) == 0
    return run, json.loads((run / "config.json").read_text())


def test_resume_under_another_thread_count_is_refused_or_recorded(tiny_data, tmp_path):
    run, config = stopped_run(tiny_data, tmp_path, epochs=2, semi_start=1)
    ours = config["omp_num_threads"]
    assert ours == os.environ["OMP_NUM_THREADS"]
    other = "3" if ours != "3" else "1"
    before = (run / "checkpoints" / "last" / "state.json").read_text()

    refused = resume(run, other)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "error: %s trained with OMP_NUM_THREADS=%s, this process has %s; the numbers would differ from an "
        "uninterrupted run: resume with OMP_NUM_THREADS=%s, or accept it with --allow-thread-change"
        % (run, ours, other, ours))
    assert (run / "checkpoints" / "last" / "state.json").read_text() == before  # nothing trained
    assert "thread_changes" not in json.loads((run / "config.json").read_text())

    allowed = resume(run, other, "--allow-thread-change")
    assert allowed.returncode == 0, allowed.stderr
    assert "resume: OMP_NUM_THREADS=%s (stored: %s): from here the numbers differ" % (other, ours) in allowed.stdout
    config = json.loads((run / "config.json").read_text())
    assert config["omp_num_threads"] == ours  # the count the run started with
    assert config["thread_changes"] == [{"epoch": 1, "iteration": 0, "omp_num_threads": other}]
    assert json.loads((run / "checkpoints" / "last" / "state.json").read_text())["epoch"] == 2


def test_resume_with_the_same_thread_count_needs_no_flag(tiny_data, tmp_path):
    run = tmp_path / "r"
    assert train.main(BASE + ["--data", tiny_data, "--out", str(run), "--epochs", "2", "--stop-at", "1"]) == 0
    done = resume(run, os.environ["OMP_NUM_THREADS"], "--stop-at", "2")
    assert done.returncode == 0 and "OMP_NUM_THREADS" not in done.stdout, done.stdout + done.stderr
    assert "thread_changes" not in json.loads((run / "config.json").read_text())


def test_a_run_records_its_cpu_model_and_a_resume_or_fork_on_another_one(tiny_data, tmp_path):
    from common.threads import cpu_model
    run, config = stopped_run(tiny_data, tmp_path, epochs=3, semi_start=2)
    ours = config["cpu_model"]
    assert ours == cpu_model() and ours  # /proc/cpuinfo names it here
    same = resume(run, os.environ["OMP_NUM_THREADS"], "--stop-at", "1")  # nothing to train: the same CPU, no note
    assert same.returncode == 0 and "cpu_changes" not in same.stdout + json.dumps(config), same.stdout
    config["cpu_model"] = "Another CPU 9000"  # as if it had started on another machine
    (run / "config.json").write_text(json.dumps(config))
    fork = tmp_path / "f"
    proc = subprocess.run([sys.executable, "train.py", *BASE, "--data", tiny_data, "--out", str(fork), "--epochs", "3",
                           "--semi-start", "2", "--fork-from", str(run), "--stop-at", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "fork: the source trained on the CPU 'Another CPU 9000', this machine's is %r" % ours in proc.stdout
    assert json.loads((fork / "config.json").read_text())["cpu_changes"] == [
        {"epoch": 1, "iteration": 0, "cpu_model": ours, "before": "Another CPU 9000"}]
    moved = resume(run, os.environ["OMP_NUM_THREADS"], "--stop-at", "2")
    assert moved.returncode == 0, moved.stderr
    assert ("resume: trained so far on the CPU 'Another CPU 9000', this machine's is %r: from here the numbers "
            "differ from a run on one machine" % ours) in moved.stdout
    changes = json.loads((run / "config.json").read_text())["cpu_changes"]
    assert changes == [{"epoch": 1, "iteration": 0, "cpu_model": ours, "before": "Another CPU 9000"}]
    again = resume(run, os.environ["OMP_NUM_THREADS"])  # the last change is this CPU: nothing new
    assert again.returncode == 0 and "cpu_changes" not in again.stdout
    assert json.loads((run / "config.json").read_text())["cpu_changes"] == changes


def test_resume_stop_at_beyond_the_stored_epochs(tiny_data, tmp_path):
    run = tmp_path / "r"
    assert train.main(BASE + ["--data", tiny_data, "--out", str(run), "--epochs", "2", "--stop-at", "1"]) == 0
    done = resume(run, os.environ["OMP_NUM_THREADS"], "--stop-at", "5")
    assert (done.returncode, done.stderr.strip()) == (2, "error: --stop-at 5 is beyond the run's --epochs 2")


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_never_recreates_an_existing_virtualenv(tmp_path):
    for name in ("Makefile", "setup.py"):
        shutil.copy(os.path.join(REPO, name), tmp_path / name)

    def dry_run():
        return subprocess.run(["make", "-n", "venv"], cwd=tmp_path, capture_output=True, text=True).stdout

    assert "-m venv .venv" in dry_run()  # a fresh clone: create it
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").write_text("")
    os.utime(tmp_path / "setup.py", (1_000_000, 1_000_000))
    (tmp_path / ".venv" / ".installed").write_text("")
    assert "pip install" not in dry_run()  # installed, setup.py older: nothing to do
    os.utime(tmp_path / "setup.py")  # setup.py changed (a pull): install into it, never re-create it
    out = dry_run()
    assert "pip install" in out and "-m venv" not in out
    os.utime(tmp_path / ".venv" / "bin" / "python", (1_000, 1_000))  # an old interpreter: still kept
    assert "-m venv" not in dry_run()


def test_batch_size_beyond_the_labeled_rows_is_refused_before_anything_is_written(tiny_data, tmp_path, capsys):
    run = tmp_path / "r"
    # tiny_data: 8 training sources x 2 copies; --labeled-frac 0.5 keeps 4 sources = 8 rows
    assert train.main(BASE + ["--data", tiny_data, "--out", str(run), "--batch-size", "1000000"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --batch-size 1000000 is larger than the 8 labeled training "
                                               "rows of this split (--data %s, --labeled-frac 0.5)" % tiny_data)
    assert not run.exists()


def test_a_run_that_stopped_before_its_first_checkpoint_says_how_to_go_on(tiny_data, tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert train.main(BASE + ["--data", tiny_data, "--out", str(run)]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: %s already holds a run without a checkpoint (it stopped before its first one); continue it with "
        "--resume %s, or remove %s to start it with other flags" % (run, run, run))
    assert os.listdir(run) == ["config.json"]


def test_the_demo_preset_does_not_default_to_the_paper_runs_name():
    assert train.parse_args(["--preset", "demo"]).out == os.path.join("runs", "demo_frac0.25_lambda0.1_seed0")
    assert train.parse_args([]).out == os.path.join("runs", "frac0.25_lambda0.1_seed0")


def test_curves_name_the_threshold_and_label_a_loss_axis_within_one_decade():
    import matplotlib.pyplot as plt
    from rundir.files import curves_figure
    # 0.15 .. 2.0: a little more than one decade, with one power of ten (1) inside
    history = [{"epoch": e, "sup": 2.0 - 0.5 * e, "conf": 0.15 + 0.01 * e, "mask_coverage_pct": 10.0 + e}
               for e in range(4)]
    fig = curves_figure(history, "C >= 0.9")
    fig.canvas.draw()
    assert fig.axes[1].get_title() == "unlabeled pixels kept, C >= 0.9 (%)"
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels(which="both")
              if t.get_text() and fig.axes[0].get_ylim()[0] <= t.get_position()[1] <= fig.axes[0].get_ylim()[1]]
    assert len(labels) >= 3, labels  # not 10^0 alone
    plt.close(fig)


def test_every_console_script_runs_its_command_line():
    import importlib
    import re
    text = open(os.path.join(REPO, "setup.py")).read()
    scripts = dict(re.findall(r'"(semidepth-[a-z]+)=([a-z_.]+:main)"', text))
    assert set(scripts) == {"semidepth-train", "semidepth-evaluate", "semidepth-predict", "semidepth-export",
                            "semidepth-prepare", "semidepth-report"}
    readme = open(os.path.join(REPO, "README.md")).read()
    for name, target in scripts.items():
        assert "`%s`" % name in readme, name  # documented
        module, function = target.split(":")
        with pytest.raises(SystemExit) as exit_info:
            getattr(importlib.import_module(module), function)(["--help"])
        assert exit_info.value.code == 0, name


def test_sizes_beyond_the_machines_memory_are_one_line(tmp_path):
    from common import memory
    gib = memory.physical_memory() / 2 ** 30
    done = subprocess.run([sys.executable, "-m", "data.prepare", "--mat", str(tmp_path / "x.mat"), "--splits",
                           str(tmp_path / "s.mat"), "--out", str(tmp_path / "out"), "--size", "64000x48000"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    # 64000 x 48000 pixels x 64 bytes = 183.1 GiB
    assert (done.returncode, done.stderr.strip()) == (2, (
        "error: preparing the data at 64000x48000 needs about 183 GB of memory (an estimate, common/memory.py); "
        "this machine has %.0f GB" % gib))
    assert not (tmp_path / "out").exists()


def test_check_fits_by_hand(monkeypatch):
    from common import memory
    monkeypatch.setattr(memory, "physical_memory", lambda: 10 * 2 ** 30)  # 10 GiB
    memory.check_fits("x", (1000, 1000), 2048, ValueError, images=5)  # 9.5 GiB: fits
    with pytest.raises(ValueError, match=r"^x at 1000x1000 needs about 11 GB of memory .* has 10 GB$"):
        memory.check_fits("x", (1000, 1000), 2048, ValueError, images=6)  # 11.4 GiB


def test_resume_and_fork_rules_come_from_the_flags_roles():
    """The resume / fork rules (rundir/resume.py), derived from config.py's roles, are the documented policy (README: what a
    resume may change) restated by hand; every flag of the parser is either tagged or must match."""
    free = {"gpus", "num_workers", "no_progress", "log_every", "save_every", "cache_on", "max_bad_steps", "preset",
            "track_test"}
    invocation = {"resume", "out", "stop_at", "dump_params", "trust_pickled_states", "fork_from",
                  "allow_thread_change"}
    assert resume_free() == free | invocation
    assert not_restored() == invocation | {"explicit"}
    assert fork_free() == free | invocation | {"explicit", "lambda_semi", "t_semi", "keep_share", "pseudo_labels"}
    dests = set(vars(train.parse_args([])))
    assert resume_free() | fork_free() <= dests | {"explicit"}
    assert {"lr", "seed", "epochs", "alpha", "labeled_frac", "data"} <= dests - fork_free()  # must match
