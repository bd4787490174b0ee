"""The paper's two claims on data we can run: Table 1's ordering and Table 2's gain.

    bash experiments/claims/run.sh [PYTHON]                 # make claims: everything below
    python -m experiments.claims pseudo RUN                 # RUN/pseudo_sweep.json (per run, after training)
    python -m experiments.claims report OUT [--docs D]      # OUT/claims.{md,json}, OUT/claims_rel.png
        [--setup S] [--regime NAME=OUT2|claims.json ...]    # other regimes beside OUT's, under other_regimes
    python -m experiments.claims carry OUT DEST             # OUT's finished runs without checkpoints + fingerprints
    python -m experiments.claims restore DEST OUT           # ... back into a new OUT with the same backbone and data

``run.sh`` trains seeds x arms into ``OUT/seed<S>_<ARM>``: the paper's arms ``lambda0`` and
``lambda0.1`` and any extra, named arm (a variant that departs from the paper, reported beside
it, never in its place: ``headroom``, λ = 0 at 1/2 labeled; ``oracle``, ground truth as the
pseudo-labels), runs ``evaluate.py --table1`` and ``pseudo`` on each, then ``report``.  Every arm
is paired with ``lambda0`` on the seeds both have.

Modules
-------
sweep    ``pseudo``: the final networks' pseudo-labels at many thresholds, with the Table 1
         scoring of ``evaluation.pseudo_labels`` (so it also gives T = 0.9 when a run trained
         with another T), calibration per confidence bin, the eq. 1 target on the labeled
         rows, the pseudo-labels cached by the last epoch, AUSE/AURG of the confidence on
         Table 1's pixels and the test metrics under the ``full`` protocol
stats    the seed rule (constants fixed before the results, power of the paired t-test),
         95 % t-intervals, the verdicts shown / reversed / excluded / inconclusive, shares,
         the paper's deltas (NYU)
tables   ``report``'s numbers: the runs of ``OUT`` paired by seed, Table 1 and Table 2 under
         ``eigen`` and ``full``, shares of oracle and headroom, curves and the diagnosis, as
         one JSON-able dict (claims.json; an old claims.json is recomputed from its per_seed)
records  ``carry`` / ``restore``: a long run continued on another machine of the same CPU model and
         thread count (run.sh re-creates the data and the backbone there; restore checks them)
report   claims.md (the seed rule first, then per regime the tables with CIs and verdicts,
         one sentence per claim, the diagnosis), claims_rel.png

Nothing is selected on the test set: eval.json scores the LAST checkpoint, the per-epoch test
curves are for display.
"""
