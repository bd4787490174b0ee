"""The paper's two claims on data we can run: Table 1's ordering and Table 2's gain.

    bash experiments/claims/run.sh [PYTHON]                 # make claims: everything below
    python -m experiments.claims pseudo RUN                 # RUN/pseudo_sweep.json (per run, after training)
    python -m experiments.claims report OUT [--docs D]      # OUT/claims.{md,json}, OUT/claims_rel.png

``run.sh`` trains seeds x arms into ``OUT/seed<S>_<ARM>``: the paper's arms ``lambda0`` and
``lambda0.1`` and any extra, named arm (a variant that departs from the paper, reported beside
it, never in its place), runs ``evaluate.py --table1`` and ``pseudo`` on each, then ``report``.

Modules
-------
sweep    ``pseudo``: the final networks' pseudo-labels at many thresholds, with the Table 1
         scoring of ``evaluation.pseudo_labels`` (so it also gives T = 0.9 when a run trained
         with another T), calibration per confidence bin, the eq. 1 target on the labeled
         rows and the pseudo-labels cached by the last epoch
tables   ``report``'s numbers: the runs of ``OUT`` paired by seed, Table 1 and Table 2, curves
         and the diagnosis, as one JSON-able dict (claims.json)
report   claims.md (tables, diagnosis, a verdict computed from the numbers), claims_rel.png

Nothing is selected on the test set: eval.json scores the LAST checkpoint, the per-epoch test
curves are for display.
"""
