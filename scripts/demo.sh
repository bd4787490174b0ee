#!/usr/bin/env bash
# The embedded default, end to end on the CPU: synthetic NYU-layout files -> prepare ->
# train (--preset demo) -> evaluate (+ Table 1, confidence quality, figures) -> report.
# Usage: scripts/demo.sh [PYTHON] [DATA_DIR] [RUN_DIR]
set -euo pipefail
PY=${1:-python}
DATA=${2:-datasets/synthetic}
RUN=${3:-runs/demo}
start=$(date +%s)

if [ ! -f "$DATA/prepared/train.h5" ]; then
  echo "== 1/4 synthetic scenes in the official NYU layout -> $DATA/raw"
  "$PY" -m data.synthetic --out "$DATA/raw" --n 96 --seed 0
  echo "== 2/4 prepare: 160x128 inputs, 3 rows per training image -> $DATA/prepared"
  "$PY" -m data.prepare --mat "$DATA/raw/nyu_depth_v2_labeled.mat" --splits "$DATA/raw/splits.mat" \
    --out "$DATA/prepared" --size 160x128 --copies 3 --seed 0
fi

echo "== 3/4 train --preset demo -> $RUN"
if [ -f "$RUN/checkpoints/last/state.json" ]; then
  "$PY" train.py --resume "$RUN"
else
  "$PY" train.py --preset demo --data "$DATA/prepared" --out "$RUN"
fi

echo "== 4/4 evaluate on the test images, Table 1, confidence quality, figures, report"
"$PY" evaluate.py --run "$RUN" --table1 --confidence --figures 6
"$PY" -m evaluation.report "$RUN" --out "$RUN/report.md"

echo
echo "demo finished in $(( $(date +%s) - start )) s. Look at:"
for f in metrics.jsonl curves.png eval.json table1.json qualitative.png sparsification.png reliability.png report.md; do
  [ -e "$RUN/$f" ] && echo "  $RUN/$f"
done
