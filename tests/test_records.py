"""config.json and state.json from anyone (rundir/records.py, rundir/state.py): a mistyped value is one line
naming file and key, in every command that reads them; what the project writes passes its own check."""
import json
import shutil
import subprocess
import sys

import pytest

import train
from rundir.records import CONFIG_REQUIRED, NUMBER, check_record, config_types, flag_types
from rundir.state import STATE_REQUIRED, STATE_TYPES, TrainingPoint
from test_train import BASE, REPO


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
