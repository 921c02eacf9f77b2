#!/usr/bin/env python3
"""Makes the small Hugging Face fixtures that tests/interop checks without `transformers`.

Run where `transformers` is installed (the GPU machine's Python):
    python3 python/interop/make_hf_fixtures.py OUT_DIR
For each case it writes OUT_DIR/<case>/ = config.json + model.safetensors (or shards with
model.safetensors.index.json), as `save_pretrained` writes them, and
OUT_DIR/<case>/expected.json = {"input_ids": [[...]], "logits": [[[...]]]} computed by the
library in float32. Weights are randomly initialised (seeded), then perturbed so that biases
and LayerNorm gains are not at their trivial init values.
"""
import json
import os
import sys

import torch
from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM


def perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g, dtype=torch.float32).to(p.dtype))


def save_case(out, name, model, dtype=torch.float32, max_shard_size=None, seq=None):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    model.eval()
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, vocab, (2, seq or 9), generator=g)
    with torch.no_grad():
        m = model.to(dtype)
        # Logits of the stored (possibly rounded) weights, computed in float32.
        ref = m.to(torch.float32)(ids).logits
        m = m.to(dtype)
    kw = {"safe_serialization": True}
    if max_shard_size:
        kw["max_shard_size"] = max_shard_size
    m.save_pretrained(d, **kw)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"input_ids": ids.tolist(), "logits": ref.tolist(),
                   "torch": torch.__version__, "dtype": str(dtype)}, f)
    print("wrote", d, sorted(os.listdir(d)))


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    gcfg = GPT2Config(vocab_size=53, n_positions=16, n_embd=24, n_layer=2, n_head=3,
                      activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                      attn_pdrop=0.0)
    g = GPT2LMHeadModel(gcfg)
    perturb(g, 1)
    save_case(out, "gpt2_tiny", g)
    g2 = GPT2LMHeadModel(gcfg)
    perturb(g2, 2)
    save_case(out, "gpt2_tiny_sharded", g2, max_shard_size="8KB")
    g3 = GPT2LMHeadModel(gcfg)
    perturb(g3, 3)
    save_case(out, "gpt2_tiny_fp16", g3, dtype=torch.float16)

    ncfg = GPTNeoXConfig(vocab_size=61, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=4, intermediate_size=128, rotary_pct=0.25,
                         rotary_emb_base=10000, max_position_embeddings=16,
                         use_parallel_residual=True, hidden_act="gelu",
                         tie_word_embeddings=False, attention_dropout=0.0, hidden_dropout=0.0)
    n = GPTNeoXForCausalLM(ncfg)
    perturb(n, 4)
    save_case(out, "neox_tiny", n)
    n2 = GPTNeoXForCausalLM(ncfg)
    perturb(n2, 5)
    save_case(out, "neox_tiny_bf16", n2, dtype=torch.bfloat16)


if __name__ == "__main__":
    main()
