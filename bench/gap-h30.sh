#!/usr/bin/env bash
# The gap to synchronous data-parallel training at H = 30 of docs/experiments/2026-11-30-codec.md
# (issue 17), beside arXiv 2503.09799 Table 4: NODES nodes of PRESET on a Genesis directory,
# BATCH (default 8) sequences per node per step, STEPS inner steps per node, the whole
# validation split, plain averaging unless OUTER_LR / OUTER_MOMENTUM say otherwise, every Δ
# sent uncompressed (`--codec none`, as in the paper) unless CODEC says otherwise. The sync-DP
# baseline trains one model on the same NODES batches per step (global batch BATCH · NODES) for
# the same steps: the same tokens. With
# DILOCO_ONLY=1 the run is stopped once its last round is reported, before the baseline (which
# does not depend on the DiLoCo settings), and only the DiLoCo loss is printed.
#
# Usage: bench/gap-h30.sh GENESIS_DIR PRESET NODES STEPS [OUT_DIR]
#   (NEUROSHARD=path/to/neuroshard, BATCH=8, CODEC=none, OUTER_LR=1, OUTER_MOMENTUM=0, DILOCO_ONLY=)
set -euo pipefail
GENESIS="${1:?usage: bench/gap-h30.sh GENESIS_DIR PRESET NODES STEPS [OUT_DIR]}"
PRESET=${2:?} NODES=${3:?} STEPS=${4:?}
OUT="${5:-$(mktemp -d)}"
BIN="${NEUROSHARD:-neuroshard}"
BATCH=${BATCH:-8} CODEC=${CODEC:-none} OLR=${OUTER_LR:-1} MU=${OUTER_MOMENTUM:-0}
H=30 ROUNDS=$((STEPS / 30))
name="$PRESET-n$NODES-s$STEPS-b$BATCH-$CODEC-olr$OLR-mu$MU"
mkdir -p "$OUT"
"$BIN" sim --genesis "$GENESIS" --preset "$PRESET" --nodes "$NODES" --aggregator mean \
    --rounds "$ROUNDS" --inner-steps "$H" --batch-size "$BATCH" --lr 3e-3 --outer-lr "$OLR" \
    --outer-momentum "$MU" --val-batches 119 --seed 1 --no-audit --warmup-steps 50 \
    --schedule-rounds $((100000 / H)) --codec "$CODEC" --json >"$OUT/$name.json" 2>"$OUT/$name.err" &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
    if [ -n "${DILOCO_ONLY:-}" ] && grep -q "Run round $((ROUNDS - 1)) " "$OUT/$name.err"; then
        kill "$pid"
        break
    fi
    sleep 2
done
wait "$pid" 2>/dev/null || true
if [ -n "${DILOCO_ONLY:-}" ]; then
    echo "$name: DiLoCo $(grep -o "Run round $((ROUNDS - 1)) val loss [0-9.]*" "$OUT/$name.err" | awk '{print $6}')"
    exit 0
fi
tail -n 1 "$OUT/$name.json" | python3 -c '
import json, sys
r = json.load(sys.stdin)
d, s = r["final_val_loss"], r["baselines"]["sync_dp"]["final_val_loss"]
print("%s: DiLoCo %.4f  sync DP %.4f  gap %+.1f %%  (%d tokens)" % (sys.argv[1], d, s, 100 * (d / s - 1), r["tokens"]))
' "$name"
