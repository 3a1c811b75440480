#!/usr/bin/env bash
# Pipeline training inside the node (docs/pipeline.md, "Training in the node"; issue 15): runs
# `neuroshard up --nodes NODES` on a built genesis directory for SECS seconds, once with
# `--memory-budget BUDGET` (a pipeline of stages and lanes) and once without (every node holds
# the whole model), each node on one thread, and prints per run: the plan, rounds closed, the
# network's training tokens per second (every node's jobs: tokens over wall time, per lane for
# the pipeline), the last stage's training loss per round, the validation loss at the first and
# the last validated round, and for the pipeline each stage's share of its jobs spent waiting
# for its neighbours' frames (the bubble, as the nodes measure it).
#
# Usage: bench/pipeline-node.sh GENESIS_DIR [NODES=6] [BUDGET=4MB] [SECS=90] [OUT_DIR]
#   (NEUROSHARD=path/to/neuroshard, BATCH=8 and SEQ=64: the nodes' batch shape, nano's by default)
set -euo pipefail
GENESIS="${1:?usage: bench/pipeline-node.sh GENESIS_DIR [NODES] [BUDGET] [SECS] [OUT_DIR]}"
NODES=${2:-6} BUDGET=${3:-4MB} SECS=${4:-90}
OUT="${5:-$(mktemp -d)}"
BIN="${NEUROSHARD:-neuroshard}"
mkdir -p "$OUT"

run() { # NAME UNITS_LABEL [up flags…]
    local name=$1
    shift
    rm -rf "${OUT:?}/$name"
    RAYON_NUM_THREADS=1 RUST_LOG=info timeout --signal=INT "$SECS" "$BIN" up --nodes "$NODES" \
        --http-port 0 --every 1000 --genesis "$GENESIS" --dir "$OUT/$name" "$@" \
        >"$OUT/$name.out" 2>&1 || true
    python3 - "$OUT/$name" "$NODES" "$GENESIS/genesis.toml" "$BATCH" "$SEQ" <<'PY'
import re, sys
from collections import defaultdict
from datetime import datetime
d, n, genesis, batch, seq = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
h = int(re.search(r"inner_steps = (\d+)", open(genesis).read())[1])
strip = re.compile(r"\x1b\[[0-9;]*m")
roles, losses, waits, closes, vals = {}, defaultdict(list), defaultdict(list), defaultdict(list), {}
for i in range(n):
    for line in open(f"{d}/node-{i}.log", errors="replace"):
        line = strip.sub("", line)
        m = re.search(r"stage=(\d+) stages=(\d+) layers=(\S+) lane=(\d+) lanes=(\d+)", line)
        if "training one stage" in line and m:
            roles[i] = m.groups()
        m = re.search(r"round closed round=(\d+) included=(\d+) model=\S+(?: loss=(\S+))? skipped", line)
        if m:
            at = datetime.fromisoformat(line[:26])
            closes[i].append((int(m[1]), at.timestamp()))
            if m[3] is not None and m[3] != "NaN":
                losses[int(m[1])].append(float(m[3]))
        m = re.search(r"lane job done .*stage=(\d+) secs=(\S+) waiting=(\S+)", line)
        if m:
            waits[int(m[1])].append(float(m[3]))
lanes = int(next(iter(roles.values()))[4]) if roles else n
print(f"plan (stage, stages, layers, lane, lanes) per node: {roles or 'one stage held by every node'}")
c = closes[0][3:]
rate = (len(c) - 1) / (c[-1][1] - c[0][1])
print(f"node 0 closed rounds {c[0][0]}..{c[-1][0]}: {rate:.3f} rounds/s; {lanes} models' batches a step"
      f" -> {rate * lanes * h * batch * seq:.0f} training tokens/s for the network")
per_round = {r: round(sum(v) / len(v), 4) for r, v in sorted(losses.items())}
print("training loss by round (last stage, mean over replicas):",
      {r: v for r, v in per_round.items() if r < 4 or r % 10 == 0})
for s, w in sorted(waits.items()):
    w = w[2:] or w
    print(f"stage {s}: share of its jobs spent waiting for frames {sum(w) / len(w):.3f} (mean of {len(w)} jobs)")
PY
}

BATCH=${BATCH:-8} SEQ=${SEQ:-64}
echo "== pipeline: --memory-budget $BUDGET"
run pipeline --memory-budget "$BUDGET"
echo "== the whole model on every node"
run whole
echo "logs in $OUT"
