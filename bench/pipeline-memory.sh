#!/usr/bin/env bash
# Peak memory of each node of `neuroshard up` (issue 15, docs/pipeline.md "Memory"): runs
# `up --nodes NODES [--memory-budget BUDGET] --work-per-sec 1000000000` (one pinned speed, so the
# plan depends on the budgets alone) on a built genesis directory for SECS seconds and prints, per
# node, its peak resident set size (VmHWM, the figure `/usr/bin/time -v` reports as "Maximum
# resident set size") read once its log shows its placement (the start-up peak: what it built
# before and for its place) and again at the end (training included), its role, the parameters
# it holds and the rounds it closed. `up` makes nodes 0 to 3 the ledger committee: they also run
# the consensus engine, so compare nodes of the same kind.
#
# Usage: bench/pipeline-memory.sh GENESIS_DIR [NODES=7] [BUDGET=63900000|none] [SECS=120] [OUT_DIR]
#        (NEUROSHARD=path/to/neuroshard)
set -uo pipefail
GENESIS="${1:?usage: bench/pipeline-memory.sh GENESIS_DIR [NODES] [BUDGET|none] [SECS] [OUT_DIR]}"
NODES=${2:-7} BUDGET=${3:-63900000} SECS=${4:-120}
OUT="${5:-$(mktemp -d)}"
BIN="${NEUROSHARD:-neuroshard}"
rm -rf "${OUT:?}/up" && mkdir -p "$OUT"
ARGS=(up --nodes "$NODES" --http-port 0 --every 5 --work-per-sec 1000000000
    --genesis "$GENESIS" --dir "$OUT/up")
[[ "$BUDGET" != none ]] && ARGS+=(--memory-budget "$BUDGET")
RAYON_NUM_THREADS=1 RUST_LOG=info "$BIN" "${ARGS[@]}" >"$OUT/up.out" 2>&1 &
UP=$!
pid() { grep -a "^node $1: pid" "$OUT/up.out" 2>/dev/null | tail -1 | sed 's/.*pid \([0-9]*\),.*/\1/'; }
hwm() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null; }
log() { sed 's/\x1b\[[0-9;]*m//g' "$OUT/up/node-$1.log" 2>/dev/null; }
PLACED='training one stage\|training the whole model\|no pipeline lane\|starting to train'
declare -A AT
END=$((SECONDS + SECS))
while ((SECONDS < END)); do
    for i in $(seq 0 $((NODES - 1))); do
        [[ -n "${AT[$i]:-}" ]] && continue
        P=$(pid "$i")
        [[ -n "$P" ]] && log "$i" | grep -q "$PLACED" && AT[$i]=$(hwm "$P")
    done
    sleep 0.3
done
for i in $(seq 0 $((NODES - 1))); do
    ROLE=$(log "$i" | grep -o "stage=[0-9]* stages=[0-9]* layers=[^ ]*\|the whole model\|no pipeline lane" | tail -1)
    PARAMS=$(log "$i" | grep -o " params=[0-9]*" | tail -1)
    echo "node $i: placed peak ${AT[$i]:-?} kB, end peak $(hwm "$(pid "$i")") kB," \
        "$(log "$i" | grep -c "round closed") rounds,${PARAMS:- params=?}, ${ROLE:-?}"
done | tee "$OUT/peak.txt"
kill -INT "$UP" && wait "$UP"
