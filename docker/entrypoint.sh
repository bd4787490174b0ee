#!/usr/bin/env bash
# Container entry point: the first word picks the tool, the rest are its flags.
#   train ARGS      python train.py ARGS
#   evaluate ARGS   python evaluate.py ARGS
#   prepare ARGS    python -m data.prepare ARGS      (NYU .mat files -> train.h5 / test.h5)
#   synthetic ARGS  python -m data.synthetic ARGS    (rendered rooms in the NYU layout)
#   report ARGS     python -m evaluation.report ARGS
#   reproduce       bash scripts/reproduce_paper.sh  (env: DATA, GPUS, RUNS, SEED)
#   anything else   run as a command (e.g. bash)
set -euo pipefail
cd /workspace
command="${1:-help}"
if [ "$#" -gt 0 ]; then shift; fi
case "$command" in
    train)     exec python train.py "$@" ;;
    evaluate)  exec python evaluate.py "$@" ;;
    prepare)   exec python -m data.prepare "$@" ;;
    synthetic) exec python -m data.synthetic "$@" ;;
    report)    exec python -m evaluation.report "$@" ;;
    reproduce) exec bash scripts/reproduce_paper.sh "$@" ;;
    help|-h|--help)
        sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
        ;;
    *)         exec "$command" "$@" ;;
esac
