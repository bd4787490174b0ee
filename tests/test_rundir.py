"""Tests of rundir/: config.json and state.json from anyone, checked on every read (rundir/records.py,
rundir/state.py's ``TrainingPoint``: a mistyped value is one line naming file and key, in every command that
reads them, and what the project writes passes its own check); what --resume restores, keeps or refuses
(rundir/resume.py: stored flags restored unless given again, the resume / fork rules from the flags' roles, a
GPU run resumed on a CPU, another thread count or CPU model refused or recorded, an --out that holds a run or a
--resume that finds none); one writer per run directory (rundir/lock.py); a truncated parameter file on resume
(rundir/nets.py); and curves.png (rundir/files.py)."""
import json
import os
import shutil
import subprocess
import sys

import pytest

import train
from rundir.lock import RunLock
from rundir.records import CONFIG_REQUIRED, NUMBER, check_record, config_types, flag_types
from rundir.resume import fork_free, not_restored, resume_free, resume_options
from rundir.state import STATE_REQUIRED, STATE_TYPES, TrainingPoint
from test_train import BASE, REPO


def run_cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "train.py"] + [str(a) for a in args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, **(env or {})))


def one_error_line(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# ---- config.json and state.json (rundir/records.py, rundir/state.py) -------------------------------------------------

class Bad(Exception):
    pass


def test_flag_types_follow_the_flag_definitions():
    types = flag_types()
    assert (types["epochs"], types["seed"], types["pretrained"]) == (int, int, int)
    assert (types["t_semi"], types["labeled_frac"], types["lr"]) == (NUMBER, NUMBER, NUMBER)
    assert types["gpus"] == [int] and types["no_progress"] is bool
    assert types["backbone_params"] == (str, None) and types["unlabeled_per_step"] == (int, None)
    assert types["freeze_bn"] == (int, None) and types["amp"] is str


@pytest.mark.parametrize("record, line", [
    ({"epochs": "four"}, "R/config.json: 'epochs' must be an integer, got \"four\""),
    ({"gpus": "zero"}, "R/config.json: 'gpus' must be a list of integers, got \"zero\""),
    ({"gpus": [0, "1"]}, "R/config.json: 'gpus' must be a list of integers, got [0, \"1\"]"),
    ({"nets": "resnet"}, "R/config.json: 'nets' must be an object, got \"resnet\""),
    ({"t_semi": True}, "R/config.json: 't_semi' must be a number, got true"),
    ({"epochs": 2.5}, "R/config.json: 'epochs' must be an integer, got 2.5"),
    ({"backbone_params": 3}, "R/config.json: 'backbone_params' must be a string or null, got 3"),
    ([1, 2], "R/config.json must hold a JSON object, it holds list"),
])
def test_a_mistyped_config_is_one_line_naming_file_and_key(record, line):
    with pytest.raises(Bad) as err:
        check_record(record, "R/config.json", config_types(), (), Bad)
    assert str(err.value) == line


def test_numbers_may_be_written_as_integers_and_null_where_the_default_is():
    ok = {"t_semi": 1, "lr": 0.001, "backbone_params": None, "unlabeled_per_step": None, "gpus": [],
          "freeze_bn": 0, "stop_at": None, "unknown_newer_key": {"anything": 1}}
    assert check_record(ok, "R/config.json", config_types(), (), Bad) is ok


def test_required_keys():
    with pytest.raises(Bad, match=r"^R/config.json has no 'epochs'$"):
        check_record({"data": "d"}, "R/config.json", config_types(), CONFIG_REQUIRED, Bad)
    with pytest.raises(Bad, match=r"^S/state.json: 'epoch' must be an integer, got \"one\"$"):
        check_record({"epoch": "one", "iteration": 0, "history": []}, "S/state.json", STATE_TYPES, STATE_REQUIRED, Bad)
    with pytest.raises(Bad, match=r"^S/state.json: 'history' must be a list of objects, got \{\}$"):
        check_record({"epoch": 1, "iteration": 0, "history": {}}, "S/state.json", STATE_TYPES, STATE_REQUIRED, Bad)
    with pytest.raises(Bad, match=r"^S/state.json has no 'iteration'$"):
        check_record({"epoch": 1, "history": []}, "S/state.json", STATE_TYPES, STATE_REQUIRED, Bad)


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("records") / "run"
    assert train.main(BASE + ["--data", tiny_data, "--out", str(run), "--epochs", "2", "--stop-at", "1"]) == 0
    return run


def test_what_the_project_writes_passes_and_every_key_is_typed(trained):
    cfg = json.loads((trained / "config.json").read_text())
    check_record(cfg, "config.json", config_types(), CONFIG_REQUIRED, Bad)
    assert set(cfg) <= set(config_types()), set(cfg) - set(config_types())  # nothing written goes unchecked
    state = json.loads((trained / "checkpoints" / "last" / "state.json").read_text())
    check_record(state, "state.json", STATE_TYPES, STATE_REQUIRED, Bad)
    assert set(state) <= set(STATE_TYPES), set(state) - set(STATE_TYPES)
    point = TrainingPoint.read(str(trained / "checkpoints" / "last"), Bad)
    assert (point.epoch, point.iteration, point.seed, len(point.history)) == (1, 0, 0, 1)
    assert point.to_json() == state  # read and written back: the same object, key for key


def test_training_point_fields_round_trip_and_old_files_take_defaults(tmp_path):
    full = {"epoch": 3, "iteration": 2, "seed": 7, "bad_steps": 1, "skipped": 4, "best_val": 0.25,
            "history": [{"epoch": 0}], "partial": {"good": 2}, "amp": {"scalers": []},
            "cache": {"shards": "cache-shards/e00003-i00000002", "world": 2}, "optimizers": {"depth": {}}}
    assert TrainingPoint.from_json(full).to_json() == full
    # a state.json of older code: only what it wrote; the rest takes the defaults, unknown keys are ignored
    (tmp_path / "state.json").write_text(json.dumps({"epoch": 2, "iteration": 0, "history": [], "newer": 1}))
    point = TrainingPoint.read(str(tmp_path), Bad)
    assert point == TrainingPoint(epoch=2)
    assert (point.bad_steps, point.skipped, point.partial, point.amp, point.cache) == (0, 0, {}, None, None)
    assert "cache" not in point.to_json()  # an unsharded cache lives in cache.nd: no key, as always
    (tmp_path / "state.json").write_text(json.dumps({"epoch": 2, "iteration": 0, "history": [], "cache": 3}))
    with pytest.raises(Bad, match=r"state.json: 'cache' must be an object or null, got 3$"):
        TrainingPoint.read(str(tmp_path), Bad)


def broken_copy(trained, tmp_path, file, change):
    run = tmp_path / "broken"
    shutil.copytree(trained, run)
    path = run / file
    record = json.loads(path.read_text())
    path.write_text(json.dumps(change(record)))
    return run, path


def cli(*args):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("file, change, key", [
    ("config.json", lambda c: dict(c, epochs="four"), "'epochs' must be an integer, got \"four\""),
    ("config.json", lambda c: dict(c, gpus="zero"), "'gpus' must be a list of integers, got \"zero\""),
    ("config.json", lambda c: {k: v for k, v in c.items() if k != "epochs"}, None),
    ("checkpoints/last/state.json", lambda s: dict(s, epoch="one"), "'epoch' must be an integer, got \"one\""),
    ("checkpoints/last/state.json", lambda s: dict(s, history={}), "'history' must be a list of objects, got {}"),
])
def test_resume_of_a_mistyped_run_is_one_line(file, change, key, trained, tmp_path):
    run, path = broken_copy(trained, tmp_path, file, change)
    done = cli("train.py", "--resume", str(run), "--no-progress")
    expected = "error: %s: %s" % (path, key) if key else "error: %s has no 'epochs'" % path
    assert (done.returncode, done.stderr.strip()) == (2, expected)


def test_evaluate_and_predict_of_a_mistyped_config_are_one_line(trained, tmp_path):
    run, path = broken_copy(trained, tmp_path, "config.json", lambda c: dict(c, nets="resnet"))
    expected = "error: %s: 'nets' must be an object, got \"resnet\"" % path
    done = cli("evaluate.py", "--run", str(run), "--no-progress")
    assert (done.returncode, done.stderr.strip()) == (2, expected)
    image = tmp_path / "x.png"
    _write_png(image)
    done = cli("predict.py", str(image), "--run", str(run), "--out", str(tmp_path / "out"), "--no-progress")
    assert (done.returncode, done.stderr.strip()) == (2, expected)
    (run / "config.json").write_text("[1, 2]")
    done = cli("evaluate.py", "--run", str(run), "--no-progress")
    assert (done.returncode, done.stderr.strip()) == (2, "error: %s must hold a JSON object, it holds list" % path)


def _write_png(path):
    import cv2
    import numpy as np
    cv2.imwrite(str(path), np.zeros((48, 64, 3), np.uint8))


# ---- what --resume restores, keeps or refuses (rundir/resume.py) -----------------------------------------------------

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


def test_resume_restores_stored_flags_unless_given_again(tmp_path):
    stored = train.parse_args(["--out", str(tmp_path), "--gpus", "0", "--save-every", "3", "--no-progress",
                               "--log-every", "7", "--cache-on", "disk", "--stop-at", "1"])
    json.dump(vars(stored), open(tmp_path / "config.json", "w"))
    merged, notes = resume_options(train.parse_args(["--resume", str(tmp_path)]), train.build_parser())
    assert (merged.gpus, merged.save_every, merged.no_progress, merged.log_every, merged.cache_on) == \
        ([0], 3, True, 7, "disk")
    assert merged.stop_at is None and notes == []
    merged, notes = resume_options(train.parse_args(["--resume", str(tmp_path), "--gpus", "",
                                                           "--save-every", "5", "--log-every", "7"]), train.build_parser())
    assert (merged.gpus, merged.save_every, merged.log_every) == ([], 5, 7)
    assert notes == ["--gpus '' (CPU) (stored: --gpus 0)", "--save-every 5 (stored: --save-every 3)"]


def test_resume_of_a_gpu_run_on_a_cpu_machine(run_copy):
    config = json.loads((run_copy / "config.json").read_text())
    config["gpus"] = [0]
    (run_copy / "config.json").write_text(json.dumps(config))
    line = one_error_line(run_cli("--resume", run_copy))
    assert "--gpus 0" in line and "no GPU" in line and "--gpus ''" in line
    result = run_cli("--resume", run_copy, "--gpus", "", "--stop-at", "1")
    assert result.returncode == 0, result.stderr
    assert "resume: --gpus '' (CPU) (stored: --gpus 0)" in result.stdout


def test_resume_without_a_run_names_what_is_missing(tmp_path):
    line = one_error_line(run_cli("--resume", tmp_path))
    assert "holds no run to resume (no config.json)" in line and "--checkpoint" not in line


def test_a_run_that_stopped_before_its_first_checkpoint_says_how_to_go_on(tiny_data, tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert train.main(BASE + ["--data", tiny_data, "--out", str(run)]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: %s already holds a run without a checkpoint (it stopped before its first one); continue it with "
        "--resume %s, or remove %s to start it with other flags" % (run, run, run))
    assert os.listdir(run) == ["config.json"]


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


def test_resume_stop_at_beyond_the_stored_epochs(tiny_data, tmp_path):
    run = tmp_path / "r"
    assert train.main(BASE + ["--data", tiny_data, "--out", str(run), "--epochs", "2", "--stop-at", "1"]) == 0
    done = resume(run, os.environ["OMP_NUM_THREADS"], "--stop-at", "5")
    assert (done.returncode, done.stderr.strip()) == (2, "error: --stop-at 5 is beyond the run's --epochs 2")


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


# ---- one writer per run directory (rundir/lock.py) -------------------------------------------------------------------

def test_second_writer_gets_one_line_naming_the_holder(run_copy, tiny_data, tmp_path):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for run, argv in ((fresh, ["--out", fresh, "--data", tiny_data] + BASE), (run_copy, ["--resume", run_copy])):
        held = RunLock(str(run))  # this test process is the other training
        before = {p: os.path.getmtime(os.path.join(d, p)) for d, _, files in os.walk(run) for p in files}
        line = one_error_line(run_cli(*argv))
        held.release()
        assert "being written by another training (pid %d)" % os.getpid() in line
        after = {p: os.path.getmtime(os.path.join(d, p)) for d, _, files in os.walk(run) for p in files}
        assert after == before
    assert sorted(os.listdir(fresh)) == [".lock"]


# ---- the networks of a checkpoint (rundir/nets.py) -------------------------------------------------------------------

def test_truncated_parameters_on_resume_is_one_line(run_copy):
    params = run_copy / "checkpoints" / "last" / "depth_net.params"
    params.write_bytes(params.read_bytes()[:1000])
    line = one_error_line(run_cli("--resume", run_copy))
    assert str(params) in line and "cannot load" in line


# ---- curves.png (rundir/files.py) ------------------------------------------------------------------------------------

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
