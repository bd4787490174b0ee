"""What config.json says a run was made with: the versions installed, the commit outside a checkout;
what git keeps out."""
import subprocess
from importlib import metadata

import pytest

from rundir import files as run_files


def test_versions_are_the_installed_distributions():
    recorded = run_files.versions()
    # gluoncv 0.10.5.post0's module calls itself 0.11.0; the distribution's metadata is what pip installed
    assert recorded["gluoncv"] == metadata.version("gluoncv") == "0.10.5.post0"
    assert recorded["mxnet"] == metadata.version("mxnet") == "1.9.1"
    assert recorded["numpy"] == "1.23.5"


def test_the_mxnet_build_is_recorded():
    """The pinned CPU wheel (mxnet 1.9.1) is built with oneDNN (MKLDNN) and OpenMP, without CUDA."""
    build = run_files.mxnet_build()
    assert {"MKLDNN", "OPENMP"} <= set(build) and "CUDA" not in build and build == sorted(build)


def test_commit_from_the_checkout_else_from_the_image(tmp_path, monkeypatch):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=run_files.REPO, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    monkeypatch.setenv("SEMIDEPTH_GIT_COMMIT", "abc123")
    assert run_files.git_commit() == head.stdout.strip()  # a checkout wins over the variable
    monkeypatch.setattr(run_files, "REPO", str(tmp_path))  # no .git here, as in the Docker image
    assert run_files.git_commit() == "abc123"
    monkeypatch.delenv("SEMIDEPTH_GIT_COMMIT")
    assert run_files.git_commit() is None


@pytest.mark.parametrize("path", ["exported/depth_net-0000.params", "runs/demo/config.json", "datasets/nyu/x.h5"])
def test_outputs_are_ignored_by_git(path):
    done = subprocess.run(["git", "check-ignore", "-q", path], cwd=run_files.REPO)
    if done.returncode == 128:
        pytest.skip("not a git checkout")
    assert done.returncode == 0, path
