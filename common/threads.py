"""OpenMP threads for MXNet: one per physical core this process may use.

MXNet 1.9.1 on x86 assumes hyper-threading and starts half as many OpenMP threads
as there are logical CPUs.  On machines with one thread per core (most cloud VMs and
CI runners) that leaves half the cores idle: a training step at 320x240 on 2 cores
takes 6.9 s with MXNet's default and 3.6 s with ``OMP_NUM_THREADS=2``.

``set_omp_threads()`` must run before ``import mxnet`` (MXNet reads the variable when
its library loads); every entry point and every package that imports mxnet calls it
first.  A value the user exported is never changed: ``OMP_NUM_THREADS=1 python
train.py ...`` overrides the rule.  The rule: the logical CPUs in this process's
affinity mask, counted once per physical core (hyper-threads of one core count as
one), and no more than the cgroup CPU quota (containers, CI runners) allows.

Numbers depend on the CPU model as well (oneDNN picks its kernels by CPU): ``cpu_model()`` is
what run directories and benchmarks record.
"""
import math
import os

SYSFS_CPU = "/sys/devices/system/cpu"
CGROUP = "/sys/fs/cgroup"


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _physical_core(cpu, sysfs):
    """(package, core) of a logical CPU; the CPU itself when sysfs does not say."""
    topo = os.path.join(sysfs, "cpu%d" % cpu, "topology")
    package, core = _read(os.path.join(topo, "physical_package_id")), _read(os.path.join(topo, "core_id"))
    return (package, core) if package is not None and core is not None else ("cpu", cpu)


def cgroup_cpu_limit(root=CGROUP):
    """CPUs allowed by the cgroup quota (v2 ``cpu.max`` or v1 ``cfs_quota_us``), None if unlimited."""
    v2 = _read(os.path.join(root, "cpu.max"))
    if v2:
        quota, _, period = v2.partition(" ")
        if quota != "max" and period:
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    for sub in ("cpu", "cpu,cpuacct", ""):
        quota = _read(os.path.join(root, sub, "cpu.cfs_quota_us"))
        period = _read(os.path.join(root, sub, "cpu.cfs_period_us"))
        if quota and period and int(quota) > 0:
            return max(1, math.ceil(int(quota) / int(period)))
    return None


def physical_cores(affinity=None, sysfs=SYSFS_CPU, cgroup=CGROUP):
    """Physical cores this process may use (at least 1)."""
    if affinity is None:
        affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = len({_physical_core(cpu, sysfs) for cpu in affinity}) or 1
    limit = cgroup_cpu_limit(cgroup)
    return max(1, min(cores, limit) if limit else cores)


def set_omp_threads(environ=None, **where):
    """Set ``OMP_NUM_THREADS`` unless already set; returns the value in force."""
    environ = os.environ if environ is None else environ
    if not environ.get("OMP_NUM_THREADS"):
        environ["OMP_NUM_THREADS"] = str(physical_cores(**where))
    return int(environ["OMP_NUM_THREADS"])


def cpu_model(path="/proc/cpuinfo"):
    """The CPU's model name, None where /proc/cpuinfo does not say."""
    try:
        with open(path) as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        return None
