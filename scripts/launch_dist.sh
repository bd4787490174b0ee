#!/usr/bin/env bash
# Run a multi-worker training job on this machine through MXNet's parameter server.
#
#   scripts/launch_dist.sh N_WORKERS N_SERVERS -- train.py --kvstore dist_sync [train.py flags]
#
# Starts 1 scheduler, N_SERVERS servers and N_WORKERS workers (each `python train.py ...`)
# with the DMLC_* environment ps-lite reads, all on 127.0.0.1 and a free port (or
# $DMLC_PS_ROOT_PORT).  The workers share --out: rank 0 writes config.json, metrics and
# checkpoints, every rank writes its part of the pseudo-label cache next to them.
# Returns the first failing worker's exit status (0 if all succeed); if one worker fails,
# the others and the servers are stopped.  $PYTHON picks the interpreter (default python).
# Resume the same way, with the same N_WORKERS: ... -- train.py --resume RUN
#
# Several machines: the run directory must be on a shared filesystem.  Pick one host
# (HOST0) for the scheduler; every process gets the same
#   DMLC_PS_ROOT_URI=HOST0 DMLC_PS_ROOT_PORT=9091 DMLC_NUM_WORKER=<all workers> DMLC_NUM_SERVER=<all servers>
# plus DMLC_NODE_HOST=<the address of its own host> and its role:
#   HOST0:       DMLC_ROLE=scheduler python -c 'import mxnet'
#   every host:  DMLC_ROLE=server    python -c 'import mxnet'      (its share of the servers)
#   every host:  DMLC_ROLE=worker    python train.py --kvstore dist_sync --out /shared/runs/NAME ...
# (importing mxnet with DMLC_ROLE=scheduler or server runs that role until the job ends).
# Under a cluster scheduler (Slurm, SGE, MPI) put these same lines in the job script.
# mxnet's own dmlc_tracker.submit is not a shortcut here: it imports the kubernetes and
# yaml packages for every cluster type and stops at once without them.
set -u

usage() {
    echo "usage: $0 N_WORKERS N_SERVERS -- train.py [flags]" >&2
    exit 2
}
[ $# -ge 4 ] && [ "$3" = "--" ] || usage
case "$1$2" in *[!0-9]*) usage ;; esac
[ "$1" -ge 1 ] && [ "$2" -ge 1 ] || usage
n_workers=$1 n_servers=$2
shift 3
PYTHON=${PYTHON:-python}
cd "$(dirname "$0")/.." || exit 2

port=${DMLC_PS_ROOT_PORT:-$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
export DMLC_PS_ROOT_URI=127.0.0.1 DMLC_PS_ROOT_PORT=$port DMLC_NODE_HOST=127.0.0.1
export DMLC_NUM_WORKER=$n_workers DMLC_NUM_SERVER=$n_servers

others=()   # scheduler and servers
workers=()
stop_all() {
    trap - EXIT INT TERM
    local pids=("${workers[@]}" "${others[@]}")
    [ ${#pids[@]} -eq 0 ] && return
    kill "${pids[@]}" 2>/dev/null
    for _ in $(seq 50); do   # 5 s to exit, then SIGKILL
        kill -0 "${pids[@]}" 2>/dev/null || return
        sleep 0.1
    done
    kill -9 "${pids[@]}" 2>/dev/null
}
trap stop_all EXIT
trap 'stop_all; exit 130' INT TERM

DMLC_ROLE=scheduler "$PYTHON" -c "import mxnet" &
others+=($!)
for _ in $(seq "$n_servers"); do
    DMLC_ROLE=server "$PYTHON" -c "import mxnet" &
    others+=($!)
done
for _ in $(seq "$n_workers"); do
    DMLC_ROLE=worker "$PYTHON" "$@" &
    workers+=($!)
done

status=0
pending=("${workers[@]}")
orphaned=0   # half-seconds the workers have run without the scheduler or a server
while [ ${#pending[@]} -gt 0 ]; do
    sleep 0.5
    still=()
    for pid in "${pending[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            still+=("$pid")
            continue
        fi
        wait "$pid"
        rc=$?
        if [ $rc -ne 0 ]; then
            echo "launch_dist: a worker failed (exit $rc); stopping the job" >&2
            exit $rc
        fi
    done
    pending=("${still[@]}")
    for pid in "${others[@]}"; do
        kill -0 "$pid" 2>/dev/null || { orphaned=$((orphaned + 1)); break; }
    done
    # servers leave when the workers finalise; a worker still running 15 s later is stuck
    if [ $orphaned -gt 30 ]; then
        echo "launch_dist: the scheduler or a server stopped; stopping the job" >&2
        exit 1
    fi
done
# the scheduler and servers leave once every worker has finished
for _ in $(seq 300); do
    kill -0 "${others[@]}" 2>/dev/null || break
    sleep 0.1
done
exit 0
