#!/usr/bin/env bash
# The codec comparisons of docs/experiments/2026-11-30-codec.md, 2026-11-30-int2.md,
# 2026-11-30-hint2.md, 2026-11-30-hbits.md, 2026-11-30-hent.md, 2026-11-30-hent-centroid.md,
# 2026-12-01-hent-ecsq.md, 2026-12-02-hent-unbiased.md and 2026-12-02-htcq.md: `nano` on a
# Genesis directory, 3 nodes,
# H inner steps per round (default 100), STEPS inner steps per node (default 1 000), the genesis
# defaults otherwise (plain averaging, inner lr 3e-3, warm-up 50, constant within the run), the
# whole validation split.
# Prints one line per codec: the network model's validation loss after every round, and bytes sent
# per node per token. One run (topk-int2 at 2 %) keeps the synchronous data-parallel baseline and
# prints its loss and bytes per token; the others are stopped once their last round is reported.
#
# Usage: bench/codec-sweep.sh GENESIS_DIR [OUT_DIR]
#   (NEUROSHARD=path/to/neuroshard to pick a binary, RUNS="int4 topk-int2-2pct" to pick rows,
#   H=500 STEPS=2000 for longer rounds, SEED=2 for another seed; default 1)
set -euo pipefail
GENESIS="${1:?usage: bench/codec-sweep.sh GENESIS_DIR [OUT_DIR]}"
OUT="${2:-$(mktemp -d)}"
BIN="${NEUROSHARD:-neuroshard}"
NODES=3 H=${H:-100} STEPS=${STEPS:-1000} BATCH=8 SEQ=64
mkdir -p "$OUT"

# run NAME CODEC [full]: `full` keeps the sync-DP baseline (and the JSON report in NAME.json).
run() {
    local name=$1-h$H codec=$2 full=${3:-} rounds=$((STEPS / H))
    local err="$OUT/$name.err"
    "$BIN" sim --genesis "$GENESIS" --preset nano --nodes "$NODES" --aggregator mean \
        --rounds "$rounds" --inner-steps "$H" --batch-size "$BATCH" --lr 3e-3 --outer-lr 1 \
        --outer-momentum 0 --val-batches 119 --seed "${SEED:-1}" --no-audit --warmup-steps 50 \
        --schedule-rounds $((100000 / H)) --codec "$codec" --json >"$OUT/$name.json" 2>"$err" &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        if [ -z "$full" ] && grep -q "Run round $((rounds - 1)) " "$err"; then kill "$pid"; break; fi
        sleep 2
    done
    wait "$pid" 2>/dev/null || true
    local losses sent
    losses=$(grep -o 'Run round [0-9]* val loss [0-9.]*' "$err" | awk '{printf "%s ", $6}')
    sent=$(grep '^Run round .* bytes sent per node' "$err" |
        awk -v t=$((H * BATCH * SEQ)) '{s += $(NF-4); n++} END {printf "%.4f", s / (n * t)}')
    echo "$name ($codec): $losses| $sent bytes per node per token"
    if [ -n "$full" ]; then
        tail -n 1 "$OUT/$name.json" | python3 -c 'import json,sys; s=json.load(sys.stdin)["baselines"]["sync_dp"]; print("sync DP: %.4f, %.1f bytes per node per token" % (s["final_val_loss"], s["bytes_per_token"]))'
    fi
}

# RUNS picks some of the rows by name (default: all of them, in this order).
for row in ${RUNS:-int4 topk-int2-2pct topk-int2-2pct-decay sign}; do
    case $row in
        int4) run int4 int4 ;;
        # This run also measures sync DP.
        topk-int2-2pct) run "$row" "topk-int2:k=0.02" full ;;
        topk-int2-2pct-decay) run "$row" "topk-int2:k=0.02,decay=0.9" ;;
        sign) run sign sign ;;
        int2) run int2 int2 ;;
        int2-decay) run "$row" "int2:decay=0.9" ;;
        int2-noef) run "$row" "int2:decay=0" ;;
        int2-chunk1024) run "$row" "int2:chunk=1024" ;;
        int2-chunk256-decay) run "$row" "int2:chunk=256,decay=0.9" ;;
        ternary) run ternary ternary ;;
        hint2) run hint2 hint2 ;;
        hint2-decay) run "$row" "hint2:decay=0.9" ;;
        hint2-chunk256-decay) run "$row" "hint2:chunk=256,decay=0.9" ;;
        # 2.1 bits per value plus a width byte and a scale per chunk: 5 045× and 5 022× fewer
        # bytes than sync DP for nano at H = 500.
        hbits) run hbits "hbits:bits=2.1" ;;
        hbits-chunk2048) run "$row" "hbits:chunk=2048,bits=2.1" ;;
        hbits-decay) run "$row" "hbits:bits=2.1,decay=0.9" ;;
        # Entropy-coded finer levels on rotated chunks at 2.1 bits per value of code, plus a
        # frequency table and a step and stream length per chunk: 2.117 bits per value.
        hent-decay) run "$row" "hent:bits=2.1,decay=0.9" ;;
        hent) run hent "hent:bits=2.1" ;;
        # The same with error-feedback decay 0.8, 0.7 and 0.6 (docs/experiments/2026-12-01-hent-ecsq.md).
        hent-decay08) run "$row" "hent:bits=2.1,decay=0.8" ;;
        hent-decay07) run "$row" "hent:bits=2.1,decay=0.7" ;;
        hent-decay06) run "$row" "hent:bits=2.1,decay=0.6" ;;
        # Decay 0.7 with the levels at the unbiased scale Σ x² / Σ x q instead of the
        # least-squares one (docs/experiments/2026-12-02-hent-unbiased.md): the same codec string
        # as hent-decay07; the note's rows were measured with the encoder of commit a5cca35, since
        # reverted, so with this tree's binary this row repeats hent-decay07.
        hent-unb07) run "$row" "hent:bits=2.1,decay=0.7" ;;
        # The same budget on the trellis (docs/experiments/2026-12-02-htcq.md).
        htcq-decay07) run "$row" "htcq:bits=2.1,decay=0.7" ;;
        htcq-decay08) run "$row" "htcq:bits=2.1,decay=0.8" ;;
        *) echo "unknown row $row" >&2; exit 2 ;;
    esac
done
