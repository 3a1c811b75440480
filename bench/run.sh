#!/usr/bin/env bash
# Runs `neuroshard bench train` and its PyTorch twin (bench/pytorch_train.py) side by side with the
# same preset, sizes and threads, prints both JSON lines and the ratio ours / PyTorch.
#
# Usage: bench/run.sh [--preset tiny] [--batch 8] [--seq 128] [--steps 20] [--threads 2]
# Needs python3 (with venv) and cargo. The first run creates bench/.venv and installs torch from
# PyPI into it. PyPI's Linux torch wheel is linked against the CUDA runtime libraries, so they come
# too (about 3 GB download); the benchmark itself runs on the CPU only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/bench/.venv"
ARGS=(--preset tiny --batch 8 --seq 128 --steps 20 --threads 2)
[[ $# -gt 0 ]] && ARGS=("$@")

if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    echo "bench: installing torch into $VENV (first run only)" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet torch numpy
    "$VENV/bin/python" -c 'import torch; print("bench: torch", torch.__version__)' >&2
fi

echo "bench: building neuroshard (release)" >&2
(cd "$ROOT" && cargo build --release --quiet -p neuroshard)
TARGET_DIR="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
OURS_BIN="$TARGET_DIR/release/neuroshard"

# Same thread count for both: our rayon pool and candle through --threads, PyTorch's intra-op pool
# through torch.set_num_threads (and OMP), so neither side uses more cores than the other.
THREADS=2
for ((i = 0; i < ${#ARGS[@]}; i++)); do
    [[ "${ARGS[$i]}" == "--threads" ]] && THREADS="${ARGS[$((i + 1))]}"
done
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"

echo "bench: neuroshard bench train ${ARGS[*]}" >&2
OURS="$("$OURS_BIN" bench train "${ARGS[@]}" --json)"
echo "bench: pytorch_train.py train ${ARGS[*]}" >&2
THEIRS="$("$VENV/bin/python" "$ROOT/bench/pytorch_train.py" train "${ARGS[@]}" --json)"

echo "$OURS"
echo "$THEIRS"
"$VENV/bin/python" - "$OURS" "$THEIRS" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ratio = ours["tokens_per_sec"] / theirs["tokens_per_sec"]
print(f"ratio ours/pytorch tokens_per_sec = {ratio:.2f}  "
      f"({ours['tokens_per_sec']:.0f} vs {theirs['tokens_per_sec']:.0f} tok/s, "
      f"step median {ours['step_ms_median']:.0f} vs {theirs['step_ms_median']:.0f} ms, "
      f"peak RSS {ours['peak_rss_mb']:.0f} vs {theirs['peak_rss_mb']:.0f} MiB)")
PY
