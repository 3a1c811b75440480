"""Checks a `neuroshard export` directory against our engine with `transformers` (no custom code).

Run by bench/interop.sh. For each prompt: the token ids of `AutoTokenizer` against ours, the
logits of `AutoModelForCausalLM` (f32) against `neuroshard generate --json --logits`, and the
greedy continuations. Then the tokenizer over the validation split: every 256-token chunk of the
genesis's `val-*.bin`, decoded and re-encoded by `AutoTokenizer`, gives back its token ids, or,
where the chunk's edges cut a word (re-encoding a fragment may merge it otherwise), the ids our
tokenizer gives the same text.
With --save, the model as `transformers` saves it, for `neuroshard import` to read back.
Prints one JSON summary line and PASS or FAIL; exits 1 on FAIL.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "To be, or not to be, that is the question:",
    "The quick brown fox",
    "ROMEO. But soft, what light through yonder window breaks?",
    "In the beginning",
]


def ours(args, prompt):
    """Our engine's prompt ids, prompt logits and greedy continuation."""
    cmd = [args.bin, "generate", "--checkpoint", args.checkpoint, "--genesis", args.genesis,
           "--prompt", prompt, "--max-tokens", str(args.max_tokens), "--temperature", "0",
           "--threads", str(args.threads), "--json", "--logits"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def theirs(model, tok, prompt, max_tokens):
    """transformers' prompt ids, prompt logits and greedy continuation (eos not included)."""
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits[0].numpy()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens,
                             do_sample=False, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)
    new = out[0, ids.shape[1]:].tolist()
    if tok.eos_token_id in new:
        new = new[:new.index(tok.eos_token_id)]
    return ids[0].tolist(), logits, new


def val_chunks(genesis):
    """The token ids of every chunk of the validation split (the split is drawn chunk by chunk)."""
    manifest = json.load(open(os.path.join(genesis, "manifest.json")))
    dtype = {"u16": "<u2", "u32": "<u4"}[manifest["token_width"]]
    size = manifest["validation_chunk_tokens"]
    stream = []
    for path in sorted(glob.glob(os.path.join(genesis, "val-*.bin"))):
        stream += np.fromfile(path, dtype=dtype).astype(np.int64).tolist()
    return [stream[i:i + size] for i in range(0, len(stream), size)]


def same_tokens(args, tok, chunk):
    """Whether `AutoTokenizer` re-encodes the chunk's text as we do: as the chunk itself, or as
    our tokenizer encodes the same text (a chunk's edges may cut a word in two)."""
    text = tok.decode(chunk)
    ids = tok(text, add_special_tokens=False).input_ids
    if ids == chunk:
        return True
    cmd = [args.bin, "generate", "--checkpoint", args.checkpoint, "--genesis", args.genesis,
           "--prompt", text, "--max-tokens", "1", "--temperature", "0", "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return ids == json.loads(out)["prompt_ids"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--genesis", required=True)
    p.add_argument("--hf", required=True)
    p.add_argument("--max-tokens", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tolerance", type=float, default=1e-4)
    p.add_argument("--save", help="also save the model with transformers' save_pretrained here "
                   "(with the export's tokenizer files), for `neuroshard import` to read back")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    tok = AutoTokenizer.from_pretrained(args.hf)
    model = AutoModelForCausalLM.from_pretrained(args.hf, dtype=torch.float32)
    model.eval()
    docs = val_chunks(args.genesis)
    # Validation chunks may be longer than the training length: no truncation warning.
    tok.model_max_length = 1 << 30

    # One prompt as long as the training length allows, to compare RoPE at every position.
    long_len = model.config.max_position_embeddings - args.max_tokens
    prompts = PROMPTS + ([tok.decode(sum(docs[:8], [])[:long_len])] if docs and long_len > 0 else [])
    max_diff, ids_equal, greedy_equal = 0.0, True, True
    for prompt in prompts:
        mine = ours(args, prompt)
        ids, logits, new = theirs(model, tok, prompt, args.max_tokens)
        if ids != mine["prompt_ids"]:
            ids_equal = False
            print(f"interop: prompt ids differ for {prompt!r}: {ids} vs {mine['prompt_ids']}",
                  file=sys.stderr)
            continue
        diff = float(np.abs(logits - np.array(mine["logits"], dtype=np.float32)).max())
        max_diff = max(max_diff, diff)
        same = new == mine["token_ids"]
        greedy_equal &= same
        print(f"interop: {prompt[:40]!r}: {len(ids)} tokens, max |Δlogit| {diff:.2e}, greedy "
              f"{'equal' if same else 'DIFFERS'} ({len(new)} tokens: {tok.decode(new)!r})",
              file=sys.stderr)
        if not same:
            print(f"interop:   transformers {new}\ninterop:   neuroshard   {mine['token_ids']}",
                  file=sys.stderr)

    round_trip = sum(same_tokens(args, tok, d) for d in docs)
    tokens = sum(len(d) for d in docs)
    ok = (ids_equal and greedy_equal and max_diff <= args.tolerance
          and round_trip == len(docs) and len(docs) > 0)
    summary = {
        "prompts": len(prompts),
        "prompt_ids_equal": ids_equal,
        "max_abs_logit_diff": max_diff,
        "greedy_equal": greedy_equal,
        "val_chunks": len(docs),
        "val_tokens": tokens,
        "val_round_trip_equal": round_trip,
        "pass": ok,
    }
    if args.save:
        model.save_pretrained(args.save)
        for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
            shutil.copy(os.path.join(args.hf, name), args.save)
    print(json.dumps(summary))
    print(f"{'PASS' if ok else 'FAIL'}: max |Δlogit| {max_diff:.2e} (≤ {args.tolerance:g}), greedy "
          f"{'equal' if greedy_equal else 'DIFFERS'}, prompt ids "
          f"{'equal' if ids_equal else 'DIFFER'}, tokenizer round trip {round_trip}/{len(docs)} "
          f"validation chunks ({tokens} tokens)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
