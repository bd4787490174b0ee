"""What every other part may import; it imports none of them (only ``config`` below it).

Modules
-------
threads   ``OMP_NUM_THREADS`` = physical cores, set before MXNet loads; the CPU model
files     JSON read, atomic writes that never follow a link, the cause of a failed write
cli       the one-line-error argument parser shared by every command
devices   ``--gpus`` -> MXNet contexts, checked before any work
numbers   round half up, valid (measured) depth
memory    sizes the machine's memory allows, by estimates per pixel
crash     the one test hook: end the process at a named point, as kill -9 would

The layers above: data -> symbols -> rundir -> evaluation -> training -> the CLIs (train.py,
evaluate.py, predict.py, export.py, ``python -m data.prepare``).
"""
