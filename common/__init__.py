"""The bottom layer: what every other part may import, and which imports none of them.

Modules
-------
threads   ``OMP_NUM_THREADS`` = physical cores, set before MXNet loads
files     JSON read / atomic write of run files
cli       the one-line-error argument parser shared by every command
devices   ``--gpus`` -> MXNet contexts, checked before any work

The layers above: data -> symbols -> training / evaluation -> the CLIs (train.py,
evaluate.py, predict.py, ``python -m data.prepare``, ``python -m symbols.export``).
"""
