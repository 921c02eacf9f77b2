"""Self-checks of the reference: each hand-written operator of aero_ref.py against PyTorch's
own implementation or a loop written straight from the formula, so that the oracle itself is
checked before the C++ model is compared with it.

    /usr/bin/python3 python/reference/check_ref.py      # prints one line per check, exit 1 on failure
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aero_ref  # noqa: E402

torch.manual_seed(0)
torch.set_num_threads(1)  # tiny tensors: threads only add overhead
torch.set_default_dtype(torch.float64)
failures = []


def check(name, got, want, tol=1e-10):
    err = float((got - want).abs().max())
    ok = err <= tol
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max abs error {err:.3e}")
    if not ok:
        failures.append(name)


def tiny(**over):
    cfg = dict(n_layer=2, n_head=2, d_model=8, context=6, vocab_size=11, d_ff=12, **over)
    m = aero_ref.AeroRef(cfg, dtype=torch.float64)
    m.init_weights(3)
    with torch.no_grad():  # larger weights than init_std so attention is not uniform
        for n, t in m.params.items():
            if t.dim() == 2:
                t.mul_(20.0)
    return m


# The numpy safetensors writer and reader round-trip every dtype the fixtures use.
import tempfile  # noqa: E402

import numpy as np  # noqa: E402

import st_io  # noqa: E402

with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "t.safetensors")
    arrs = {"a.f32": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
            "b.i32": np.array([[1, -2], [3, 4]], dtype=np.int32),
            "c.f64": np.array([1e-300, -2.5])}
    st_io.save(path, arrs, {"k": "v"})
    back, meta = st_io.load(path)
    with open(path, "rb") as f:
        hlen = int.from_bytes(f.read(8), "little")
    ok = meta == {"k": "v"} and hlen % 8 == 0 and all(
        back[k].dtype == v.dtype and np.array_equal(back[k], v) for k, v in arrs.items())
    print(f"{'ok  ' if ok else 'FAIL'} safetensors round trip")
    if not ok:
        failures.append("safetensors round trip")

# LayerNorm and GELU against torch.nn.functional.
x = torch.randn(4, 8)
w, b = torch.randn(8), torch.randn(8)
check("layer_norm", aero_ref.layer_norm(x, w, b), F.layer_norm(x, (8,), w, b, 1e-5))
if "approximate" in F.gelu.__doc__:
    check("gelu_tanh", aero_ref.gelu_tanh(x), F.gelu(x, approximate="tanh"))
check("gelu_erf", aero_ref.gelu_erf(x), F.gelu(x), 1e-15)

# Weight norm on every qkv row against torch._weight_norm (dim 0).
m = tiny(norm="none", ffn_act="identity", weight_norm=["qk", "v", "o", "ffn"])
lin = m.linears["blocks.0.attn.qkv"]
g, v = m.params["blocks.0.attn.qkv.weight_g"], m.params["blocks.0.attn.qkv.weight_v"]
with torch.no_grad():
    g.mul_(1.3)
check("weight_norm", m.weight(lin, True), torch._weight_norm(v, g, 0))

# Spectral norm of a single matrix against torch.nn.utils.spectral_norm (training mode).
m = tiny(norm="none", ffn_act="identity", spectral_norm=["o"])
lin = m.linears["blocks.1.attn.proj"]
W = m.params["blocks.1.attn.proj.weight"].clone()
u0 = m.buffers["blocks.1.attn.proj.sn_u"][0].clone()
ref = torch.nn.Linear(8, 8, bias=False)
with torch.no_grad():
    ref.weight.copy_(W)
ref = torch.nn.utils.spectral_norm(ref)
with torch.no_grad():
    ref.weight_u.copy_(u0)
ref.train()
ref(torch.zeros(1, 8))
check("spectral_norm weight", m.weight(lin, True), ref.weight)
check("spectral_norm u update", m.buffers["blocks.1.attn.proj.sn_u"][0], ref.weight_u)

# Rotary (GPT-NeoX rotate_half): dims i and i + r/2 rotate by angle pos * base^(-2i/r).
q = torch.randn(1, 1, 5, 8)
r = 4
got = aero_ref.apply_rotary(q, r, 10000.0)
want = q.clone()
for p in range(5):
    for i in range(r // 2):
        ang = p * 10000.0 ** (-2 * i / r)
        a, c = q[0, 0, p, i], q[0, 0, p, i + r // 2]
        want[0, 0, p, i] = a * math.cos(ang) - c * math.sin(ang)
        want[0, 0, p, i + r // 2] = c * math.cos(ang) + a * math.sin(ang)
check("rotary", got, want, 1e-12)

# Attention with temperature and the entropy regularizer against loops over the formulas.
for param in ("exp", "direct", "offset"):
    for red in ("sum", "mean"):
        m = tiny(norm="none", ffn_act="identity", temperature=True, temperature_param=param,
                 entropy_reg={"enabled": True, "reduction": red, "gamma": 0.1})
        with torch.no_grad():
            m.params["blocks.0.attn.temp"].add_(0.3 * torch.rand(2, 6))
            m.params["entropy_theta"].copy_(torch.rand(2, 2))
        tok = torch.randint(0, 11, (2, 5))
        x = m.params["wte"][tok] + m.params["wpe"][:5]
        _, probs = m.attention(0, x, True)
        qkv = x @ m.params["blocks.0.attn.qkv.weight"].t() + m.params["blocks.0.attn.qkv.bias"]
        s = m.params["blocks.0.attn.temp"]
        t = {"exp": torch.exp(s), "direct": s, "offset": 1 + s}[param]
        want = torch.zeros(2, 2, 5, 5)
        for bb in range(2):
            for h in range(2):
                for i in range(5):
                    qi = qkv[bb, i, h * 4:(h + 1) * 4]
                    sc = [float(qi @ qkv[bb, j, 8 + h * 4:8 + (h + 1) * 4]) / (t[h, i] * 2.0)
                          for j in range(i + 1)]
                    mx = max(sc)
                    e = [math.exp(v - mx) for v in sc]
                    for j in range(i + 1):
                        want[bb, h, i, j] = e[j] / sum(e)
        check(f"attention probs (temperature {param})", probs, want, 1e-12)
        probs2 = [probs, m.attention(1, x, True)[1]]
        theta = m.params["entropy_theta"]
        total = 0.0
        for l in range(2):
            acc = 0.0
            for bb in range(2):
                for h in range(2):
                    for i in range(5):
                        row = probs2[l][bb, h, i]
                        ent = -sum(float(a) * math.log(float(a) + 1e-9) for a in row)
                        delta = ent - float(theta[l, h]) * math.log(5)
                        if abs(delta) > 0.1 * math.log(5):
                            acc += delta * delta
            acc /= 2
            if red == "mean":
                acc /= 2 * 5
            total += acc
        check(f"entropy regularizer ({param}, {red})",
              m.entropy_regularizer(probs2).reshape(1), torch.tensor([total / 2]), 1e-10)

# Autograd through the whole model against finite differences (no spectral norm: its u, v
# are constants for autograd by definition, not for finite differences).
for over in ({}, {"family": "pythia", "rotary_pct": 0.5},
             {"norm": "none", "ffn_act": "learnable_leaky_relu", "slope_scope": "global",
              "ffn_scaling": True, "temperature": True, "weight_norm": ["qk", "ffn"],
              "entropy_reg": {"enabled": True, "lambda": 0.1}}):
    m = tiny(**over)
    tok = torch.randint(0, 11, (2, 5))
    tgt = torch.randint(0, 11, (2, 5))
    names = list(m.params)

    def f(*ps):
        for n, p in zip(names, ps):
            m.params[n] = p
        return m.forward(tok, tgt, training=True)["loss"]

    ps = [t.clone().requires_grad_(True) for t in m.params.values()]
    ok = torch.autograd.gradcheck(f, ps, eps=1e-6, atol=1e-5, rtol=1e-4, raise_exception=False,
                                  fast_mode=True)
    print(f"{'ok  ' if ok else 'FAIL'} gradcheck {over or 'gpt2 baseline'}")
    if not ok:
        failures.append(f"gradcheck {over}")

print("all checks passed" if not failures else f"FAILED: {failures}")
sys.exit(1 if failures else 0)
