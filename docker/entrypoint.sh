#!/usr/bin/env bash
# Container entry point: the first word picks the tool, the rest are its flags.
#   train ARGS      python train.py ARGS
#   evaluate ARGS   python evaluate.py ARGS
#   predict ARGS    python predict.py ARGS           (depth + confidence maps of any images)
#   export ARGS     python export.py ARGS    (symbol JSON + params, optional ONNX)
#   prepare ARGS    python -m data.prepare ARGS      (NYU .mat files -> train.h5 / test.h5)
#   synthetic ARGS  python -m data.synthetic ARGS    (rendered rooms in the NYU layout)
#   report ARGS     python -m evaluation.report ARGS
#   reproduce       bash scripts/reproduce_paper.sh  (env: DATA, GPUS, RUNS, SEED)
#   help            this list
#   anything else   run as a command (e.g. bash)
set -euo pipefail
command="${1:-help}"
if [ "$#" -gt 0 ]; then shift; fi
case "$command" in
    help|-h|--help)
        sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
esac
# the repository (/workspace in the image) holds this script's folder: the tools run from there
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case "$command" in
    train)     exec python train.py "$@" ;;
    evaluate)  exec python evaluate.py "$@" ;;
    predict)   exec python predict.py "$@" ;;
    export)    exec python export.py "$@" ;;
    prepare)   exec python -m data.prepare "$@" ;;
    synthetic) exec python -m data.synthetic "$@" ;;
    report)    exec python -m evaluation.report "$@" ;;
    reproduce) exec bash scripts/reproduce_paper.sh "$@" ;;
    *)         exec "$command" "$@" ;;
esac
