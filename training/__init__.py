"""Losses (eq. 1-6), the pseudo-label cache, checkpoints and the joint training loop of §4.

Modules
-------
losses        eqs. 1-6: L_sup, the confidence target and L_conf, L_semi
cache         the pseudo-label cache in memory; disk_cache: the same in files
trainer       the joint training of §4, epoch by epoch
run_data      the split of train.h5 (§5.3) and the datasets of its sides
optimisers    SGD + poly decay for the depth net, Adam for the confidence net (§5.1)
checkpoint    crash-safe save / restore of a training point, cache shards (the run directory: rundir/)
optim_states  optimiser states as arrays + JSON (no pickles)
bn_snapshot   BatchNorm running statistics restored when a step is skipped
distributed   --kvstore dist_sync: the share of each worker
precision     --amp (bf16 / fp16) and its loss scaling
interrupt     Ctrl-C / SIGTERM: stop at a step, save, say how to resume
pretext       ``python -m training.pretext``: rotation pretraining, a backbone that knows no depth
save_backbone ``python -m training.save_backbone``: a trained run's backbone as resnet50_v1b weights
"""
from common.threads import set_omp_threads

set_omp_threads()  # before mxnet loads (common/threads.py)
