"""Independent PyTorch reference of the aero model, written from docs/config.md and SPEC.md.

This is the test oracle of the C++ model (tests/model/test_reference.cpp, via the fixtures
made by make_fixtures.py) and the speed peer of the trainer benchmark (bench/pytorch_train.py).
Gradients come from torch autograd, so nothing here shares logic with the hand-written C++
backward. It is deliberately plain: one function per operator, the block reads like the math.

Parameters live in an ordered dict keyed by the names of docs/config.md (state dicts map 1:1
to the C++ model and its safetensors checkpoints). Buffers (spectral-norm u) are separate.

Choices where docs/config.md is silent (documented in docs/reference.md, section "Semantics"):
- layers without an FFN (ffn_kind=none, or index >= ffn_layers) have no ln2 and no ffn_scale:
  x_out = x + MHA(LN1(x));
- ffn_scaling with parallel_residual: x_out = beta*(x + MHA(LN1 x)) + FFN(LN2 x)/alpha;
- weight norm / spectral norm on the packed qkv matrix apply per sub-matrix: rows of W_q and
  W_k belong to group qk, rows of W_v to group v. Under weight norm with only some groups on,
  qkv still stores weight_g [3d] / weight_v [3d, d]; rows outside the groups use w = v (their
  g entries get no gradient). Under spectral norm sn_u is [3, d]; rows of groups that are off
  are left untouched;
- the fused FFN applies no activation (ffn_act must be identity);
- the rotary dimension is int(d_k * rotary_pct) (GPT-NeoX), rounded down to even.
"""
import json
import math
from collections import OrderedDict

import torch
import torch.nn.functional as F

MODEL_DEFAULTS = {
    "family": "gpt2", "n_layer": 4, "n_head": 4, "d_model": 128, "context": 128,
    "vocab_size": 50257, "d_ff": None, "bias": True, "norm": "layernorm", "final_norm": None,
    "ffn_act": "gelu", "leaky_slope": 0.01, "slope_scope": "per_layer",
    "ffn_kind": "standard", "ffn_layers": -1, "ffn_scaling": False,
    "ffn_alpha_init": 1.0, "ffn_beta_init": 1.0, "weight_norm": [], "spectral_norm": [],
    "temperature": False, "temperature_param": "exp", "temperature_init": None,
    "rotary_pct": 0.25, "rotary_base": 10000.0, "parallel_residual": None,
    "tie_embeddings": None, "init_std": 0.02, "entropy_reg": None,
}
ENTROPY_DEFAULTS = {"enabled": False, "lambda": 1e-5, "gamma": 0.2, "theta_init": 0.5,
                    "reduction": "sum"}
TRAIN_DEFAULTS = {
    "steps": 1000, "batch_size": 8, "grad_accum": 1, "seq_len": None, "lr": 1e-3, "min_lr": 0.0,
    "schedule": "linear", "warmup": 0.05, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
    "weight_decay": 0.1, "grad_clip": 1.0, "seed": 1234, "eval_every": 100,
    "eval_batches": 20, "checkpoint_every": 500, "threads": 0,
}
GROUPS = ("qk", "v", "o", "ffn")


def _fill(given, defaults, where):
    unknown = set(given) - set(defaults)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}")
    out = dict(defaults)
    out.update(given)
    return out


def resolve_model_config(m):
    """Fills docs/config.md defaults, including the family-dependent ones."""
    c = _fill(m, MODEL_DEFAULTS, "model")
    c["entropy_reg"] = _fill(c["entropy_reg"] or {}, ENTROPY_DEFAULTS, "model.entropy_reg")
    pythia = c["family"] == "pythia"
    if c["family"] not in ("gpt2", "pythia"):
        raise ValueError(f"model.family: expected gpt2 or pythia, got {c['family']}")
    if c["d_ff"] is None:
        c["d_ff"] = 4 * c["d_model"]
    if c["final_norm"] is None:
        c["final_norm"] = c["norm"] == "layernorm"
    if c["parallel_residual"] is None:
        c["parallel_residual"] = pythia
    if c["tie_embeddings"] is None:
        c["tie_embeddings"] = not pythia
    if c["temperature_init"] is None:
        c["temperature_init"] = 0.01 if c["temperature_param"] == "offset" else 1.0
    if c["d_model"] % c["n_head"]:
        raise ValueError("model.d_model must be a multiple of model.n_head")
    for key in ("weight_norm", "spectral_norm"):
        for g in c[key]:
            if g not in GROUPS:
                raise ValueError(f"model.{key}: unknown group {g}")
    if set(c["weight_norm"]) & set(c["spectral_norm"]):
        raise ValueError("model: a group cannot have both weight_norm and spectral_norm")
    if c["ffn_kind"] == "fused" and c["ffn_act"] != "identity":
        raise ValueError("model.ffn_kind=fused needs ffn_act=identity")
    return c


def rotary_dims(c):
    r = int(c["d_model"] // c["n_head"] * c["rotary_pct"])
    return r - r % 2


def resolve_train_config(t, model_cfg):
    c = _fill(t, TRAIN_DEFAULTS, "train")
    if c["seq_len"] is None:
        c["seq_len"] = model_cfg["context"]
    return c


def lr_at(step, t):
    """Learning rate of optimizer step `step` (0-based): linear warmup from lr/W to lr over W
    steps, then linear / cosine decay reaching min_lr exactly at the last step (step S-1), or
    constant. docs/config.md leaves the end point open; this is the trainer's documented
    choice (docs/training.md, "Schedule"), so the reference follows it."""
    steps, peak, floor = t["steps"], t["lr"], t["min_lr"]
    w = t["warmup"]
    warm = min(steps, int(w * steps + 0.5) if w < 1 else int(w))
    if step < warm:
        return peak * (step + 1) / warm
    if t["schedule"] == "constant":
        return peak
    span = steps - warm
    progress = 1.0 if span <= 1 else min(1.0, (step - warm) / (span - 1))
    if t["schedule"] == "linear":
        return floor + (peak - floor) * (1.0 - progress)
    if t["schedule"] == "cosine":
        return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"train.schedule: unknown {t['schedule']}")


# ----------------------------------------------------------------------------- operators

def layer_norm(x, w, b):
    # eps 1e-5, biased variance (docs/config.md: LN1/LN2/ln_f).
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * w + b


def gelu_tanh(x):
    # GPT-2's gelu_new (Hendrycks & Gimpel 2016, tanh approximation).
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def gelu_erf(x):
    # Exact GELU x * Phi(x) (GPT-NeoX / Pythia's "gelu"); ffn_act=gelu_exact.
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def leaky(x, slope):
    return torch.where(x > 0, x, slope * x)


def rotate_half(x):
    # GPT-NeoX layout: the rotated dims are split in two halves (x1, x2) -> (-x2, x1).
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def apply_rotary(x, rot, base):
    """x: [B, H, T, dk]; rotates the first `rot` dims of each head (RoFormer, Su et al. 2021)."""
    if rot == 0:
        return x
    T = x.shape[2]
    inv_freq = 1.0 / (base ** (torch.arange(0, rot, 2, dtype=torch.float64) / rot))
    pos = torch.arange(T, dtype=torch.float64)
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
    xr, xp = x[..., :rot], x[..., rot:]
    return torch.cat((xr * cos + rotate_half(xr) * sin, xp), dim=-1)


def _normalize(v):
    # torch.nn.functional.normalize's eps (as torch.nn.utils.spectral_norm uses it).
    return v / v.norm().clamp_min(1e-12)


# ----------------------------------------------------------------------------- model

class Linear:
    """A linear layer's description: name prefix, shape, and which AERO group owns each row
    block (qkv packs three sub-matrices: q and k in group qk, v in group v)."""

    def __init__(self, name, out, inp, subs, init_scale):
        self.name, self.out, self.inp = name, out, inp
        self.subs = subs  # list of (group, row_begin, row_end)
        self.init_scale = init_scale


class AeroRef:
    def __init__(self, model_cfg, dtype=torch.float32, device="cpu", fast_ops=False,
                 sdpa=False):
        """fast_ops: PyTorch's fused LayerNorm / GELU kernels instead of the formulas written
        out here (same math, checked by check_ref.py): used by the speed benchmark, which
        must be a fair peer. sdpa: scaled_dot_product_attention (torch >= 2.0; no
        temperature, no entropy regularizer, no attention probabilities)."""
        self.cfg = resolve_model_config(model_cfg)
        self.dtype, self.device = dtype, device
        self.fast_ops = fast_ops
        self.sdpa = sdpa
        if sdpa and (self.cfg["temperature"] or self.cfg["entropy_reg"]["enabled"]):
            raise ValueError("sdpa attention cannot apply a temperature or the entropy term")
        if sdpa and not hasattr(F, "scaled_dot_product_attention"):
            raise ValueError("sdpa attention needs torch >= 2.0")
        self.params = OrderedDict()   # name -> tensor (requires_grad)
        self.buffers = OrderedDict()  # name -> tensor (sn_u)
        self.decay = {}               # name -> bool (AdamW weight-decay group)
        self.linears = {}
        self._build()

    # -- structure

    def has_ffn(self, i):
        c = self.cfg
        return c["ffn_kind"] != "none" and (c["ffn_layers"] < 0 or i < c["ffn_layers"])

    def _param(self, name, shape, decay):
        self.params[name] = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.decay[name] = decay

    def _linear(self, name, out, inp, subs, init_scale=1.0):
        c = self.cfg
        lin = Linear(name, out, inp, subs, init_scale)
        groups = {g for g, _, _ in subs}
        lin.wn = groups & set(c["weight_norm"])
        lin.sn = groups & set(c["spectral_norm"])
        if lin.wn:
            self._param(name + ".weight_g", (out,), False)
            self._param(name + ".weight_v", (out, inp), True)
        else:
            self._param(name + ".weight", (out, inp), True)
        if lin.sn:
            self.buffers[name + ".sn_u"] = torch.zeros(
                (len(subs), subs[0][2] - subs[0][1]), dtype=self.dtype, device=self.device)
        if c["bias"]:
            self._param(name + ".bias", (out,), False)
        self.linears[name] = lin

    def _build(self):
        c = self.cfg
        L, H, d, T, V = c["n_layer"], c["n_head"], c["d_model"], c["context"], c["vocab_size"]
        out_scale = 1.0 / math.sqrt(2 * L)
        self._param("wte", (V, d), True)
        if c["family"] == "gpt2":
            self._param("wpe", (T, d), True)
        for i in range(L):
            p = f"blocks.{i}."
            if c["norm"] == "layernorm":
                self._param(p + "ln1.weight", (d,), False)
                self._param(p + "ln1.bias", (d,), False)
            self._linear(p + "attn.qkv", 3 * d, d,
                         [("qk", 0, d), ("qk", d, 2 * d), ("v", 2 * d, 3 * d)])
            self._linear(p + "attn.proj", d, d, [("o", 0, d)], out_scale)
            if c["temperature"]:
                self._param(p + "attn.temp", (H, T), False)
            if not self.has_ffn(i):
                continue
            if c["norm"] == "layernorm":
                self._param(p + "ln2.weight", (d,), False)
                self._param(p + "ln2.bias", (d,), False)
            if c["ffn_kind"] == "standard":
                self._linear(p + "ffn.fc", c["d_ff"], d, [("ffn", 0, c["d_ff"])])
                self._linear(p + "ffn.proj", d, c["d_ff"], [("ffn", 0, d)], out_scale)
                if c["ffn_act"] == "learnable_leaky_relu" and c["slope_scope"] == "per_layer":
                    self._param(p + "ffn.slope", (1,), False)
            else:
                self._linear(p + "ffn.fused", d, d, [("ffn", 0, d)], out_scale)
            if c["ffn_scaling"]:
                self._param(p + "ffn_scale.alpha", (1,), False)
                self._param(p + "ffn_scale.beta", (1,), False)
        if (c["ffn_act"] == "learnable_leaky_relu" and c["slope_scope"] == "global"
                and c["ffn_kind"] == "standard"):
            self._param("ffn_slope", (1,), False)
        if c["final_norm"]:
            self._param("ln_f.weight", (d,), False)
            self._param("ln_f.bias", (d,), False)
        if not c["tie_embeddings"]:
            self._param("lm_head.weight", (V, d), True)
        if c["entropy_reg"]["enabled"]:
            self._param("entropy_theta", (L, H), False)

    # -- initialisation (docs/config.md: N(0, init_std), output projections / sqrt(2L))

    def init_weights(self, seed):
        c = self.cfg
        g = torch.Generator().manual_seed(seed)

        def normal(shape, std):
            return (torch.randn(shape, generator=g, dtype=torch.float64) * std).to(self.dtype)

        std = c["init_std"]
        with torch.no_grad():
            for name, t in self.params.items():
                if name.endswith(".bias"):
                    t.zero_()
                elif ".ln" in name or name.startswith("ln_f"):
                    t.fill_(1.0)
                elif name.endswith("attn.temp"):
                    t0 = c["temperature_init"]
                    t.fill_(math.log(t0) if c["temperature_param"] == "exp" else t0)
                elif name == "entropy_theta":
                    t.fill_(c["entropy_reg"]["theta_init"])
                elif name.endswith("alpha"):
                    t.fill_(c["ffn_alpha_init"])
                elif name.endswith("beta"):
                    t.fill_(c["ffn_beta_init"])
                elif name.endswith("slope"):
                    t.fill_(c["leaky_slope"])
            for emb in ("wte", "wpe", "lm_head.weight"):
                if emb in self.params:
                    self.params[emb].copy_(normal(self.params[emb].shape, std))
            for lin in self.linears.values():
                s = std * lin.init_scale
                if lin.wn:
                    v = normal((lin.out, lin.inp), s)
                    self.params[lin.name + ".weight_v"].copy_(v)
                    self.params[lin.name + ".weight_g"].copy_(v.norm(dim=1))
                else:
                    self.params[lin.name + ".weight"].copy_(normal((lin.out, lin.inp), s))
                if lin.sn:
                    u = self.buffers[lin.name + ".sn_u"]
                    for r in range(u.shape[0]):
                        u[r] = _normalize(normal((u.shape[1],), 1.0))

    def requires_grad_(self):
        for t in self.params.values():
            t.requires_grad_(True)
        return self

    # -- effective weights

    def weight(self, lin, training):
        """The weight matrix used by the forward, after weight / spectral normalization."""
        P = self.params
        if lin.wn:
            g, v = P[lin.name + ".weight_g"], P[lin.name + ".weight_v"]
            wn = g[:, None] * v / v.norm(dim=1, keepdim=True)  # per output row, dim 0
            pieces = [wn[b:e] if grp in lin.wn else v[b:e] for grp, b, e in lin.subs]
            return torch.cat(pieces, 0) if len(pieces) > 1 else pieces[0]
        w = P[lin.name + ".weight"]
        if not lin.sn:
            return w
        u_all = self.buffers[lin.name + ".sn_u"]
        pieces = []
        for s, (grp, b, e) in enumerate(lin.subs):
            ws = w[b:e]
            if grp not in lin.sn:
                pieces.append(ws)
                continue
            # One power iteration per training forward (Miyato et al. 2018), u and v held
            # constant for the gradient, exactly like torch.nn.utils.spectral_norm.
            with torch.no_grad():
                u = u_all[s]
                v = _normalize(ws.detach().t() @ u)
                if training:
                    u = _normalize(ws.detach() @ v)
                    u_all[s] = u
            sigma = torch.dot(u, ws @ v)
            pieces.append(ws / sigma)
        return torch.cat(pieces, 0) if len(pieces) > 1 else pieces[0]

    def linear(self, x, name, training):
        lin = self.linears[name]
        b = self.params.get(name + ".bias")
        return F.linear(x, self.weight(lin, training), b)

    # -- layers

    def temperature(self, i, T):
        s = self.params[f"blocks.{i}.attn.temp"][:, :T]
        kind = self.cfg["temperature_param"]
        if kind == "exp":
            return torch.exp(s)
        if kind == "direct":
            return s
        if kind == "offset":
            return 1.0 + s
        raise ValueError(f"model.temperature_param: unknown {kind}")

    def attention(self, i, x, training):
        """Causal multi-head attention; returns (output [B,T,d], probs [B,H,T,T])."""
        c = self.cfg
        B, T, d = x.shape
        H = c["n_head"]
        dk = d // H
        qkv = self.linear(x, f"blocks.{i}.attn.qkv", training)
        q, k, v = qkv.split(d, dim=-1)
        q = q.view(B, T, H, dk).transpose(1, 2)
        k = k.view(B, T, H, dk).transpose(1, 2)
        v = v.view(B, T, H, dk).transpose(1, 2)
        if c["family"] == "pythia":
            rot = rotary_dims(c)
            q = apply_rotary(q, rot, c["rotary_base"])
            k = apply_rotary(k, rot, c["rotary_base"])
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            y = y.transpose(1, 2).reshape(B, T, d)
            return self.linear(y, f"blocks.{i}.attn.proj", training), None
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(dk)
        if c["temperature"]:
            scores = scores / self.temperature(i, T)[None, :, :, None]
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        y = (probs @ v).transpose(1, 2).reshape(B, T, d)
        return self.linear(y, f"blocks.{i}.attn.proj", training), probs

    def ffn(self, i, x, training):
        c = self.cfg
        p = f"blocks.{i}.ffn."
        if c["ffn_kind"] == "fused":
            return self.linear(x, p + "fused", training)
        h = self.linear(x, p + "fc", training)
        act = c["ffn_act"]
        if act == "gelu":
            h = F.gelu(h, approximate="tanh") if self.fast_ops else gelu_tanh(h)
        elif act == "gelu_exact":
            h = F.gelu(h) if self.fast_ops else gelu_erf(h)
        elif act == "relu":
            h = torch.relu(h)
        elif act == "leaky_relu":
            h = leaky(h, c["leaky_slope"])
        elif act == "learnable_leaky_relu":
            slope = self.params[p + "slope"] if c["slope_scope"] == "per_layer" \
                else self.params["ffn_slope"]
            h = leaky(h, slope)
        elif act != "identity":
            raise ValueError(f"model.ffn_act: unknown {act}")
        return self.linear(h, p + "proj", training)

    def norm(self, name, x):
        if self.cfg["norm"] != "layernorm":
            return x
        return self.layer_norm(x, name)

    def layer_norm(self, x, name):
        w, b = self.params[name + ".weight"], self.params[name + ".bias"]
        if self.fast_ops:
            return F.layer_norm(x, (x.shape[-1],), w, b, 1e-5)
        return layer_norm(x, w, b)

    def block(self, i, x, training):
        c = self.cfg
        p = f"blocks.{i}."
        a, probs = self.attention(i, self.norm(p + "ln1", x), training)
        x_hat = x + a
        if not self.has_ffn(i):
            return x_hat, probs
        f = self.ffn(i, self.norm(p + "ln2", x if c["parallel_residual"] else x_hat), training)
        if c["ffn_scaling"]:
            alpha, beta = self.params[p + "ffn_scale.alpha"], self.params[p + "ffn_scale.beta"]
            return beta * x_hat + f / alpha, probs
        return x_hat + f, probs

    def entropy_regularizer(self, probs_per_layer):
        """SPEC section 3: L_ent, penalty delta^2 outside the band |delta| <= gamma ln T."""
        er = self.cfg["entropy_reg"]
        L = len(probs_per_layer)
        theta = self.params["entropy_theta"]
        total = 0.0
        for l, a in enumerate(probs_per_layer):
            B, H, T, _ = a.shape
            e_max = math.log(T)
            ent = -(a * torch.log(a + 1e-9)).sum(-1)  # [B, H, T], one entropy per causal row
            delta = ent - theta[l][None, :, None] * e_max
            pen = torch.where(delta.abs() > er["gamma"] * e_max, delta * delta,
                              torch.zeros_like(delta))
            s = pen.sum() / H
            if er["reduction"] == "mean":
                s = s / (B * T)
            elif er["reduction"] != "sum":
                raise ValueError(f"model.entropy_reg.reduction: unknown {er['reduction']}")
            total = total + s
        return total / L

    def forward(self, tokens, targets=None, training=True):
        """tokens, targets: int64 [B, T]. Returns dict(logits, ce, ent_reg, loss, probs)."""
        c = self.cfg
        B, T = tokens.shape
        P = self.params
        x = P["wte"][tokens]
        if c["family"] == "gpt2":
            x = x + P["wpe"][:T][None]
        probs = []
        for i in range(c["n_layer"]):
            x, pr = self.block(i, x, training)
            probs.append(pr)
        if c["final_norm"]:
            x = self.layer_norm(x, "ln_f")
        head = P["wte"] if c["tie_embeddings"] else P["lm_head.weight"]
        logits = x @ head.t()
        out = {"logits": logits, "probs": probs}
        if targets is None:
            return out
        ce = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1))
        ent = torch.zeros((), dtype=logits.dtype)
        if c["entropy_reg"]["enabled"] and training:
            ent = self.entropy_regularizer(probs)
        out.update(ce=ce, ent_reg=ent, loss=ce + c["entropy_reg"]["lambda"] * ent)
        return out

    def head_entropy(self, probs):
        """Mean attention entropy per (layer, head) in nats (SPEC section 3)."""
        return [(-(a * torch.log(a + 1e-9)).sum(-1)).mean(dim=(0, 2)).tolist() for a in probs]


# ----------------------------------------------------------------------------- training

def make_adamw(model, t):
    """AdamW with two groups: decay on weight matrices and embeddings only (docs/config.md)."""
    decay = [p for n, p in model.params.items() if model.decay[n]]
    other = [p for n, p in model.params.items() if not model.decay[n]]
    groups = [{"params": decay, "weight_decay": t["weight_decay"]},
              {"params": other, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=t["lr"], betas=(t["beta1"], t["beta2"]), eps=t["eps"])


def train_step(model, opt, batches, lr, t):
    """One optimizer step over grad_accum micro-batches [(tokens, targets)]; returns stats.
    The loss reported is the mean over micro-batches; gradients are averaged the same way."""
    for g in opt.param_groups:
        g["lr"] = lr
    opt.zero_grad(set_to_none=False)
    stats = {"loss": 0.0, "ce": 0.0, "ent_reg": 0.0}
    n = len(batches)
    for tok, tgt in batches:
        out = model.forward(tok, tgt, training=True)
        (out["loss"] / n).backward()
        for k in stats:
            stats[k] += float(out[k]) / n
    params = list(model.params.values())
    if t["grad_clip"] > 0:
        gn = torch.nn.utils.clip_grad_norm_(params, t["grad_clip"])
    else:
        gn = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params))
    stats["grad_norm"] = float(gn)
    stats["lr"] = lr
    opt.step()
    return stats


def load_config_file(path):
    with open(path) as f:
        obj = json.load(f)
    m = resolve_model_config(obj.get("model", {}))
    return m, resolve_train_config(obj.get("train", {}), m)
