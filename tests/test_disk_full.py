"""A full disk (a small tmpfs): the error names the file and says "no space left", no temporary or partial file
stays behind to keep the disk full, and once space is freed the run resumes.  Skipped where tmpfs cannot be
mounted (not root, or a container without CAP_SYS_ADMIN)."""
import os
import subprocess
import sys

import pytest

from common.files import write_json_atomic
from test_train import BASE, REPO


def mount_tmpfs(path, megabytes):
    option = "size=%dm" % megabytes
    if path.is_mount():
        option = "remount," + option
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", option, "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or not mount_tmpfs(disk, 8):
        pytest.skip("cannot mount a tmpfs here")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(disk):
    """Take every free byte of ``disk``."""
    with open(disk / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass


def test_json_on_a_full_disk(small_disk):
    fill(small_disk)
    with pytest.raises(OSError) as err:
        write_json_atomic(str(small_disk / "eval.json"), {"values": list(range(100000))})
    assert str(err.value).startswith("cannot write %s: no space left on device (" % (small_disk / "eval.json"))
    assert sorted(os.listdir(small_disk)) == ["filler"]


def test_training_on_a_full_disk_then_resume(tiny_data, small_disk, tmp_path):
    run = small_disk / "run"
    cmd = [sys.executable, "train.py", *BASE, "--data", tiny_data, "--out", str(run), "--epochs", "2"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    last = run / "checkpoints" / "last"
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: cannot write checkpoint %s: no space left on device (" % last)
    assert done.stderr.strip().endswith("the previous checkpoint is intact: free space, then resume the run")
    assert os.listdir(run / "checkpoints") == []  # no .tmp-last keeping the disk full
    assert mount_tmpfs(small_disk, 1024)  # space freed
    resumed = subprocess.run([sys.executable, "train.py", "--resume", str(run), "--no-progress", "--dump-params",
                              str(tmp_path / "resumed")], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert os.listdir(run / "checkpoints") == ["last"]  # no --val-frac: no best
    # the same as a training the full disk never interrupted
    straight = subprocess.run(cmd[:cmd.index("--out") + 1] + [str(tmp_path / "straight")] + cmd[cmd.index("--out") + 2:]
                              + ["--dump-params", str(tmp_path / "straight_params")], cwd=REPO, capture_output=True,
                              text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr
    for name in sorted(os.listdir(tmp_path / "straight_params")):
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "straight_params" / name).read_bytes(), name


def test_export_and_predict_on_a_full_disk_leave_no_partial_file(tiny_data, small_disk, tmp_path):
    import cv2
    import numpy as np
    run = tmp_path / "run"
    assert subprocess.run([sys.executable, "train.py", *BASE, "--data", tiny_data, "--out", str(run),
                           "--epochs", "1"], cwd=REPO, capture_output=True, timeout=600).returncode == 0
    out = small_disk / "exported"
    done = subprocess.run([sys.executable, "export.py", "--run", str(run), "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "no space left on device" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert os.listdir(out) == []  # neither a 0-byte final file nor a temporary one
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((48, 64, 3), np.uint8))
    (small_disk / "maps").mkdir()
    fill(small_disk)
    done = subprocess.run([sys.executable, "predict.py", str(image), "--run", str(run), "--out",
                           str(small_disk / "maps"), "--no-progress"], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 2 and "no space left on device" in done.stderr, done.stderr
    assert [n for n in os.listdir(small_disk / "maps") if ".tmp" in n] == []
