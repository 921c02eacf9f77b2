"""PyTorch speed peer of the aero trainer: training tokens/s (forward + backward + AdamW step)
of the reference model (python/reference/aero_ref.py, PyTorch's native LayerNorm/GELU
kernels) on random tokens, after warm-up steps, printed as one JSON object.

CPU peer of issue 2 (Debian's torch 1.13 runs only under /usr/bin/python3; OpenBLAS reads
OPENBLAS_CORETYPE at start-up only, so set it on the command line):

    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 bench/pytorch_train.py --threads 2

GPU peer of issue 7 (torch 2.x):

    python3 bench/pytorch_train.py --device cuda --dtype bf16 --compile --preset gpt2-124m
    python3 bench/pytorch_train.py --device cuda --dtype bf16 --compile --preset gpt2-124m \
        --rung 'EReg(SM(t)+ScFuFFN)'

The model comes from --preset (default cpu-small: L4 H4 d256 T128 vocab 8192 batch 8), then
--config (a file or inline JSON in the docs/config.md format), then --rung, then the size
flags and --set model.KEY=VALUE overrides.
"""
import argparse
import json
import os
import platform
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python",
                                "reference"))
import aero_ref  # noqa: E402

PRESETS = {
    # issue 2: the CPU trainer benchmark configuration
    "cpu-small": ({"n_layer": 4, "n_head": 4, "d_model": 256, "context": 128,
                   "vocab_size": 8192}, 8),
    # SPEC section 7: GPT-2 124M at T=128, vocab padded to 50304, batch 256
    "gpt2-124m": ({"n_layer": 12, "n_head": 12, "d_model": 768, "context": 128,
                   "vocab_size": 50304}, 256),
    "l6-d384": ({"n_layer": 6, "n_head": 6, "d_model": 384, "context": 256,
                 "vocab_size": 50304}, 64),
}
# The paper's ladder (SPEC section 2), as patches of the model config (docs/config.md).
SM = {"norm": "none", "ffn_act": "identity"}
RUNGS = {
    "SM+LN+G": {}, "SM+LN+R": {"ffn_act": "relu"}, "SM+LN": {"ffn_act": "identity"},
    "SM+G": {"norm": "none"}, "SM+R": {"norm": "none", "ffn_act": "relu"}, "SM": SM,
    "SM+ScFFN": dict(SM, ffn_scaling=True),
    "SM+ScFuFFN": dict(SM, ffn_scaling=True, ffn_kind="fused"),
    "EReg(SM(t)+ScFuFFN)": dict(SM, ffn_scaling=True, ffn_kind="fused", temperature=True,
                                entropy_reg={"enabled": True}),
}


def parse_value(v):
    try:
        return json.loads(v)
    except ValueError:
        return v


def build_config(args):
    model, batch = PRESETS[args.preset]
    model = dict(model)
    if args.config:
        text = args.config
        if os.path.exists(text):
            with open(text) as f:
                text = f.read()
        obj = json.loads(text)
        model.update(obj.get("model", {}))
        batch = obj.get("train", {}).get("batch_size", batch)
    if args.rung:
        base, k = args.rung, None
        if "-k" in base and base.rsplit("-k", 1)[1].isdigit():
            base, k = base.rsplit("-k", 1)
        if base not in RUNGS:
            sys.exit(f"unknown rung {args.rung!r} (known: {', '.join(RUNGS)}; -kN allowed)")
        model.update(json.loads(json.dumps(RUNGS[base])))
        if k is not None:
            model["ffn_layers"] = int(k)
    for key, flag in (("n_layer", args.n_layer), ("n_head", args.n_head),
                      ("d_model", args.d_model), ("context", args.seq_len),
                      ("vocab_size", args.vocab)):
        if flag is not None:
            model[key] = flag
    for s in args.set or []:
        key, _, val = s.partition("=")
        parts = key.split(".")
        if parts[0] == "model":
            parts = parts[1:]
        d = model
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = parse_value(val)
    return aero_ref.resolve_model_config(model), args.batch or batch


def main():
    ap = argparse.ArgumentParser(description="PyTorch training-speed peer of aero")
    ap.add_argument("--preset", default="cpu-small", choices=sorted(PRESETS))
    ap.add_argument("--config", help="config file or inline JSON (docs/config.md)")
    ap.add_argument("--rung", help="paper ladder name, e.g. 'EReg(SM(t)+ScFuFFN)-k6'")
    ap.add_argument("--set", action="append", help="model.KEY=VALUE (repeatable)")
    ap.add_argument("--n-layer", type=int)
    ap.add_argument("--n-head", type=int)
    ap.add_argument("--d-model", type=int)
    ap.add_argument("--seq-len", type=int, help="T (also the context)")
    ap.add_argument("--vocab", type=int)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"],
                    help="bf16/fp16: autocast over fp32 master weights")
    ap.add_argument("--compile", action="store_true", help="torch.compile (torch >= 2.0)")
    ap.add_argument("--sdpa", action="store_true",
                    help="fused causal attention (torch >= 2.0; no temperature / entropy term)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps")
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    mcfg, B = build_config(args)
    T = mcfg["context"]
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model = aero_ref.AeroRef(mcfg, dtype=torch.float32, device=dev, fast_ops=True,
                             sdpa=args.sdpa)
    model.init_weights(args.seed)
    # Leaf nn.Parameters in an nn.Module, so that torch.compile lifts them as graph inputs.
    holder = torch.nn.Module()
    for n in list(model.params):
        p = torch.nn.Parameter(model.params[n].to(dev))
        holder.register_parameter(n.replace(".", "__"), p)
        model.params[n] = p
    for n in list(model.buffers):
        model.buffers[n] = model.buffers[n].to(dev)
    tcfg = aero_ref.resolve_train_config({"weight_decay": 0.1}, mcfg)
    decay = [p for n, p in model.params.items() if model.decay[n]]
    other = [p for n, p in model.params.items() if not model.decay[n]]
    kw = {}
    if dev.type == "cuda" and "fused" in torch.optim.AdamW.__init__.__code__.co_varnames:
        kw["fused"] = True
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": other, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.999), eps=1e-8, **kw)
    amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]

    def loss_fn(tok, tgt):
        return model.forward(tok, tgt, training=True)["loss"]

    fn = torch.compile(loss_fn) if args.compile else loss_fn
    scaler = torch.cuda.amp.GradScaler() if args.dtype == "fp16" else None
    V = mcfg["vocab_size"]
    # Random tokens generated up front on the device: the data path is not what is measured.
    data = torch.randint(0, V, (args.warmup + args.steps, B, T + 1), device=dev)

    def step(i):
        tok, tgt = data[i, :, :T], data[i, :, 1:]
        opt.zero_grad(set_to_none=True)
        if amp is not None:
            with torch.autocast(device_type=dev.type, dtype=amp):
                loss = fn(tok, tgt)
        else:
            loss = fn(tok, tgt)
        if scaler:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(list(model.params.values()), tcfg["grad_clip"])
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        return loss

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for i in range(args.warmup):
        step(i)
    sync()
    t0 = time.perf_counter()
    for i in range(args.steps):
        loss = step(args.warmup + i)
    sync()
    dt = time.perf_counter() - t0
    tokens = args.steps * B * T
    n_params = sum(p.numel() for p in model.params.values())
    print(json.dumps({
        "bench": "pytorch_train", "tokens_per_s": tokens / dt, "step_ms": 1000 * dt / args.steps,
        "steps": args.steps, "warmup": args.warmup, "batch": B, "seq_len": T,
        "params": n_params, "loss": float(loss.detach()), "device": str(dev), "dtype": args.dtype,
        "compile": args.compile, "sdpa": args.sdpa, "threads": torch.get_num_threads(),
        "torch": torch.__version__, "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
        "machine": platform.node(), "model": mcfg,
    }))


if __name__ == "__main__":
    main()
