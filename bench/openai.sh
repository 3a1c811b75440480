#!/usr/bin/env bash
# The OpenAI-compatible API against the official `openai` Python client: starts a one-node
# network with `neuroshard up` on a copy of a built genesis directory, then runs a completion, a
# chat completion and a streamed completion through the client (printing the time to first token
# and tokens/s), and a few bad requests with curl (printing each status and error). The client is
# pip-installed from PyPI into bench/.venv-openai on the first run.
#
#   bench/openai.sh [GENESIS_DIR]   # default: .neuroshard/genesis (`neuroshard up` builds it)
#
# Environment: NEUROSHARD (the binary; default: build it with cargo), OPENAI_TOKENS (tokens per
# generation, default 64). The node's directory is temporary and removed at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GENESIS="${1:-$ROOT/.neuroshard/genesis}"
TOKENS="${OPENAI_TOKENS:-64}"
VENV="$ROOT/bench/.venv-openai"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/neuroshard-openai.XXXXXX")"
UP_PID=""

cleanup() {
    if [[ -n "$UP_PID" ]]; then
        kill "$UP_PID" 2>/dev/null || true
        wait "$UP_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -c "import openai" 2>/dev/null || "$VENV/bin/pip" install --quiet openai

if [[ -z "${NEUROSHARD:-}" ]]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/neuroshard/target}"
    (cd "$ROOT" && cargo build --quiet -p neuroshard)
    NEUROSHARD="$CARGO_TARGET_DIR/debug/neuroshard"
fi

# `up` writes its committee into the genesis file: it gets a copy.
if [[ -d "$GENESIS" ]]; then
    cp -r "$GENESIS" "$WORK/genesis"
fi
PORT="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$NEUROSHARD" up --nodes 1 --genesis "$WORK/genesis" --dir "$WORK/up" --http-port "$PORT" \
    >"$WORK/up.log" 2>&1 &
UP_PID=$!
BASE="http://127.0.0.1:$PORT"
for _ in $(seq 600); do
    curl -sf "$BASE/v1/models" >/dev/null 2>&1 && break
    sleep 0.5
done
curl -sf "$BASE/v1/models" >/dev/null || { tail -20 "$WORK/up.log"; exit 1; }
MODEL="$(curl -s "$BASE/v1/models" | "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["data"][0]["id"])')"
echo "node up at $BASE, model $MODEL"

"$VENV/bin/python" - "$BASE/v1" "$MODEL" "$TOKENS" <<'EOF'
import sys
import time

from openai import OpenAI

base, model, tokens = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = OpenAI(base_url=base, api_key="unused")

started = time.perf_counter()
completion = client.completions.create(
    model=model, prompt="Once upon a time", max_tokens=tokens, temperature=0
)
took = time.perf_counter() - started
print(f"completion ({took:.2f} s, {completion.usage.completion_tokens} tokens, "
      f"finish {completion.choices[0].finish_reason}): {completion.choices[0].text!r}")

started = time.perf_counter()
chat = client.chat.completions.create(
    model=model,
    messages=[
        {"role": "system", "content": "You tell short stories."},
        {"role": "user", "content": "Tell me about a cat."},
    ],
    max_tokens=tokens,
    seed=1,
    stop=["\n\n"],
)
took = time.perf_counter() - started
print(f"chat completion ({took:.2f} s, {chat.usage.completion_tokens} tokens, "
      f"finish {chat.choices[0].finish_reason}): {chat.choices[0].message.content!r}")

started = time.perf_counter()
first = None
pieces = []
usage = None
stream = client.completions.create(
    model=model, prompt="The little dog", max_tokens=tokens, temperature=0.8, seed=7, stream=True
)
for chunk in stream:
    text = chunk.choices[0].text if chunk.choices else ""
    if text and first is None:
        first = time.perf_counter()
    pieces.append(text)
    usage = chunk.usage or usage
ended = time.perf_counter()
generated = usage.completion_tokens if usage else sum(1 for p in pieces if p)
ttft = (first or ended) - started
rate = (generated - 1) / (ended - first) if first and generated > 1 and ended > first else 0.0
print(f"streamed completion: {generated} tokens in {len(pieces)} chunks; "
      f"time to first token {ttft * 1000:.0f} ms, {rate:.1f} tokens/s after it, "
      f"{generated / (ended - started):.1f} tokens/s overall: {''.join(pieces)!r}")
EOF

bad() {
    local what="$1"
    shift
    printf '%-28s ' "$what:"
    curl -s -o "$WORK/bad.json" -w '%{http_code} ' "$@"
    cat "$WORK/bad.json"
    echo
}
JSON=(-H 'Content-Type: application/json')
bad "invalid JSON" "${JSON[@]}" -d '{"model":' "$BASE/v1/completions"
bad "missing prompt" "${JSON[@]}" -d "{\"model\":\"$MODEL\"}" "$BASE/v1/completions"
bad "unknown model" "${JSON[@]}" -d '{"model":"gpt-4","prompt":"hi"}' "$BASE/v1/completions"
bad "n = 2" "${JSON[@]}" -d "{\"model\":\"$MODEL\",\"prompt\":\"hi\",\"n\":2}" "$BASE/v1/completions"
bad "max_tokens 1000000" "${JSON[@]}" -d "{\"model\":\"$MODEL\",\"prompt\":\"hi\",\"max_tokens\":1000000}" \
    "$BASE/v1/completions"
LONG="$("$VENV/bin/python" -c 'print("word " * 5000)')"
bad "prompt too long" "${JSON[@]}" -d "{\"model\":\"$MODEL\",\"prompt\":\"$LONG\"}" "$BASE/v1/completions"
bad "temperature 3" "${JSON[@]}" -d "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":3}" \
    "$BASE/v1/chat/completions"
