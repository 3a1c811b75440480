#!/usr/bin/env bash
# A pipeline replica killed and restarted (docs/pipeline.md, "Not yet"; issue 15): runs
# `neuroshard up --nodes NODES --memory-budget BUDGET` on a built genesis directory for SECS
# seconds, SIGKILLs a node at KILL_AT seconds (`up` restarts it), and prints from the node logs:
# each node's role, rounds closed before and after the kill with the Δs each included, the
# longest gap between two round closes from 5 s before the kill (the stall), and for each member
# of the killed node's lane (its neighbours, and members two hops or more away): when it saw a
# neighbour lost, when its job first stopped short, and when it next finished a lane job that
# trained (the lane trains again), with when the killed node placed itself again.
#
# KILL is a node index, or `sS` for the replica of stage S in lane 0, or in lane 1 when node 0
# holds it (read from the node logs at the kill), so that a middle stage can be chosen whatever
# the placement. Three stages need
# a model of three layers or more: on a genesis with the tiny preset (4 layers, vocabulary 347),
# NODES=6 and BUDGET=63900000 give 3 stages × 2 lanes (layers 0..2 with the embedding need
# 63.69 MB, 2..4 with the head 64.06 MB, so two stages do not fit; with 7 nodes one stage gets a
# third replica and there are 3 lanes, its other two replicas' lanes shared by one of them).
#
# With BACK_AT=T (seconds, or `never`), `up` is paused (SIGSTOP) just before the kill so that it
# restarts nothing, and resumed at T: the killed node stays down until then, and its lane trains
# through a stand-in (docs/pipeline.md, "Failover"). The report then also gives when the
# stand-in first served two lanes, when the killed node's lane first trained a whole job through
# it, and the stand-in's job times with one lane and with two.
#
# Usage: bench/pipeline-kill.sh GENESIS_DIR [NODES=6] [BUDGET=4000000] [SECS=150] [KILL_AT=70]
#        [KILL=3] [OUT_DIR]   (NEUROSHARD=path/to/neuroshard, BACK_AT=seconds|never)
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
if [[ "$KILL" == s* ]]; then
    # The lowest lane's replica that is not node 0: node 0 alone holds the dataset at first,
    # and without it the others wait for the next round's shards.
    LOG=$(for lane in 0 1 2 3; do grep -l "training one stage.*stage=${KILL#s} stages=[0-9]* layers=[^ ]* lane=$lane " \
        "$OUT"/up/node-*.log | grep -v 'node-0\.log' || true; done | head -1 || true)
    KILL=$(basename "$LOG" .log | sed 's/node-//')
fi
PID=$(grep -a "^node $KILL: pid" "$OUT/up.out" | tail -1 | sed 's/.*pid \([0-9]*\),.*/\1/')
[[ -n "$PID" ]] || { echo "no pid for node $KILL in $OUT/up.out" >&2; exit 1; }
BACK_AT=${BACK_AT:-}
[[ -n "$BACK_AT" ]] && kill -STOP "$UP"
echo "killing node $KILL (pid $PID)${BACK_AT:+, up paused until $BACK_AT}"
KILLED_AT=$(date -u +%s.%N)
kill -KILL "$PID"
if [[ -n "$BACK_AT" && "$BACK_AT" != never ]]; then
    sleep $((BACK_AT - KILL_AT))
    kill -CONT "$UP"
    sleep $((SECS - BACK_AT))
else
    sleep $((SECS - KILL_AT))
fi
kill -CONT "$UP"
kill -INT "$UP" && wait "$UP" || true
python3 - "$OUT/up" "$NODES" "$KILL" "$KILLED_AT" <<'PY'
import re, sys
from datetime import datetime, timezone
d, n, killed, t_kill = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
strip = re.compile(r"\x1b\[[0-9;]*m")
ts = lambda line: datetime.fromisoformat(line[:26]).replace(tzinfo=timezone.utc).timestamp()
num = lambda key, line: int(re.search(key + r"=(\d+)", line)[1])
roles, closes, done, cut, lost, placed, secs, served = {}, {}, {}, {}, {}, {}, {}, {}
for i in range(n):
    closes[i], done[i], cut[i], lost[i], placed[i], secs[i], served[i] = [], [], {}, [], [], [], []
    for line in open(f"{d}/node-{i}.log", errors="replace"):
        line = strip.sub("", line)
        m = re.search(r"stage=(\d+) stages=(\d+) layers=\S+ lane=(\d+)", line)
        if "training one stage" in line and m:
            roles[i] = (int(m[1]), int(m[3]))
            placed[i].append(ts(line))
        m = re.search(r"round closed round=(\d+) included=(\d+)", line)
        if m:
            closes[i].append((ts(line), int(m[2])))
        if "lane job done" in line:
            done[i].append((ts(line), num("round", line)))
            m = re.search(r"lanes=(\d+) secs=([0-9.]+)", line)
            if m:
                secs[i].append((ts(line), num("round", line), int(m[1]), float(m[2])))
        if "standing in: this job serves the lanes" in line:
            served[i].append(ts(line))
        if "the lane cannot complete the round" in line:
            cut[i].setdefault(num("round", line), ts(line))
        if "a lane neighbour was lost" in line and "broken=true" in line:
            lost[i].append(ts(line))
stages = 1 + max(s for s, _ in roles.values())
print(f"roles (stage, lane): {roles}; {stages} stages; node {killed} {roles[killed]} killed")
for i in range(n):
    c = closes[i]
    after = [k for t, k in c if t >= t_kill]
    gaps = [b[0] - a[0] for a, b in zip(c, c[1:]) if b[0] >= t_kill - 5]
    print(f"node {i} {roles.get(i)}: {len(c) - len(after)} rounds closed before the kill, "
          f"{len(after)} after, including {after[:8]}...; longest gap {max(gaps, default=0):.1f} s")
since = lambda ts_: next((f"{t - t_kill:.1f} s" for t in ts_ if t >= t_kill), "never")
stage, lane = roles[killed]
back = [t for t in placed[killed] if t > t_kill]
for p in sorted((i for i, r in roles.items() if r[1] == lane), key=lambda i: roles[i]):
    hops = abs(roles[p][0] - stage)
    trained = [t for t, r in done[p] if back and t >= back[0] and r not in cut[p]]
    print(f"node {p} {roles[p]} ({hops} hop(s) from the killed node): a neighbour lost "
          f"{since(lost[p])}, first job stopped short {since(sorted(cut[p].values()))}, "
          f"first job that trained after the restart {since(trained)} after the kill")
print(f"node {killed} placed again {back[0] - t_kill:.1f} s after the kill" if back else "not placed again")
stand = [i for i, r in roles.items() if r[0] == stage and r[1] != lane and served[i]]
for y in stand:
    print(f"stand-in node {y} {roles[y]}: first job serving two lanes {since(served[y])} after the kill")
    for k in (1, 2):
        jobs = [s for t, r, l, s in secs[y] if l == k and r not in cut[y]]
        if jobs:
            jobs = sorted(jobs)
            print(f"  whole jobs over {k} lane(s): {len(jobs)}, median {jobs[len(jobs) // 2]:.2f} s, "
                  f"min {jobs[0]:.2f} s, max {jobs[-1]:.2f} s")
for p in sorted((i for i, r in roles.items() if r[1] == lane and i != killed), key=lambda i: roles[i]):
    whole = [t for t, r in done[p] if t >= t_kill and r not in cut[p] and (not back or t < back[0])]
    print(f"node {p} {roles[p]}: first whole lane job after the kill (through the stand-in) "
          f"{since(whole)}; {len(whole)} whole jobs before the killed node came back")
PY
