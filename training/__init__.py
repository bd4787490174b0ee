"""Losses (eq. 1-6), the pseudo-label cache, checkpoints and the joint training loop of §4."""
