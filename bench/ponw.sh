#!/usr/bin/env bash
# How often Proof of Neural Work catches each kind of cheater over many seeded simulator runs
# (8 nodes, one cheater, a tiny model): the share of runs caught within three rounds and the
# catch rate per round against the design's prediction. Settings: PONW_SEEDS, PONW_NODES,
# PONW_ROUNDS, PONW_CHEATS (see crates/sim/benches/ponw.rs). About 10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/neuroshard/target}"
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-2}"
cargo bench -p neuroshard-sim --bench ponw --profile dev
