#!/usr/bin/env python3
"""Minimal PyTorch speed peer for bench/gpu_train_bench (same model, same shapes, same step:
forward, backward, clip 1.0, fused AdamW), bf16 autocast, optionally torch.compile.

  python3 bench/pytorch_gpu_peer.py --rung baseline|aero --batch 256 --seq 128 --compile

baseline = SM+LN+G (GPT-2, SDPA flash attention, GELU tanh); aero = EReg(SM(t)+ScFuFFN): no LN,
fused d x d FFN without activation, FFN scaling, learnable temperature exp(s) per (head, query),
explicit attention with the entropy regularizer (sum reduction). Written for this benchmark only;
python/reference is the project's reference model.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, a, d, H, T):
        super().__init__()
        self.aero, self.H = a.rung == "aero", H
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        if self.aero:
            self.temp = nn.Parameter(torch.zeros(H, T))
            self.ffn = nn.Linear(d, d)
            self.alpha = nn.Parameter(torch.ones(1))
            self.beta = nn.Parameter(torch.ones(1))
        else:
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.fc, self.fproj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x, theta):
        B, T, d = x.shape
        H = self.H
        h = x if self.aero else self.ln1(x)
        q, k, v = self.qkv(h).view(B, T, 3, H, d // H).permute(2, 0, 3, 1, 4)
        pen = x.new_zeros(())
        if self.aero:
            t = torch.exp(self.temp[:, :T]).view(1, H, T, 1)
            s = (q @ k.transpose(-1, -2)) / (t * math.sqrt(d // H))
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            a = torch.softmax(s.float().masked_fill(~mask, float("-inf")), -1)
            ent = -(a * torch.log(a + 1e-9)).sum(-1)  # [B,H,T]
            delta = ent - theta.view(1, H, 1) * math.log(T)
            pen = torch.where(delta.abs() > 0.2 * math.log(T), delta ** 2, 0.0).sum() / H
            y = a.to(v.dtype) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, d))
        if self.aero:
            return self.beta * x + self.ffn(x) / self.alpha, pen
        return x + self.fproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh")), pen


class GPT(nn.Module):
    def __init__(self, a):
        super().__init__()
        d, L, H, T, V = a.dmodel, a.layers, a.heads, a.seq, a.vocab
        self.aero = a.rung == "aero"
        self.wte, self.wpe = nn.Embedding(V, d), nn.Embedding(T, d)
        self.blocks = nn.ModuleList(Block(a, d, H, T) for _ in range(L))
        self.theta = nn.Parameter(torch.full((L, H), 0.5))
        self.ln_f = None if self.aero else nn.LayerNorm(d)
        for p in self.parameters():
            if p.dim() == 2 and p is not self.theta:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx, tgt):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        pens = []
        for l, b in enumerate(self.blocks):
            x, p = b(x, self.theta[l])
            pens.append(p)
        if self.ln_f is not None:
            x = self.ln_f(x)
        logits = x @ self.wte.weight.t()
        ce = F.cross_entropy(logits.float().view(-1, logits.size(-1)), tgt.view(-1))
        if self.aero:
            return ce + 1e-5 * torch.stack(pens).sum() / len(self.blocks)
        return ce


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rung", default="baseline")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=50304)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--dmodel", type=int, default=768)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    dev = "cuda"
    model = GPT(a).to(dev)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "temp" not in n and "theta" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "temp" not in n and "theta" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), fused=True)
    step_model = torch.compile(model) if a.compile else model
    times = []
    for s in range(a.warmup + a.steps):
        idx = torch.randint(0, a.vocab, (a.batch, a.seq), device=dev)
        tgt = torch.randint(0, a.vocab, (a.batch, a.seq), device=dev)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = step_model(idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if s >= a.warmup:
            times.append(time.perf_counter() - t0)
        if s < 2 or s == a.warmup + a.steps - 1:
            print(f"step {s} loss {loss.item():.4f} ms {1e3 * (time.perf_counter() - t0):.1f}", flush=True)
    times.sort()
    med = times[len(times) // 2]
    tps = a.batch * a.seq / med
    print(f"| pytorch {'compiled' if a.compile else 'eager'} | {a.rung} | {a.batch} x {a.seq} | "
          f"median step {1e3 * med:.2f} ms | {tps:.0f} tokens/s |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rung": a.rung, "compile": a.compile, "tokens_per_s": tps, "median_step_ms": 1e3 * med}, f)


if __name__ == "__main__":
    main()
