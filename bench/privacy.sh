#!/usr/bin/env bash
# Checks our privacy accountant (`neuroshard privacy`) against Google's dp-accounting
# RdpAccountant (from PyPI) on several settings of sampling rate q, noise σ, steps T and δ:
# prints a table and PASS when every ε agrees within 1 % (relative), FAIL otherwise.
# Needs python3 (with venv) and cargo; the first run creates bench/.venv-privacy. The dev build
# is enough (the accountant is arithmetic), and its dependencies are the tests' ones.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/bench/.venv-privacy"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet dp-accounting
fi
(cd "$ROOT" && cargo build --quiet -p neuroshard)
TARGET_DIR="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
export NEUROSHARD_BIN="$TARGET_DIR/debug/neuroshard"
"$VENV/bin/python" - <<'PY'
import json, os, subprocess, sys
import dp_accounting
from dp_accounting.rdp import RdpAccountant

# (q, σ, T, δ): the DP-SGD paper's MNIST run, small and large q, low and high noise,
# one step without subsampling, a long run at a tight δ.
SETTINGS = [
    (256 / 60000, 1.1, 14062, 1e-5),
    (0.01, 1.0, 1000, 1e-5),
    (0.001, 0.8, 10000, 1e-6),
    (0.05, 2.0, 500, 1e-5),
    (0.1, 4.0, 3000, 1e-7),
    (1.0, 1.0, 1, 1e-5),
    (0.004, 0.6, 300, 1e-5),
]

def reference(q, sigma, steps, delta):
    accountant = RdpAccountant()
    event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
    accountant.compose(dp_accounting.SelfComposedDpEvent(event, steps))
    return accountant.get_epsilon(delta)

def ours(q, sigma, steps, delta):
    out = subprocess.run(
        [os.environ["NEUROSHARD_BIN"], "privacy", "--sampling-rate", repr(q), "--noise", repr(sigma),
         "--steps", str(steps), "--delta", repr(delta), "--json"],
        check=True, capture_output=True, text=True).stdout
    return json.loads(out)["epsilon"]

print(f"{'q':>10} {'σ':>5} {'T':>6} {'δ':>6} {'dp-accounting ε':>16} {'neuroshard ε':>14} {'rel. diff':>10}")
worst = 0.0
for q, sigma, steps, delta in SETTINGS:
    ref, got = reference(q, sigma, steps, delta), ours(q, sigma, steps, delta)
    rel = abs(got - ref) / ref
    worst = max(worst, rel)
    print(f"{q:>10.6f} {sigma:>5} {steps:>6} {delta:>6.0e} {ref:>16.6f} {got:>14.6f} {rel:>10.2e}")
verdict = "PASS" if worst <= 0.01 else "FAIL"
print(f"{verdict}: largest relative difference {worst:.2e} over {len(SETTINGS)} settings (bound 1e-2)")
sys.exit(0 if verdict == "PASS" else 1)
PY
