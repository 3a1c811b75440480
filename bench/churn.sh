#!/usr/bin/env bash
# The long churn soak: a local network of real `neuroshard node` processes trains many short
# rounds while a third of its nodes are replaced (the first one, which holds the dataset, among
# them: joins, clean leaves and SIGKILLs at rounds and moments drawn from the seed), then the same
# genesis runs without churn to the same number of contributions. Prints the round-by-round
# figures of both runs, the rounds around each join, and the two final validation losses; fails
# when a check breaks or the churned run ends more than 2 % above the other.
#
# It is the CI test bin/neuroshard/tests/churn.rs with more rounds and nodes (see its module doc
# for the checks). Usage:
#
#   bench/churn.sh [SEED]        # default seed: the clock
#
# Environment (defaults): CHURN_ROUNDS (300), CHURN_NODES (6), CHURN_REPLACE (2, a third of the
# nodes), CHURN_LATE (150: the last joiner arrives at this round or later). The nodes' directories
# and logs stay in .neuroshard/churn/SEED, the output in .neuroshard/churn/SEED.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CHURN_SEED="${1:-$(date +%s)}"
export CHURN_ROUNDS="${CHURN_ROUNDS:-300}"
export CHURN_NODES="${CHURN_NODES:-6}"
export CHURN_REPLACE="${CHURN_REPLACE:-2}"
export CHURN_LATE="${CHURN_LATE:-150}"
export CHURN_BASELINE=1
export CHURN_DIR="$ROOT/.neuroshard/churn/$CHURN_SEED"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/neuroshard/target}"
export CARGO_TERM_COLOR=never

rm -rf "$CHURN_DIR"
mkdir -p "$CHURN_DIR"
echo "churn: seed $CHURN_SEED, $CHURN_NODES nodes, $CHURN_ROUNDS rounds, $CHURN_REPLACE replaced; logs in $CHURN_DIR" >&2
cd "$ROOT"
cargo test -p neuroshard --test churn -- --exact nodes_join_leave_and_die_while_the_network_trains \
    --nocapture 2>&1 | tee "$CHURN_DIR.txt"
exit "${PIPESTATUS[0]}"
