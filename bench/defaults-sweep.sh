#!/usr/bin/env bash
# The genesis-defaults sweep of docs/experiments/2026-11-30-defaults.md: `nano` on a Genesis
# directory, batch 8, the node's learning-rate schedule (warm-up 50, constant within the run),
# plain mean, the whole validation split, 1 000 inner steps per node. Prints one line per run with
# the network model's validation loss after every round. Each simulation is stopped once its last
# round is reported, before its synchronous data-parallel baseline (which these rows do not use).
#
# Usage: bench/defaults-sweep.sh GENESIS_DIR [OUT_DIR]   (NEUROSHARD=path/to/neuroshard to pick a binary)
set -euo pipefail
GENESIS="${1:?usage: bench/defaults-sweep.sh GENESIS_DIR [OUT_DIR]}"
OUT="${2:-$(mktemp -d)}"
BIN="${NEUROSHARD:-neuroshard}"
mkdir -p "$OUT"

# run NAME NODES H OUTER_LR OUTER_MOMENTUM INNER_LR [STEPS]
run() {
    local name=$1 n=$2 h=$3 olr=$4 mom=$5 lr=$6 steps=${7:-1000}
    local rounds=$((steps / h)) err="$OUT/$1.err"
    "$BIN" sim --genesis "$GENESIS" --preset nano --nodes "$n" --aggregator mean --rounds "$rounds" \
        --inner-steps "$h" --batch-size 8 --lr "$lr" --outer-lr "$olr" --outer-momentum "$mom" \
        --val-batches 119 --seed 1 --no-audit --warmup-steps 50 --schedule-rounds $((100000 / h)) \
        >/dev/null 2>"$err" &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        if grep -q "Run round $((rounds - 1)) " "$err"; then kill "$pid"; break; fi
        sleep 2
    done
    wait "$pid" 2>/dev/null || true
    echo "$name: $(grep -o 'Run round [0-9]* val loss [0-9.]*' "$err" | awk '{printf "%s ", $6}')"
}

run one-node-alone 1 100 1 0 3e-3
run h100-plain 3 100 1 0 3e-3
run h30-plain 3 30 1 0 3e-3
run h100-lr6e-3 3 100 1 0 6e-3
run h100-outer-lr-1.3 3 100 1.3 0 3e-3
run h100-nesterov 3 100 0.7 0.9 3e-3
run h500-nesterov 3 500 0.7 0.9 3e-3
run six-nodes-h100 6 100 1 0 3e-3 500
