"""The records of a run directory (config.json; state.json's types: rundir/state.py), checked on every read.

A run directory may come from anyone: a value of the wrong type must stop a command with one
line naming the file and the key, never with a traceback from deep inside training.  The flag
types come from the flags' own definitions (``config.py``: ``add_*_args``); the other keys are
listed here beside what writes them (rundir/files.py, training/precision.py); state.json's types
are its fields' (rundir/state.py).  Keys this code does not know are left alone (a newer or older run).
"""
import argparse
import json
import numbers
import os

import config
from common.files import read_json

# train.py's own flags (not in config.py's groups), as config.json stores them
TRAIN_FLAGS = {"preset": str, "stop_at": (int, None), "track_test": bool, "fork_from": (str, None),
               "trust_pickled_states": bool, "allow_thread_change": bool}
# what rundir/files.py and training/precision.py add to the flags
CONFIG_EXTRA = {"explicit": [str], "versions": dict, "git_commit": (str, None), "nets": dict,
                "omp_num_threads": (str, None), "data_attrs": dict, "dataset": (str, None), "input_size": [int],
                "unlabeled_batch": int, "amp_dtype": str, "thread_changes": [dict], "data_relative_to_run": str,
                "cpu_model": (str, None), "cpu_changes": [dict], "mxnet_build": [str]}
# present in every config.json this project has written; a resume cannot guess them
CONFIG_REQUIRED = ("data", "epochs", "semi_start", "batch_size", "lr", "seed", "labeled_frac", "lambda_semi")
NUMBER = float  # a JSON number: 3 and 3.0 are both numbers; true is not


def flag_types():
    """{dest: type rule} of every flag config.py defines."""
    parser = argparse.ArgumentParser(add_help=False)
    for add in (config.add_model_args, config.add_train_args, config.add_run_args, config.add_scale_args):
        add(parser)
    rules = {}
    for action in parser._actions:
        if isinstance(action, argparse._StoreTrueAction):
            rule = bool
        elif action.type in (config.parse_gpus, config.parse_size):
            rule = [int]
        elif action.type in (float, config.fraction):
            rule = NUMBER
        elif action.type is int:
            rule = int
        else:
            rule = str
        rules[action.dest] = (rule, None) if action.default is None else rule
    return rules


def _matches(value, rule):
    if isinstance(rule, tuple):
        return any(_matches(value, r) for r in rule)
    if rule is None:
        return value is None
    if isinstance(rule, list):
        return isinstance(value, list) and all(_matches(v, rule[0]) for v in value)
    if isinstance(value, bool):
        return rule is bool
    if rule is NUMBER:
        return isinstance(value, numbers.Real)
    return isinstance(value, rule)


def _name(rule):
    if isinstance(rule, tuple):
        return " or ".join(_name(r) for r in rule)
    if rule is None:
        return "null"
    if isinstance(rule, list):
        return "a list of " + {int: "integers", str: "strings", dict: "objects"}[rule[0]]
    return {bool: "true/false", int: "an integer", NUMBER: "a number", str: "a string", dict: "an object"}[rule]


def check_record(record, path, types, required, error):
    """``record`` (parsed JSON) against ``types``; ``error`` with one line naming ``path`` and the key."""
    if not isinstance(record, dict):
        raise error("%s must hold a JSON object, it holds %s" % (path, type(record).__name__))
    for key in required:
        if key not in record:
            raise error("%s has no %r" % (path, key))
    for key, rule in types.items():
        if key in record and not _matches(record[key], rule):
            raise error("%s: %r must be %s, got %s" % (path, key, _name(rule), json.dumps(record[key])[:80]))
    return record


def config_types():
    return dict(flag_types(), **TRAIN_FLAGS, **CONFIG_EXTRA)


def read_record(path, types, required, error):
    return check_record(read_json(path, error=error), path, types, required, error)


def read_config(run_dir, error, required=()):
    """``run_dir``/config.json, checked; ``error`` (one line) if missing, unreadable, mistyped or without a
    ``required`` key (training needs ``CONFIG_REQUIRED``; scoring reads fewer)."""
    return read_record(os.path.join(run_dir, "config.json"), config_types(), required, error)
