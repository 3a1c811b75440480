#!/usr/bin/env python3
"""PyTorch twin of `neuroshard bench train`: the same NeuroLLM architecture and optimiser, eager mode.

Pre-norm decoder: RMSNorm (eps 1e-5), RoPE (theta 10000, rotate-half), grouped-query causal
attention, SwiGLU MLP, no biases, untied embedding and head, final RMSNorm. AdamW (betas 0.9/0.95,
eps 1e-8, weight decay 0.1) with gradient clipping at 1.0. Prints one JSON object with the same
keys as the Rust command.
"""

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

# name: (d_model, layers, heads, kv_heads, ffn, train_seq) -- crates/model/src/config.rs
PRESETS = {
    "nano": (64, 2, 4, 2, 192, 64),
    "tiny": (256, 4, 8, 2, 768, 128),
    "small": (512, 8, 8, 2, 1536, 256),
    "base": (768, 12, 12, 4, 2048, 512),
}
INIT_STD = 0.02


def rope_tables(t, head_dim, theta=10000.0):
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.arange(t, dtype=torch.float64)[:, None] * inv_freq[None, :]
    return angles.cos().float(), angles.sin().float()


def apply_rope(x, cos, sin):
    """x (b, h, t, dh); cos/sin (t, dh/2); rotate-half convention."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Block(nn.Module):
    def __init__(self, d, heads, kv_heads, ffn, layers):
        super().__init__()
        self.h, self.hkv, self.dh = heads, kv_heads, d // heads
        self.attn_norm = nn.RMSNorm(d, eps=1e-5)
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, kv_heads * self.dh, bias=False)
        self.v = nn.Linear(d, kv_heads * self.dh, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.mlp_norm = nn.RMSNorm(d, eps=1e-5)
        self.gate = nn.Linear(d, ffn, bias=False)
        self.up = nn.Linear(d, ffn, bias=False)
        self.down = nn.Linear(ffn, d, bias=False)
        out_std = INIT_STD / math.sqrt(2 * layers)
        for lin in (self.q, self.k, self.v, self.gate, self.up):
            nn.init.normal_(lin.weight, std=INIT_STD)
        for lin in (self.o, self.down):
            nn.init.normal_(lin.weight, std=out_std)

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        h = self.attn_norm(x)
        q = self.q(h).view(b, t, self.h, self.dh).transpose(1, 2)
        k = self.k(h).view(b, t, self.hkv, self.dh).transpose(1, 2)
        v = self.v(h).view(b, t, self.hkv, self.dh).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        x = x + self.o(y.transpose(1, 2).reshape(b, t, d))
        h = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class NeuroLlm(nn.Module):
    def __init__(self, preset, vocab):
        super().__init__()
        d, layers, heads, kv_heads, ffn, _ = PRESETS[preset]
        self.head_dim = d // heads
        self.embed = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(Block(d, heads, kv_heads, ffn, layers) for _ in range(layers))
        self.norm = nn.RMSNorm(d, eps=1e-5)
        self.head = nn.Linear(d, vocab, bias=False)
        nn.init.normal_(self.embed.weight, std=INIT_STD)
        nn.init.normal_(self.head.weight, std=INIT_STD)

    def forward(self, tokens):
        cos, sin = rope_tables(tokens.shape[1], self.head_dim)
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.head(self.norm(x))


def peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM line in /proc/self/status")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    t = sub.add_parser("train")
    t.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--seq", type=int, default=128)
    t.add_argument("--steps", type=int, default=20)
    t.add_argument("--warmup", type=int, default=2)
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--vocab", type=int, default=8192)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--json", action="store_true")
    a = p.parse_args()

    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = NeuroLlm(a.preset, a.vocab)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    gen = torch.Generator().manual_seed(a.seed)
    times, losses = [], []
    for step in range(a.warmup + a.steps):
        tokens = torch.randint(0, a.vocab, (a.batch, a.seq + 1), generator=gen)
        start = time.perf_counter()
        logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), tokens[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step >= a.warmup:
            times.append(time.perf_counter() - start)
            losses.append(loss.item())

    ms = sorted(x * 1e3 for x in times)
    n = len(ms)
    median = ms[n // 2] if n % 2 else (ms[n // 2 - 1] + ms[n // 2]) / 2
    report = {
        "implementation": f"pytorch-{torch.__version__}-eager",
        "preset": a.preset,
        "params": sum(p.numel() for p in model.parameters()),
        "batch": a.batch,
        "seq": a.seq,
        "threads": torch.get_num_threads(),
        "steps": a.steps,
        "tokens_per_sec": a.batch * a.seq * a.steps / sum(times),
        "step_ms_median": median,
        "step_ms_min": ms[0],
        "peak_rss_mb": peak_rss_mb(),
        "loss_first": losses[0],
        "loss_last": losses[-1],
    }
    if a.json:
        print(json.dumps(report))
    else:
        print(
            f"{report['implementation']} preset {a.preset} ({report['params']} params), batch {a.batch} x seq {a.seq}, "
            f"{report['threads']} threads, {a.steps} steps:\n  {report['tokens_per_sec']:.0f} tokens/s, "
            f"step median {median:.1f} ms (min {ms[0]:.1f}), peak RSS {report['peak_rss_mb']:.0f} MiB, "
            f"loss {losses[0]:.3f} -> {losses[-1]:.3f}"
        )


if __name__ == "__main__":
    main()
