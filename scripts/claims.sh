#!/usr/bin/env bash
# The paper's two claims on the embedded synthetic set, on a 2-core CPU in about an hour:
#   Table 1  pseudo-labels with high confidence are more accurate than all of them;
#   Table 2  lambda = 0.1 (L_semi on) beats lambda = 0 at 1/4 labeled data.
# Trains seeds x {lambda 0, 0.1, control 1e-6} (a seed fixes split, initialisation and
# shuffling and is shared by its runs), evaluates the LAST checkpoint of each, and writes
# OUT/claims.md, claims.json, claims_rel.png (copied to docs/claims/).
#
# Usage: scripts/claims.sh [PYTHON]          (make claims)
# Settings (environment, defaults in brackets; the tests use tiny ones):
#   CLAIMS_OUT [runs/claims]  CLAIMS_DOCS [docs/claims; empty = no copy]
#   CLAIMS_N [160] scenes     CLAIMS_SIZE [128x96] inputs   CLAIMS_COPIES [2] rows per source
#   CLAIMS_EPOCHS [12]        CLAIMS_SEMI_START [round(0.4 x epochs)]   CLAIMS_SEEDS [3]
#   CLAIMS_T [0.4]            CLAIMS_LR [3e-3]   CLAIMS_LAMBDA [0.1]   CLAIMS_RAW_SIZE [640x480]
#   CLAIMS_CONTROL [1e-6; empty = no control arm]
# Re-running continues: finished runs are kept, an interrupted one is resumed.
#
# Why these defaults (chosen before any test number was looked at):
#  - 160 scenes -> 120 training sources x 2 rows, 40 test images; 1/4 labeled = 30 sources.
#    More unlabeled images cost time: with L_semi on, every step also trains on 3x as
#    many unlabeled images, so a semi epoch costs 2-3 supervised ones.
#  - 128x96 (multiples of 16) and 12 epochs with L_semi from epoch 5: the paper's
#    100 epochs / semi from 40 scaled by 0.12 (supervised warm-up, one fill epoch,
#    7 semi epochs).  Sizing run (seed 0, lambda 0.1, T 0.9): 16 s per supervised and
#    29-43 s per semi epoch + ~6 s of test scoring per epoch, 441 s for the run, so
#    3 seeds x 2 lambdas + evaluation take about 40-50 minutes.
#  - lr 3e-3 (the demo preset used 1e-2 before this run): at 1e-2 one of three seeds' depth output died in the
#    first epoch (softplus saturated at ~0 m, val rel 0.9997 from then on).
#  - T = 0.4, not the paper's 0.9: in the sizing run at T = 0.9 no unlabeled pixel ever
#    reached C >= 0.9 (mask coverage 0 % in all 7 semi epochs), so L_semi would be
#    identically 0.  0.4 is the demo preset's documented choice (train.py PRESETS).  Its
#    final confidences on the unlabeled rows all lay in [0.29, 0.5): T = 0.4 kept 89 %
#    of them (rel 0.333 vs 0.334 for all), i.e. the mask barely selects.  Table 1
#    reports T = 0.9 too.
#  - the control arm lambda = 1e-6: from scratch, BatchNorm runs on batch statistics, so
#    a lambda > 0 run, whose steps carry 4 labeled + 12 unlabeled images, trains
#    differently from lambda = 0 even where L_semi is 0 (its L_sup already differs in the
#    fill epoch).  1e-6 keeps those batches but scales L_semi's gradient to nothing, so
#    lambda 0.1 vs 1e-6 isolates L_semi.  It skips --track-test (no curve) to save time.
# Time: about 55 minutes on 2 shared cores (9 runs: ~5 min each without, ~6.5 min with
# the unlabeled images).
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0;; esac
PY=${1:-python}
OUT=${CLAIMS_OUT:-runs/claims}
DOCS=${CLAIMS_DOCS-docs/claims}
N=${CLAIMS_N:-160}
SIZE=${CLAIMS_SIZE:-128x96}
RAW_SIZE=${CLAIMS_RAW_SIZE:-640x480}
COPIES=${CLAIMS_COPIES:-2}
EPOCHS=${CLAIMS_EPOCHS:-12}
SEMI_START=${CLAIMS_SEMI_START:-$(( (EPOCHS * 4 + 5) / 10 ))}
SEEDS=${CLAIMS_SEEDS:-3}
T=${CLAIMS_T:-0.4}
LR=${CLAIMS_LR:-3e-3}
LAMBDA=${CLAIMS_LAMBDA:-0.1}
CONTROL=${CLAIMS_CONTROL-1e-6}
DATA="$OUT/data/prepared"
start=$(date +%s)
mkdir -p "$OUT/data"
[ -f "$OUT/started_at" ] || echo "$start" > "$OUT/started_at"  # wall time counts from the first invocation

# Runs of other settings must not be mixed into one report.
settings="n=$N size=$SIZE raw=$RAW_SIZE copies=$COPIES epochs=$EPOCHS semi_start=$SEMI_START t=$T lr=$LR lambda=$LAMBDA"
if [ -f "$OUT/settings.txt" ] && [ "$(cat "$OUT/settings.txt")" != "$settings" ]; then
  echo "error: $OUT holds runs of other settings ($(cat "$OUT/settings.txt")); remove it or set CLAIMS_OUT" >&2
  exit 2
fi
echo "$settings" > "$OUT/settings.txt"
echo "== claims: $settings, seeds 0..$((SEEDS - 1)) -> $OUT"

if [ ! -f "$DATA/train.h5" ]; then
  echo "== data: $N synthetic scenes at $RAW_SIZE -> $SIZE inputs, $COPIES rows per training source"
  "$PY" -m data.synthetic --out "$OUT/data/raw" --n "$N" --seed 0 --size "$RAW_SIZE" > "$OUT/data/synthetic.json"
  "$PY" -m data.prepare --mat "$OUT/data/raw/nyu_depth_v2_labeled.mat" --splits "$OUT/data/raw/splits.mat" \
    --out "$DATA" --size "$SIZE" --copies "$COPIES" --seed 0 > "$OUT/data/prepare.json"
fi

finished() {  # the run's last checkpoint is at the final epoch
  [ -f "$1/checkpoints/last/state.json" ] && "$PY" -c "import json,sys; s=json.load(open(sys.argv[1]));
sys.exit(0 if s['epoch'] >= $EPOCHS and s['iteration'] == 0 else 1)" "$1/checkpoints/last/state.json"
}

arms="0 $LAMBDA $CONTROL"
k=0
total=$(( SEEDS * $(echo $arms | wc -w) ))
for seed in $(seq 0 $((SEEDS - 1))); do
  for lam in $arms; do
    k=$((k + 1))
    track=--track-test
    [ "$lam" = "$CONTROL" ] && track=""
    run="$OUT/seed${seed}_lambda${lam}"
    echo "== run $k/$total  seed $seed  lambda $lam  elapsed $(( $(date +%s) - start )) s"
    if ! finished "$run"; then
      if [ -f "$run/checkpoints/last/state.json" ]; then
        "$PY" train.py --resume "$run" $track --no-progress 2>&1 | tee -a "$run/train.log"
      else
        mkdir -p "$run"
        "$PY" train.py --preset demo --data "$DATA" --out "$run" --seed "$seed" --lambda-semi "$lam" \
          --labeled-frac 0.25 --val-frac 0 --epochs "$EPOCHS" --semi-start "$SEMI_START" --t-semi "$T" \
          --lr "$LR" --pretrained 0 $track --no-progress 2>&1 | tee "$run/train.log"
      fi
    fi
    if [ ! -f "$run/pseudo_sweep.json" ] || [ "$run/pseudo_sweep.json" -ot "$run/checkpoints/last/state.json" ]; then
      "$PY" evaluate.py --run "$run" --table1 --no-progress > "$run/evaluate.log"
      "$PY" -m evaluation.claims pseudo "$run" > "$run/pseudo.log"
    fi
    echo "   done: test $(grep -o '"rel": [0-9.]*' "$run/eval.json" | head -1)  elapsed $(( $(date +%s) - start )) s"
  done
done

# Facts the runs do not record: the data, the machine and the wall time.
CLAIMS_WALL=$(( $(date +%s) - $(cat "$OUT/started_at") )) CLAIMS_SETTINGS="$settings" "$PY" - "$OUT" <<'EOF'
import json, os, sys
out = sys.argv[1]
syn = json.load(open(os.path.join(out, "data", "synthetic.json")))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
setup = {"n_scenes": syn["n"], "n_train": syn["train"], "n_test": syn["test"],
         "copies": int(os.environ["CLAIMS_SETTINGS"].split("copies=")[1].split()[0]),
         "wall_seconds": int(os.environ["CLAIMS_WALL"]), "cpu": cpu, "cores": os.cpu_count(),
         "protocol": "eigen", "settings": os.environ["CLAIMS_SETTINGS"],
         "why": "lr 3e-3 because at the demo's 1e-2 one of three seeds' depth output died in epoch 1; "
                "T 0.4 because in a sizing run (seed 0, lambda 0.1, T 0.9, training metrics only) mask "
                "coverage stayed 0 % in every semi epoch, so L_semi would be identically 0 (0.4 is the demo "
                "preset's documented T; that run's final confidences on the unlabeled rows lay in [0.29, 0.5), "
                "T 0.4 kept 89 % of pixels with rel 0.333 vs 0.334 for all); schedule: the paper's 100 epochs "
                "/ L_semi from 40 scaled to 12 / 5 to fit ~1 h on 2 cores; control arm lambda 1e-6: same batches "
                "(BatchNorm batch statistics mix labeled and unlabeled images) without L_semi's gradient. "
                "Details: scripts/claims.sh."}
json.dump(setup, open(os.path.join(out, "setup.json"), "w"), indent=1)
EOF
"$PY" -m evaluation.claims report "$OUT" --setup "$OUT/setup.json" ${DOCS:+--docs "$DOCS"}
echo "claims finished in $(( $(date +%s) - start )) s ($(( $(date +%s) - $(cat "$OUT/started_at") )) s since the first invocation): $OUT/claims.md"
