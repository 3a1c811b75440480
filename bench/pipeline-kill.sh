#!/usr/bin/env bash
# A pipeline replica killed and restarted (docs/pipeline.md, "Not yet"; issue 15): runs
# `neuroshard up --nodes NODES --memory-budget BUDGET` on a built genesis directory for SECS
# seconds, SIGKILLs node KILL at KILL_AT seconds (`up` restarts it), and prints from the node
# logs: each node's role, rounds closed before and after the kill with the Δs each included, the
# longest gap between two round closes from 5 s before the kill, and when the killed node's lane
# partners and the killed node itself next finished a lane job.
#
# Usage: bench/pipeline-kill.sh GENESIS_DIR [NODES=6] [BUDGET=4000000] [SECS=150] [KILL_AT=70]
#        [KILL=3] [OUT_DIR]   (NEUROSHARD=path/to/neuroshard)
set -euo pipefail
GENESIS="${1:?usage: bench/pipeline-kill.sh GENESIS_DIR [NODES] [BUDGET] [SECS] [KILL_AT] [KILL] [OUT_DIR]}"
NODES=${2:-6} BUDGET=${3:-4000000} SECS=${4:-150} KILL_AT=${5:-70} KILL=${6:-3}
OUT="${7:-$(mktemp -d)}"
BIN="${NEUROSHARD:-neuroshard}"
rm -rf "${OUT:?}/up" && mkdir -p "$OUT"
RAYON_NUM_THREADS=1 RUST_LOG=info "$BIN" up --nodes "$NODES" --http-port 0 --every 5 \
    --memory-budget "$BUDGET" --genesis "$GENESIS" --dir "$OUT/up" >"$OUT/up.out" 2>&1 &
UP=$!
sleep "$KILL_AT"
PID=$(grep -m1 "^node $KILL: pid" "$OUT/up.out" | sed 's/.*pid \([0-9]*\),.*/\1/')
KILLED_AT=$(date -u +%s.%N)
kill -KILL "$PID"
sleep $((SECS - KILL_AT))
kill -INT "$UP" && wait "$UP" || true
python3 - "$OUT/up" "$NODES" "$KILL" "$KILLED_AT" <<'PY'
import re, sys
from datetime import datetime, timezone
d, n, killed, t_kill = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
strip = re.compile(r"\x1b\[[0-9;]*m")
ts = lambda line: datetime.fromisoformat(line[:26]).replace(tzinfo=timezone.utc).timestamp()
roles, closes, jobs, placed = {}, {}, {}, {}
for i in range(n):
    closes[i], jobs[i], placed[i] = [], [], []
    for line in open(f"{d}/node-{i}.log", errors="replace"):
        line = strip.sub("", line)
        m = re.search(r"stage=(\d+) stages=\d+ layers=\S+ lane=(\d+)", line)
        if "training one stage" in line and m:
            roles[i] = (int(m[1]), int(m[2]))
            placed[i].append(ts(line))
        m = re.search(r"round closed round=(\d+) included=(\d+)", line)
        if m:
            closes[i].append((ts(line), int(m[2])))
        if "lane job done" in line:
            jobs[i].append(ts(line))
print(f"roles (stage, lane): {roles}; node {killed} killed")
for i in range(n):
    c = closes[i]
    after = [k for t, k in c if t >= t_kill]
    gaps = [b[0] - a[0] for a, b in zip(c, c[1:]) if b[0] >= t_kill - 5]
    print(f"node {i} {roles.get(i)}: {len(c) - len(after)} rounds closed before the kill, "
          f"{len(after)} after, including {after[:8]}...; longest gap {max(gaps, default=0):.1f} s")
lane = roles[killed][1]
for p in [i for i, r in roles.items() if r[1] == lane]:
    nxt = min([t for t in jobs[p] if t >= t_kill], default=None)
    print(f"node {p} {roles[p]}: first lane job done "
          f"{'never' if nxt is None else f'{nxt - t_kill:.1f} s'} after the kill")
back = [t for t in placed[killed] if t > t_kill]
print(f"node {killed} placed again {back[0] - t_kill:.1f} s after the kill" if back else "not placed again")
PY
