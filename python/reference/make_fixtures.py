"""Makes the reference fixtures of tests/model/test_reference.cpp.

    /usr/bin/python3 python/reference/make_fixtures.py [--out tests/fixtures/reference]

(Debian 12's python3-torch runs only under /usr/bin/python3.) For each tiny configuration
below, covering every switch that changes the math, it builds the reference model
(aero_ref.py) in float64, gives it random weights (rounded to float32 so the C++ model loads
exactly the same values), runs one training-mode forward and backward on a fixed batch, then
a fresh copy of the same weights through a few AdamW steps on fixed batches, and writes
<name>.safetensors with:

  metadata  aero_config (full resolved {"model", "train"} JSON), format "aero-ref-fixture-1",
            generator, description
  param.NAME        initial parameters and buffers (F32), names of docs/config.md
  input.tokens, input.targets   [B, T] I32
  out.logits [B, T, V]; out.ce, out.ent_reg, out.loss [1]
  grad.NAME         d loss / d NAME for every trainable parameter
  out.NAME          buffers after the forward (spectral-norm u after one power iteration)
  out.attn_probs [L, B, H, T, T]; out.head_entropy [L, H] (mean row entropy, nats)
  train.tokens, train.targets   [S, B, T] I32: the batch of each optimizer step
  train.loss, train.ce, train.ent_reg, train.lr, train.grad_norm   [S], per step (loss of
            the forward before the update, lr used, gradient norm before clipping)
  final.NAME        parameters and buffers after the S steps

Values are computed in float64 and stored as float32 (the C++ model is float32; the rounding
is far below the comparison tolerance) to keep the folder small. The output is deterministic.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aero_ref  # noqa: E402
import st_io  # noqa: E402

B, T, STEPS = 3, 7, 5
BASE = {"family": "gpt2", "n_layer": 2, "n_head": 2, "d_model": 16, "context": 8,
        "vocab_size": 23, "d_ff": 24}
TRAIN = {"steps": STEPS, "batch_size": B, "seq_len": T, "lr": 1e-2, "min_lr": 1e-3,
         "schedule": "linear", "warmup": 2, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8,
         "weight_decay": 0.1, "grad_clip": 1.0, "seed": 1}
SM = {"norm": "none", "ffn_act": "identity"}  # Softmax-only: no LayerNorm, no activation
EREG = dict(SM, ffn_kind="fused", ffn_scaling=True, temperature=True)

# name -> (description, model overrides, train overrides)
FIXTURES = {
    "gpt2_baseline": ("SM+LN+G: GPT-2 baseline", {}, {}),
    "ln_free_relu": ("SM+R: LN-free ReLU, no final norm",
                     {"norm": "none", "ffn_act": "relu", "final_norm": False}, {}),
    "sm_scffn": ("SM+ScFFN: learnable FFN scaling", dict(SM, ffn_scaling=True), {}),
    "sm_scfuffn_k1": ("SM+ScFuFFN-k1: fused FFN in the first layer only",
                      dict(SM, ffn_scaling=True, ffn_kind="fused", ffn_layers=1), {}),
    "ereg_exp": ("EReg(SM(t)+ScFuFFN), t = exp(s), sum reduction",
                 dict(EREG, temperature_param="exp",
                      entropy_reg={"enabled": True, "lambda": 0.05, "reduction": "sum"}),
                 {}),
    "ereg_direct": ("EReg(SM(t)+ScFuFFN), t = s, mean reduction, cosine schedule",
                    dict(EREG, temperature_param="direct",
                         entropy_reg={"enabled": True, "lambda": 1.0, "gamma": 0.1,
                                      "reduction": "mean"}),
                    {"schedule": "cosine"}),
    "ereg_offset_k1": ("EReg(SM(t)+ScFuFFN)-k1, t = 1 + s, sum reduction",
                       dict(EREG, temperature_param="offset", ffn_layers=1,
                            entropy_reg={"enabled": True, "lambda": 0.05, "gamma": 0.3,
                                         "reduction": "sum"}),
                       {}),
    "wn_qk_ffn": ("SM + weight norm on QK and FFN, no clipping",
                  dict(SM, weight_norm=["qk", "ffn"]), {"grad_clip": 0.0}),
    "sn_ffn_o": ("SM + spectral norm on FFN and O, constant schedule",
                 dict(SM, spectral_norm=["ffn", "o"]), {"schedule": "constant"}),
    "sn_qkv_fused": ("SM+FuFFN + spectral norm on QK and V (three sigmas in qkv)",
                     dict(SM, ffn_kind="fused", spectral_norm=["qk", "v", "ffn"]), {}),
    "leaky_global": ("LN-free learnable leaky ReLU, one global slope, final norm kept",
                     {"norm": "none", "ffn_act": "learnable_leaky_relu",
                      "slope_scope": "global", "final_norm": True}, {}),
    "leaky_per_layer": ("SM+LN + learnable leaky ReLU, a slope per layer",
                        {"ffn_act": "learnable_leaky_relu", "slope_scope": "per_layer"}, {}),
    "leaky_nobias_untied": ("fixed leaky ReLU (0.1), no biases, untied head",
                            {"ffn_act": "leaky_relu", "leaky_slope": 0.1, "bias": False,
                             "tie_embeddings": False}, {}),
    "ffn_none_no_final_norm": ("attention-only blocks with LayerNorm, no final norm",
                               {"ffn_kind": "none", "final_norm": False}, {}),
    "pythia_sm_scffn": ("pythia Softmax-only: rotary on a quarter of d_k, parallel residual "
                        "with FFN scaling, untied head",
                        dict(SM, family="pythia", ffn_scaling=True), {}),
    "pythia": ("pythia: rotary on half of d_k, parallel residual, untied head, exact GELU, "
               "cosine schedule",
               {"family": "pythia", "rotary_pct": 0.5, "ffn_act": "gelu_exact"},
               {"schedule": "cosine"}),
}


def fixture_weights(model, gen):
    """Random weights far from the default init, so that every switch visibly changes the
    result and every gradient is of order one (an init of std 0.02 makes attention uniform
    and hides mistakes in it)."""
    c = model.cfg

    def rn(shape, std):
        return torch.randn(shape, generator=gen, dtype=torch.float64) * std

    def ru(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=torch.float64)

    with torch.no_grad():
        # weight_g last: it is drawn around the norm of the (rounded) weight_v rows.
        order = sorted(model.params, key=lambda n: n.endswith(".weight_g"))
        for name in order:
            t = model.params[name]
            shape = t.shape
            if name in ("wte", "lm_head.weight"):
                v = rn(shape, 0.5)
            elif name == "wpe":
                v = rn(shape, 0.3)
            elif name.endswith(".weight_v") or (name.endswith(".weight") and len(shape) == 2):
                v = rn(shape, 1.0 / math.sqrt(shape[1]))
            elif name.endswith(".weight_g"):
                vv = model.params[name[:-1] + "v"]
                v = vv.norm(dim=1) * ru(shape, 0.7, 1.3)
            elif name.endswith(".bias") and (".ln" in name or name.startswith("ln_f")):
                v = rn(shape, 0.1)
            elif name.endswith(".weight"):  # LayerNorm gains
                v = 1.0 + rn(shape, 0.1)
            elif name.endswith(".bias"):
                v = rn(shape, 0.1)
            elif name.endswith("attn.temp"):
                temp = ru(shape, 0.6, 1.5)
                kind = c["temperature_param"]
                v = torch.log(temp) if kind == "exp" else temp if kind == "direct" else temp - 1
            elif name == "entropy_theta":
                v = ru(shape, 0.1, 0.9)
            elif name.endswith("alpha"):
                v = ru(shape, 0.8, 1.6)
            elif name.endswith("beta"):
                v = ru(shape, 0.7, 1.3)
            elif name.endswith("slope"):
                v = ru(shape, 0.05, 0.3)
            else:
                raise AssertionError(f"no fixture init for {name}")
            t.copy_(v.float().double())
        for name, u in model.buffers.items():
            for r in range(u.shape[0]):
                x = rn((u.shape[1],), 1.0)
                u[r] = (x / x.norm()).float().double()


def batch(gen, V):
    # A learnable task (target = 3*token + 1 mod V) so that the loss falls over the steps.
    tok = torch.randint(0, V, (B, T), generator=gen)
    return tok, (3 * tok + 1) % V


def f32(t):
    return t.detach().to(torch.float32).numpy().copy()


def make_one(name, desc, model_over, train_over, seed):
    mcfg = aero_ref.resolve_model_config(dict(BASE, **model_over))
    tcfg = aero_ref.resolve_train_config(dict(TRAIN, **train_over), mcfg)
    gen = torch.Generator().manual_seed(seed)
    model = aero_ref.AeroRef(mcfg, dtype=torch.float64)
    fixture_weights(model, gen)
    init_p = {n: t.clone() for n, t in model.params.items()}
    init_b = {n: t.clone() for n, t in model.buffers.items()}
    V = mcfg["vocab_size"]
    out = {}
    for n, t in init_p.items():
        out["param." + n] = f32(t)
    for n, t in init_b.items():
        out["param." + n] = f32(t)

    # One training-mode forward and backward.
    model.requires_grad_()
    tok, tgt = batch(gen, V)
    r = model.forward(tok, tgt, training=True)
    r["loss"].backward()
    out["input.tokens"] = tok.numpy().astype(np.int32)
    out["input.targets"] = tgt.numpy().astype(np.int32)
    out["out.logits"] = f32(r["logits"])
    for k in ("ce", "ent_reg", "loss"):
        out["out." + k] = np.array([float(r[k])], dtype=np.float32)
    for n, t in model.params.items():
        assert t.grad is not None and float(t.grad.abs().max()) > 0, f"{name}: zero grad {n}"
        out["grad." + n] = f32(t.grad)
    for n, t in model.buffers.items():
        out["out." + n] = f32(t)
    out["out.attn_probs"] = f32(torch.stack(r["probs"]))  # [L, B, H, T, T]
    out["out.head_entropy"] = np.array(model.head_entropy(r["probs"]), dtype=np.float32)
    band = ""
    if mcfg["entropy_reg"]["enabled"]:
        er = mcfg["entropy_reg"]
        e_max = math.log(T)
        outside = 0
        total = 0
        for l, a in enumerate(r["probs"]):
            ent = -(a * torch.log(a + 1e-9)).sum(-1)
            th = model.params["entropy_theta"][l].detach()[None, :, None]
            outside += int(((ent - th * e_max).abs() > er["gamma"] * e_max).sum())
            total += ent.numel()
        band = f", {outside}/{total} rows outside the band"

    # A fresh copy of the initial weights through STEPS AdamW steps.
    train = aero_ref.AeroRef(mcfg, dtype=torch.float64)
    with torch.no_grad():
        for n, t in init_p.items():
            train.params[n].copy_(t)
        for n, t in init_b.items():
            train.buffers[n].copy_(t)
    train.requires_grad_()
    opt = aero_ref.make_adamw(train, tcfg)
    toks, tgts, stats = [], [], []
    for s in range(STEPS):
        tk, tg = batch(gen, V)
        toks.append(tk)
        tgts.append(tg)
        stats.append(aero_ref.train_step(train, opt, [(tk, tg)], aero_ref.lr_at(s, tcfg), tcfg))
    out["train.tokens"] = torch.stack(toks).numpy().astype(np.int32)
    out["train.targets"] = torch.stack(tgts).numpy().astype(np.int32)
    for k in ("loss", "ce", "ent_reg", "lr", "grad_norm"):
        out["train." + k] = np.array([st[k] for st in stats], dtype=np.float32)
    for n, t in train.params.items():
        out["final." + n] = f32(t)
    for n, t in train.buffers.items():
        out["final." + n] = f32(t)

    meta = {
        "format": "aero-ref-fixture-1",
        "aero_config": json.dumps({"model": mcfg, "train": tcfg}, sort_keys=True),
        "description": desc,
        "generator": f"python/reference/make_fixtures.py (torch {torch.__version__}, float64)",
    }
    losses = " ".join(f"{st['loss']:.4f}" for st in stats)
    print(f"{name:24s} loss {float(r['loss']):.5f} ent_reg {float(r['ent_reg']):.4f}{band}; "
          f"train losses {losses}")
    return out, meta


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "fixtures",
                                                  "reference"))
    ap.add_argument("--only", nargs="*", help="fixture names (default: all)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)  # determinism of float64 reductions across machines
    for i, (name, (desc, mo, to)) in enumerate(FIXTURES.items()):
        if args.only and name not in args.only:
            continue
        tensors, meta = make_one(name, desc, mo, to, seed=1000 + i)
        st_io.save(os.path.join(args.out, name + ".safetensors"), tensors, meta)


if __name__ == "__main__":
    main()
