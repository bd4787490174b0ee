"""common/threads.py: OMP_NUM_THREADS = physical cores this process may use, unless the user set it."""
import os
import subprocess
import sys

import pytest

from common.threads import cgroup_cpu_limit, physical_cores, set_omp_threads

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fake_sysfs(root, cores_of_cpu):
    """cpu<N>/topology/{physical_package_id,core_id} for each logical CPU -> (package, core)."""
    for cpu, (package, core) in cores_of_cpu.items():
        topo = root / ("cpu%d" % cpu) / "topology"
        topo.mkdir(parents=True)
        (topo / "physical_package_id").write_text("%d\n" % package)
        (topo / "core_id").write_text("%d\n" % core)
    return str(root)


@pytest.fixture
def no_quota(tmp_path):
    path = tmp_path / "cgroup"
    path.mkdir()
    (path / "cpu.max").write_text("max 100000\n")
    return str(path)


def test_one_thread_per_core_counts_every_cpu(tmp_path, no_quota):
    sysfs = fake_sysfs(tmp_path / "cpu", {0: (0, 0), 1: (0, 1)})
    assert physical_cores(affinity={0, 1}, sysfs=sysfs, cgroup=no_quota) == 2


def test_hyper_threads_of_one_core_count_once(tmp_path, no_quota):
    # 2 packages x 2 cores x 2 threads: cpu k and k+4 are siblings
    topology = {cpu: (cpu % 4 // 2, cpu % 2) for cpu in range(8)}
    sysfs = fake_sysfs(tmp_path / "cpu", topology)
    assert physical_cores(affinity=set(range(8)), sysfs=sysfs, cgroup=no_quota) == 4
    assert physical_cores(affinity={0, 4}, sysfs=sysfs, cgroup=no_quota) == 1  # two siblings
    assert physical_cores(affinity={0, 1, 5}, sysfs=sysfs, cgroup=no_quota) == 2  # an affinity subset


def test_cgroup_quota_caps_the_count(tmp_path):
    sysfs = fake_sysfs(tmp_path / "cpu", {cpu: (0, cpu) for cpu in range(8)})
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs -> 2 threads
    assert cgroup_cpu_limit(str(v2)) == 2
    assert physical_cores(affinity=set(range(8)), sysfs=sysfs, cgroup=str(v2)) == 2
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert physical_cores(affinity=set(range(8)), sysfs=sysfs, cgroup=str(tmp_path / "v1")) == 3
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")  # v1 without a quota
    assert physical_cores(affinity=set(range(8)), sysfs=sysfs, cgroup=str(tmp_path / "v1")) == 8


def test_without_sysfs_each_allowed_cpu_counts(tmp_path, no_quota):
    assert physical_cores(affinity={0, 2, 3}, sysfs=str(tmp_path / "missing"), cgroup=no_quota) == 3


def test_a_value_the_user_set_is_kept(tmp_path, no_quota):
    sysfs = fake_sysfs(tmp_path / "cpu", {0: (0, 0), 1: (0, 1)})
    env = {"OMP_NUM_THREADS": "1"}
    assert set_omp_threads(env, affinity={0, 1}, sysfs=sysfs, cgroup=no_quota) == 1
    env = {}
    assert set_omp_threads(env, affinity={0, 1}, sysfs=sysfs, cgroup=no_quota) == 2
    assert env["OMP_NUM_THREADS"] == "2"


@pytest.mark.parametrize("module", ["symbols", "rundir", "training", "evaluation", "data"])
def test_importing_a_package_sets_threads_before_mxnet(module):
    """Each package that leads to mxnet sets the variable first (MXNet reads it when it loads)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    code = ("import os, sys; import %s; print(os.environ['OMP_NUM_THREADS'])" % module)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         check=True)
    assert int(out.stdout.strip().splitlines()[-1]) == physical_cores()
