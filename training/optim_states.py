"""Optimiser states without pickle: arrays in an ``mx.nd.save`` file, counters in JSON.

``gluon.Trainer.save_states`` pickles the updater together with the optimizer
object, and loading a pickle runs whatever code it names: a crafted ``.states``
file in a run directory someone sends you would run code at ``train.py --resume``.
Here a checkpoint keeps

* ``<name>.nd``: every state array (SGD momentum, Adam mean and variance), keys
  ``<param index>.<position>``, read by ``mx.nd.load`` (a plain array format);
* a JSON record (in ``state.json``): the layout of each parameter's state, the
  update counters (which drive the poly schedule and Adam's bias correction) and the
  hyper-parameters, which must match the optimizer they are loaded into.

Loading fills the updaters of a freshly built ``gluon.Trainer``; the optimizer
object itself is never replaced, so nothing but arrays and numbers is read.
"""
import math
import numbers

import mxnet as mx

from data.errors import one_line

from rundir.layout import RunError

FORMAT = 1
HYPER = ("lr", "wd", "rescale_grad", "clip_gradient", "momentum", "beta1", "beta2", "epsilon",
         "multi_precision", "lazy_update")


def _updaters(trainer):
    """The gluon.Trainer's updaters (one per device, or the local kvstore's)."""
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    if trainer._params_to_init:
        trainer._init_params()
    if trainer._update_on_kvstore:
        updater = getattr(trainer._kvstore, "_updater", None)
        if updater is None:
            raise RunError("optimiser states live on the kvstore servers and cannot be checkpointed")
        return [updater]
    return trainer._updaters


def _plain(value):
    return value is None or isinstance(value, (bool, str)) or \
        (isinstance(value, numbers.Number) and not isinstance(value, complex))


def hyper_parameters(optimizer):
    """What the optimizer computes with (the schedule's settings included), as JSON values."""
    out = {"optimizer": type(optimizer).__name__.lower()}
    out.update({k: getattr(optimizer, k) for k in HYPER if _plain(getattr(optimizer, k, ()))})
    sched = optimizer.lr_scheduler
    if sched is not None:
        out["lr_scheduler"] = dict({k: v for k, v in vars(sched).items()
                                    if k != "learning_rate" and _plain(v)}, type=type(sched).__name__)
    return out


def _flatten(state, key, arrays):
    if state is None:
        return None
    if isinstance(state, mx.nd.NDArray):
        arrays[key] = state.as_in_context(mx.cpu())
        return key
    if isinstance(state, (tuple, list)):
        return [_flatten(s, "%s.%d" % (key, i), arrays) for i, s in enumerate(state)]
    raise RunError("cannot checkpoint an optimiser state of type %s" % type(state).__name__)


def _unflatten(layout, arrays, shape, where):
    if layout is None:
        return None
    if isinstance(layout, list):
        return tuple(_unflatten(item, arrays, shape, where) for item in layout)
    if not isinstance(layout, str) or layout not in arrays:
        raise RunError("%s: optimiser state %r missing" % (where, layout))
    if arrays[layout].shape != shape:
        raise RunError("%s: optimiser state %s has shape %s, its parameter %s"
                              % (where, layout, arrays[layout].shape, shape))
    return arrays[layout].copy()


def save(trainer, path):
    """Write the arrays to ``path``; returns the JSON record."""
    updater = _updaters(trainer)[0]
    opt = updater.optimizer
    arrays = {}
    layout = [[index, _flatten(state, str(index), arrays)] for index, state in sorted(updater.states.items())]
    mx.nd.save(path, arrays or {"empty": mx.nd.zeros((1,))})  # mx.nd.save refuses an empty dict
    current = [d for d, counts in opt._all_index_update_counts.items() if counts is opt._index_update_count]
    return {"format": FORMAT, "hyper": hyper_parameters(opt), "states": layout,
            "num_update": opt.num_update, "begin_num_update": opt.begin_num_update,
            "update_counts": [[d, sorted(c.items())] for d, c in sorted(opt._all_index_update_counts.items())],
            "current_device": current[0] if current else 0}


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def load(trainer, path, record):
    """Fill ``trainer``'s optimiser states from ``path`` and ``record`` (see ``save``)."""
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise RunError("%s: unknown optimiser state format" % path)
    updaters = _updaters(trainer)
    opt = updaters[0].optimizer
    stored = record.get("hyper") if isinstance(record.get("hyper"), dict) else {}
    # not a setting: Trainer.step sets rescale_grad at every step (1 / the loss scale with --amp)
    if isinstance(stored.get("rescale_grad"), float):
        opt.rescale_grad = stored["rescale_grad"]
    hyper = hyper_parameters(opt)
    if not _same(hyper, stored):
        diff = sorted(k for k in set(hyper) | set(stored) if not _same(hyper.get(k), stored.get(k)))
        raise RunError("%s: the stored optimiser differs from the run's flags in %s" % (path, ", ".join(diff)))
    try:
        arrays = mx.nd.load(path)
        shapes = {i: p.shape for i, p in enumerate(trainer._params)}
        for updater in updaters:
            states = {}
            for index, layout in record["states"]:
                if index not in shapes:
                    raise RunError("%s: optimiser state for parameter %r, which does not exist" % (path, index))
                states[index] = _unflatten(layout, arrays, shapes[index], path)
            updater.states, updater.states_synced = states, dict.fromkeys(states, False)
        opt.num_update, opt.begin_num_update = int(record["num_update"]), int(record["begin_num_update"])
        opt._all_index_update_counts = {int(d): {int(i): int(c) for i, c in counts}
                                        for d, counts in record["update_counts"]} or {0: {}}
        current = int(record["current_device"])
        opt._index_update_count = opt._all_index_update_counts.setdefault(current, {})
    except mx.base.MXNetError as err:
        raise RunError("%s: not a readable array file (%s)" % (path, one_line(err)))
    except (KeyError, TypeError, ValueError) as err:
        raise RunError("%s: malformed optimiser record in state.json (%s)" % (path, err))

