#!/usr/bin/env python3
"""Golden data for the transformer ops (include/prefopt/core/transformer_ops.hpp), from PyTorch and
Hugging Face transformers, for tests/backends/transformer_ops_torch_test.cpp.

    ops_make_reference.py [OUT_DIR]      (default OUT_DIR: tests/data/ops)

Writes one JSON file per op family. Every tensor is a flat list of float32 values (printed with 9
significant digits, which round-trips float32) in the row-major [tokens × features] layout the C++
ops use; integer lists are token ids / positions / segments. Gradients come from torch.autograd with
the given upstream gradient `dout`, in float32.

  layernorm.json  torch.nn.functional.layer_norm (biased variance, eps inside the sqrt):
                  x, w, b, out, dout, dx, dw, db;  T, C, eps
  rmsnorm.json    transformers' LlamaRMSNorm: x, w, out, dout, dx, dw;  T, C, eps
  gelu.json       transformers' NewGELUActivation (gelu_new) and F.gelu(approximate="tanh")
                  (gelu_pytorch_tanh): x, out_new, out_tanh, dout, dx
  rope.json       cases: transformers' LlamaRotaryEmbedding + apply_rotary_pos_emb at positions up
                  to 4000: heads, head_dim, base, positions, x, out, dout, dx (x is [T × heads·head_dim])
  attention.json  cases: F.scaled_dot_product_attention (float32 math on CPU) on rows of a packed
                  batch, key/value heads repeated as transformers' repeat_kv (query head h reads
                  kv head h // (Hq/Hkv)): is_causal=True for plain rows, or a boolean mask built
                  from the segment rule (prefix sharing) where "segment" is not all zero.
                  q, k, v, out, dout, dq, dk, dv in the packed [T × H·D] layout; row_offsets,
                  segment, q_heads, kv_heads, head_dim
  lm_head.json    torch.logsumexp / log_softmax over logits [rows × V]: logits, targets (−1 = none),
                  lse, logp (0 where target < 0), log_sum_sq = log Σ p², entropy = −Σ p log p,
                  mean_logit, dlogp, dlogits = d(Σ dlogp·logp)/dlogits

Deterministic: fixed seeds, one thread. Needs torch and transformers (tools/reference/README.md).
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from transformers import LlamaConfig
from transformers.activations import NewGELUActivation
from transformers.models.llama.modeling_llama import LlamaRMSNorm, LlamaRotaryEmbedding, apply_rotary_pos_emb


def flat(t):
    return [float("%.9g" % v) for v in t.detach().to(torch.float32).reshape(-1).tolist()]


def write(out_dir, name, payload):
    path = os.path.join(out_dir, name)
    with open(path, "w") as f:
        json.dump(payload, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def layernorm(g):
    T, C, eps = 6, 48, 1e-5
    x = (torch.randn(T, C, generator=g) * 2.0 + 0.5).requires_grad_()
    w = (1.0 + 0.3 * torch.randn(C, generator=g)).requires_grad_()
    b = (0.2 * torch.randn(C, generator=g)).requires_grad_()
    out = F.layer_norm(x, (C,), w, b, eps)
    dout = torch.randn(T, C, generator=g)
    out.backward(dout)
    return {"source": "torch.nn.functional.layer_norm", "T": T, "C": C, "eps": eps, "x": flat(x), "w": flat(w),
            "b": flat(b), "out": flat(out), "dout": flat(dout), "dx": flat(x.grad), "dw": flat(w.grad),
            "db": flat(b.grad)}


def rmsnorm(g):
    T, C, eps = 6, 48, 1e-6
    norm = LlamaRMSNorm(C, eps=eps)
    with torch.no_grad():
        norm.weight.copy_(1.0 + 0.3 * torch.randn(C, generator=g))
    x = (torch.randn(T, C, generator=g) * 1.5).requires_grad_()
    out = norm(x)
    dout = torch.randn(T, C, generator=g)
    out.backward(dout)
    return {"source": "transformers.models.llama.modeling_llama.LlamaRMSNorm", "T": T, "C": C, "eps": eps,
            "x": flat(x), "w": flat(norm.weight), "out": flat(out), "dout": flat(dout), "dx": flat(x.grad),
            "dw": flat(norm.weight.grad)}


def gelu(g):
    x = torch.cat([torch.linspace(-8.0, 8.0, 161), 3.0 * torch.randn(95, generator=g),
                   torch.tensor([0.0, 1e-6, -1e-6, 20.0, -20.0])]).requires_grad_()
    out_new = NewGELUActivation()(x)
    out_tanh = F.gelu(x, approximate="tanh")
    dout = torch.randn(x.shape, generator=g)
    out_new.backward(dout)
    return {"source": "transformers.activations.NewGELUActivation (gelu_new); F.gelu(approximate='tanh')",
            "x": flat(x), "out_new": flat(out_new), "out_tanh": flat(out_tanh), "dout": flat(dout),
            "dx": flat(x.grad)}


def rope(g):
    cases = []
    for heads, head_dim, base in [(1, 64, 10000.0), (1, 128, 500000.0), (1, 96, 10000.0), (3, 16, 1000000.0)]:
        positions = [0, 1, 2, 7, 100, 511, 1000, 1999, 2048, 3001, 3999, 4000]
        T = len(positions)
        config = LlamaConfig(hidden_size=heads * head_dim, num_attention_heads=heads, num_key_value_heads=heads,
                             head_dim=head_dim, rope_parameters={"rope_type": "default", "rope_theta": base})
        emb = LlamaRotaryEmbedding(config)
        x = torch.randn(1, T, heads, head_dim, generator=g).requires_grad_()
        pos = torch.tensor([positions])
        cos, sin = emb(x, pos)                       # [1, T, D]
        out, _ = apply_rotary_pos_emb(x, x, cos, sin, unsqueeze_dim=2)  # x as [1, T, H, D]
        dout = torch.randn(out.shape, generator=g)
        out.backward(dout)
        cases.append({"heads": heads, "head_dim": head_dim, "base": base, "positions": positions, "x": flat(x),
                      "out": flat(out), "dout": flat(dout), "dx": flat(x.grad)})
    return {"source": "transformers LlamaRotaryEmbedding + apply_rotary_pos_emb", "cases": cases}


def visible(segment):
    L = len(segment)
    m = torch.zeros(L, L, dtype=torch.bool)
    for i in range(L):
        for j in range(i + 1):
            m[i, j] = segment[i] >= 0 and (segment[j] == segment[i] or segment[j] == 0)
    return m


def attention(g):
    cases = []
    layouts = [
        ([12, 7], [0] * 19),                                   # two plain causal rows
        ([16], [0] * 6 + [1] * 5 + [2] * 5),                   # prompt + chosen + rejected in one row
        ([9, 10], [0] * 3 + [1] * 3 + [2] * 3 + [0] * 4 + [1] * 2 + [2] * 4),
    ]
    for (q_heads, kv_heads, head_dim) in [(4, 4, 8), (4, 2, 8), (8, 2, 4)]:
        for lengths, segment in layouts:
            T = sum(lengths)
            offsets = [0]
            for L in lengths:
                offsets.append(offsets[-1] + L)
            q = torch.randn(T, q_heads, head_dim, generator=g).requires_grad_()
            k = torch.randn(T, kv_heads, head_dim, generator=g).requires_grad_()
            v = torch.randn(T, kv_heads, head_dim, generator=g).requires_grad_()
            outs = []
            for r in range(len(lengths)):
                a, b = offsets[r], offsets[r + 1]
                seg = segment[a:b]
                qr = q[a:b].transpose(0, 1)[None]                      # [1, Hq, L, D]
                rep = q_heads // kv_heads                              # transformers' repeat_kv
                kr = k[a:b].transpose(0, 1)[None].repeat_interleave(rep, dim=1)
                vr = v[a:b].transpose(0, 1)[None].repeat_interleave(rep, dim=1)
                if all(s == 0 for s in seg):
                    o = F.scaled_dot_product_attention(qr, kr, vr, is_causal=True)
                else:
                    o = F.scaled_dot_product_attention(qr, kr, vr, attn_mask=visible(seg))
                outs.append(o[0].transpose(0, 1))                      # [L, Hq, D]
            out = torch.cat(outs, 0)
            dout = torch.randn(out.shape, generator=g)
            out.backward(dout)
            cases.append({"q_heads": q_heads, "kv_heads": kv_heads, "head_dim": head_dim, "row_offsets": offsets,
                          "segment": segment, "q": flat(q), "k": flat(k), "v": flat(v), "out": flat(out),
                          "dout": flat(dout), "dq": flat(q.grad), "dk": flat(k.grad), "dv": flat(v.grad)})
    return {"source": "torch.nn.functional.scaled_dot_product_attention (CPU, float32)", "cases": cases}


def lm_head(g):
    rows, V = 5, 1000
    logits = (3.0 * torch.randn(rows, V, generator=g))
    logits[1] += 200.0                                       # large offset: needs the max shift
    logits[2, 17] = 40.0                                     # a peaked row
    logits = logits.requires_grad_()
    targets = torch.tensor([3, 17, 17, -1, 999])
    logp_all = torch.log_softmax(logits, dim=-1)
    lse = torch.logsumexp(logits, dim=-1)
    safe = targets.clamp(min=0)
    logp = torch.where(targets >= 0, logp_all.gather(1, safe[:, None])[:, 0], torch.zeros(rows))
    p = logp_all.exp()
    log_sum_sq = torch.log((p * p).sum(-1))
    entropy = -(p * logp_all).sum(-1)
    mean_logit = logits.mean(-1)
    dlogp = torch.randn(rows, generator=g)
    (dlogp * logp).sum().backward()
    return {"source": "torch.logsumexp, torch.log_softmax", "rows": rows, "V": V, "logits": flat(logits),
            "targets": targets.tolist(), "lse": flat(lse), "logp": flat(logp), "log_sum_sq": flat(log_sum_sq),
            "entropy": flat(entropy), "mean_logit": flat(mean_logit), "dlogp": flat(dlogp),
            "dlogits": flat(logits.grad)}


def main():
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "ops")
    out_dir = os.path.normpath(sys.argv[1] if len(sys.argv) > 1 else default)
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    for name, fn, seed in [("layernorm.json", layernorm, 1), ("rmsnorm.json", rmsnorm, 2), ("gelu.json", gelu, 3),
                           ("rope.json", rope, 4), ("attention.json", attention, 5), ("lm_head.json", lm_head, 6)]:
        g = torch.Generator().manual_seed(seed)
        payload = fn(g)
        payload["torch"] = torch.__version__.split("+")[0]
        write(out_dir, name, payload)


if __name__ == "__main__":
    main()
