"""Ctrl-C (SIGINT) and SIGTERM during training: finish the current step, save ``last`` there, say how to resume.

A cluster scheduler sends SIGTERM before it kills; a person presses Ctrl-C.  Either way the step
in flight completes, ``checkpoints/last`` is written at that iteration (the mid-epoch checkpoint
``--save-every`` uses) and ``train.py`` exits with 128 + the signal's number (130, 143) after one
line naming the point and the ``--resume`` command.  A second signal exits at once; the last
complete checkpoint stays valid (every save is an atomic swap, ``training/checkpoint.py``).
With several workers (``--kvstore dist_sync``) every worker must receive the signal, as a
launcher's process group does.
"""
import os
import signal


class Interrupted(Exception):
    """Training stopped by a signal, after ``last`` was saved at (epoch, iteration)."""

    def __init__(self, signum, epoch, iteration):
        self.signum, self.epoch, self.iteration = signum, epoch, iteration
        super().__init__("%s at epoch %d, step %d" % (signal.Signals(signum).name, epoch, iteration))

    @property
    def exit_code(self):
        return 128 + self.signum


class StopSignals:
    """While entered, SIGINT and SIGTERM only set ``signum``; the trainer stops at its next step boundary."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum, self.previous = None, {}

    def __enter__(self):
        for sig in self.SIGNALS:
            self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def handle(self, signum, frame):
        if self.signum is not None:  # asked twice: do not wait for the step
            os._exit(128 + signum)
        self.signum = signum
