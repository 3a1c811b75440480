#!/usr/bin/env bash
# Checks `neuroshard export` against Hugging Face `transformers` and `tokenizers` from PyPI, with
# no custom code: for each preset it trains a small checkpoint, exports it, loads the directory
# with AutoModelForCausalLM and AutoTokenizer, and compares (bench/interop.py) the logits on a few
# prompts (max |Δ| ≤ 1e-4 in f32), the greedy continuations and the tokenizer round trip over the
# validation split. It also imports the export, and the model as transformers' save_pretrained
# writes it, and exports each again, which must give the same weights file byte for byte.
# Prints PASS or FAIL per preset; exits 1 if any failed.
#
# Usage: bench/interop.sh [--presets "nano tiny"] [--steps 300] [--genesis DIR] [--threads 2]
#   --genesis DIR  use this built Genesis directory; without it the script builds one in its work
#                  directory the way the first `neuroshard train` does (`neuroshard genesis build`).
#   WORK=DIR       keep the checkpoints and exports there (default: a temporary directory).
#   PROFILE=dev    build and run the dev profile instead of release (faster to build).
# Needs python3 (with venv) and cargo. The first run creates bench/.venv-interop and installs torch,
# transformers, tokenizers, safetensors and numpy from PyPI into it. PyPI's Linux torch wheel is
# linked against the CUDA runtime libraries, so they come too (about 3 GB); the check runs on the CPU.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/bench/.venv-interop"
PRESETS="nano tiny"
STEPS=300
GENESIS=""
THREADS=2
PROFILE="${PROFILE:-release}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --presets) PRESETS="$2"; shift 2 ;;
        --steps) STEPS="$2"; shift 2 ;;
        --genesis) GENESIS="$2"; shift 2 ;;
        --threads) THREADS="$2"; shift 2 ;;
        *) echo "interop: unknown argument $1 (see the usage at the top of $0)" >&2; exit 2 ;;
    esac
done

if ! "$VENV/bin/python" -c 'import torch, transformers, tokenizers, safetensors, numpy' 2>/dev/null; then
    echo "interop: installing torch, transformers, tokenizers into $VENV (first run only)" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet torch transformers tokenizers safetensors numpy
fi
"$VENV/bin/python" -c 'import torch, transformers, tokenizers; print(f"interop: torch {torch.__version__}, transformers {transformers.__version__}, tokenizers {tokenizers.__version__}")' >&2

echo "interop: building neuroshard ($PROFILE)" >&2
(cd "$ROOT" && cargo build --profile "$PROFILE" --quiet -p neuroshard)
TARGET_DIR="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
PROFILE_DIR="$PROFILE"
[[ "$PROFILE" == "dev" ]] && PROFILE_DIR=debug
BIN="$TARGET_DIR/$PROFILE_DIR/neuroshard"

WORK="${WORK:-$(mktemp -d)}"
mkdir -p "$WORK"
if [[ -z "$GENESIS" ]]; then
    GENESIS="$WORK/genesis"
    echo "interop: building the Genesis data in $GENESIS" >&2
    "$BIN" genesis build --out "$GENESIS" >&2
fi
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"

FAILED=0
# Imports the Hugging Face directory $1 and exports it again (work names from $2): prints whether
# the weights come back byte for byte, and fails when they do not.
round_trip() {
    "$BIN" import --model "$1" --genesis "$GENESIS" --out "$WORK/imported-$2" >&2
    "$BIN" export --checkpoint "$WORK/imported-$2" --genesis "$GENESIS" --out "$WORK/reexported-$2" >&2
    if cmp -s "$HF/model.safetensors" "$WORK/reexported-$2/model.safetensors"; then
        echo "identical weights"
    else
        echo "WEIGHTS DIFFER"
        return 1
    fi
}
RESULTS=()
for PRESET in $PRESETS; do
    CK="$WORK/checkpoint-$PRESET" HF="$WORK/hf-$PRESET"
    rm -rf "$CK" "$HF" "$WORK/imported-$PRESET" "$WORK/reexported-$PRESET"
    echo "interop: $PRESET: training $STEPS steps" >&2
    "$BIN" train --preset "$PRESET" --genesis "$GENESIS" --steps "$STEPS" --batch 8 \
        --checkpoint-dir "$CK" --checkpoint-every 0 --eval-every 0 --log-every 100 \
        --threads "$THREADS" >&2
    "$BIN" export --checkpoint "$CK" --genesis "$GENESIS" --out "$HF" >&2
    ROUND_TRIP="import/export round trip: $(round_trip "$HF" "$PRESET")" || FAILED=1
    echo "interop: $PRESET: comparing with transformers" >&2
    SAVED="$WORK/saved-$PRESET"
    rm -rf "$SAVED" "$WORK/imported-saved-$PRESET" "$WORK/reexported-saved-$PRESET"
    if LINE="$("$VENV/bin/python" "$ROOT/bench/interop.py" --bin "$BIN" --checkpoint "$CK" \
        --genesis "$GENESIS" --hf "$HF" --threads "$THREADS" --save "$SAVED" | tail -n 1)"; then :; else FAILED=1; fi
    # What transformers' save_pretrained writes imports back to the same weights.
    SAVED_TRIP="transformers save_pretrained → import: $(round_trip "$SAVED" "saved-$PRESET")" || FAILED=1
    RESULTS+=("$PRESET: $LINE; $ROUND_TRIP; $SAVED_TRIP")
done

echo "interop: work directory $WORK" >&2
printf '%s\n' "${RESULTS[@]}"
if [[ "$FAILED" -ne 0 ]]; then
    echo "interop: FAIL" >&2
    exit 1
fi
echo "interop: PASS" >&2
