#!/usr/bin/env bash
# evaluate.py beside a training on the same cores (README "CPU and GPU", two MXNet processes).
#
#   bash bench/beside_training.sh [PYTHON]        # ~10 min on 2 CPU cores; run it on an idle machine
#
# Builds a small run in a temporary directory (40 synthetic scenes at 160x128, 1 epoch), then
# times, each alone and then both at once: the training step of bench/plain_step.py (160x128,
# 4 + 4 images; seconds per step, median) and `evaluate.py --run R` (wall seconds), first with the
# project's thread rule in both processes, then with OMP_NUM_THREADS=1 in each.  Figures only.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0;; esac
PY=${1:-python}
cd "$(dirname "$0")/.."
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$PY" -m data.synthetic --out "$T/raw" --n 40 --seed 0 --test-frac 0.25 --size 320x240 > /dev/null
"$PY" -m data.prepare --mat "$T/raw/nyu_depth_v2_labeled.mat" --splits "$T/raw/splits.mat" --out "$T/data" \
  --size 160x128 --copies 1 --seed 0 > /dev/null
"$PY" train.py --data "$T/data" --out "$T/run" --pretrained 0 --epochs 1 --lambda-semi 0 --no-progress > /dev/null

train_steps() { "$PY" bench/plain_step.py --height 128 --width 160 --batch 4 --unlabeled 4 --steps "$1" | awk '{print $2}'; }
evaluate() {  # one evaluate.py pass; prints its wall seconds
  "$PY" -c 'import subprocess, sys, time; t = time.time(); subprocess.run(sys.argv[1:], check=True,
stdout=subprocess.DEVNULL); print("%.1f" % (time.time() - t))' "$PY" evaluate.py --run "$T/run" --no-progress --out "$T/eval_$1.json"
}

echo "alone, default threads: train step $(train_steps 4) s; evaluate.py $(evaluate a) s"
for threads in default 1; do
  if [ "$threads" = 1 ]; then export OMP_NUM_THREADS=1; echo "alone, 1 thread: train step $(train_steps 4) s; evaluate.py $(evaluate c) s"; fi
  rm -f "$T/stop" "$T/evals"
  ( while [ ! -f "$T/stop" ]; do evaluate "b$threads" >> "$T/evals"; done ) &
  loop=$!
  sleep 15  # evaluate.py is past its start-up
  steps=$(train_steps 6)
  touch "$T/stop"
  wait "$loop"
  echo "together, $threads thread(s) each: train step $steps s (median of 6); evaluate.py $(paste -sd' ' "$T/evals") s per pass"
done
