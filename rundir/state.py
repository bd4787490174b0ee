"""state.json of a checkpoint: where a training stands, as one typed record.

``TrainingPoint`` names every field; it is read (and checked) only by ``TrainingPoint.read`` and
turned into JSON only by ``to_json`` (training/checkpoint.py writes it beside the arrays).  A field's
``rule`` is the type state.json must hold for it (rundir/records.py checks it on read: a run
directory may come from anyone).  Fields a run from older code lacks take their defaults; keys this
code does not know are ignored.
"""
import dataclasses
import os

from .records import NUMBER, read_record


def _field(default, rule, why):
    factory = {"default_factory": default} if callable(default) else {"default": default}
    return dataclasses.field(metadata={"rule": rule, "why": why}, **factory)


@dataclasses.dataclass
class TrainingPoint:
    """A point of a training: the run resumes at ``iteration`` of ``epoch`` (0: the epoch's start)."""
    epoch: int = _field(0, int, "epochs finished (the one it resumes at, counted from 0)")
    iteration: int = _field(0, int, "steps of that epoch already done")
    seed: int = _field(None, (int, None), "the run's --seed")
    bad_steps: int = _field(0, int, "non-finite steps in a row (--max-bad-steps stops the run)")
    skipped: int = _field(0, int, "non-finite steps skipped in all")
    best_val: float = _field(None, (NUMBER, None), "lowest validation rel so far (inf: none yet)")
    history: list = _field(list, [dict], "metrics.jsonl: one object per finished epoch")
    partial: dict = _field(dict, dict, "the epoch so far at a mid-epoch point: loss sums, good steps, seconds")
    amp: dict = _field(None, (dict, None), "the loss scales of --amp (training/precision.py)")
    cache: dict = _field(None, (dict, None), "a sharded cache: its shard directory and worker count "
                                            "(training/checkpoint.py); None: the cache is in cache.nd")
    optimizers: dict = _field(dict, dict, "each optimiser's array layout (training/optim_states.py)")

    def to_json(self):
        """The state.json object (``cache`` only when sharded, as the files have always held it)."""
        record = dataclasses.asdict(self)
        if record["cache"] is None:
            del record["cache"]
        return record

    @classmethod
    def from_json(cls, record):
        """From a checked state.json object (``check_record`` against ``STATE_TYPES``)."""
        return cls(**{k: record[k] for k in STATE_TYPES if k in record})

    @classmethod
    def read(cls, checkpoint_path, error, required=None):
        """``checkpoint_path``/state.json, checked; ``error`` (one line) names the file and the key.
        ``required``: the keys it must hold (default ``STATE_REQUIRED``: enough to restore a training)."""
        path = os.path.join(checkpoint_path, "state.json")
        record = read_record(path, STATE_TYPES, STATE_REQUIRED if required is None else required, error)
        return cls.from_json(record)


STATE_TYPES = {f.name: f.metadata["rule"] for f in dataclasses.fields(TrainingPoint)}
STATE_REQUIRED = ("epoch", "iteration", "history")
