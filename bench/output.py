"""What the benchmarks share in their output: the machine they ran on, and printing and saving a result."""
import json
import os
import platform


def cpu_model(path="/proc/cpuinfo"):
    """The CPU's model name, None where /proc/cpuinfo does not say."""
    try:
        with open(path) as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        return None


def machine():
    return {"cpu": cpu_model() or platform.processor(), "cpu_count": os.cpu_count(),
            "python": platform.python_version()}


def finish(result, report, json_path=None):
    """Print ``result`` with ``report`` and, if asked, write it to ``json_path``; exit status 0."""
    report(result)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1, sort_keys=True)
    return 0
