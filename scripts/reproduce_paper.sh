#!/usr/bin/env bash
# Tables 1 and 2 of the paper: train the four Table 2 configurations
# (labeled 1/2 and 1/4 of the training images x lambda 0 and 0.1, one seed),
# evaluate each on the test set and its pseudo-labels, then write the report.
#
#   DATA=datasets/nyu GPUS=0 bash scripts/reproduce_paper.sh
#
# Environment:
#   DATA    prepared directory with train.h5 / test.h5 (python -m data.prepare). default: datasets/nyu
#   GPUS    comma-separated GPU ids for train.py / evaluate.py; empty = CPU (very slow). default: 0
#   RUNS    where the run directories go. default: runs
#   SEED    split / initialisation seed shared by the four runs. default: 0
#   PYTHON  interpreter. default: .venv/bin/python if present, else python
# A run that already finished is evaluated again, not retrained; one that
# stopped half-way is resumed (train.py --resume).
set -euo pipefail
cd "$(dirname "$0")/.."

DATA="${DATA:-datasets/nyu}"
GPUS="${GPUS-0}"
RUNS="${RUNS:-runs}"
SEED="${SEED:-0}"
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
# The paper trains for 100 epochs (§5.1); train.py writes the last epoch's checkpoint
# as checkpoints/last and a state.json whose epoch tells whether the run is complete.
EPOCHS=100

if [ ! -f "$DATA/train.h5" ] || [ ! -f "$DATA/test.h5" ]; then
    echo "error: $DATA has no train.h5/test.h5; run python -m data.prepare --out $DATA first" >&2
    exit 2
fi

finished() {  # true when the run's last checkpoint is past its final epoch
    "$PYTHON" - "$1" "$EPOCHS" <<'PY'
import json, os, sys
path = os.path.join(sys.argv[1], "checkpoints", "last", "state.json")
try:
    state = json.load(open(path))
except (OSError, ValueError):
    sys.exit(1)
sys.exit(0 if state.get("epoch", 0) >= int(sys.argv[2]) else 1)
PY
}

run_dirs=()
for frac in 0.5 0.25; do
    for lambda in 0 0.1; do
        run="$RUNS/table2_frac${frac}_lambda${lambda}_seed${SEED}"
        run_dirs+=("$run")
        if finished "$run"; then
            echo "== $run: already trained"
        elif [ -d "$run/checkpoints" ]; then
            echo "== $run: resuming"
            "$PYTHON" train.py --resume "$run" --gpus "$GPUS"
        else
            echo "== $run: training (labeled $frac, lambda $lambda)"
            "$PYTHON" train.py --labeled-frac "$frac" --lambda-semi "$lambda" --seed "$SEED" \
                --epochs "$EPOCHS" --data "$DATA" --out "$run" --gpus "$GPUS"
        fi
        "$PYTHON" evaluate.py --run "$run" --data "$DATA" --gpus "$GPUS" --table1 --confidence --figures 6
    done
done

"$PYTHON" -m evaluation.report "${run_dirs[@]}" --out "$RUNS/report.md"
echo "report: $RUNS/report.md"
