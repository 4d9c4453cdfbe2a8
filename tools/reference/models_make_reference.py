#!/usr/bin/env python3
"""Golden data for prefopt's transformer parity tests (tests/models/transformer_parity_test.cpp).

Builds small random GPT-2, Llama and Qwen2 models with Hugging Face transformers, saves them as
model directories (config.json + model.safetensors), and records for fixed token batches:
  - per-sequence completion log-probs (sum over completion tokens of log softmax),
  - TRL's sigmoid DPO loss (beta 0.1) against fixed reference log-probs,
  - the gradient of that loss for every parameter (grads.safetensors, Hugging Face names),
and the same with PEFT LoRA adapters (random A and B so they matter), whose adapter directory and
gradients (adapter naming, without PEFT's ".default") are saved too.

Mode `--check-adapter DIR`: loads a LoRA adapter that prefopt wrote into PEFT on top of the base
model in DIR/.., computes the log-probs there and compares them with DIR/prefopt_logps.json;
writes DIR/peft_check.json.

Run: python3 tools/reference/models_make_reference.py  (writes tests/data/models/)
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "models")
BETA = 0.1

# prompt, chosen, rejected lengths of the fixed pairs
LENGTHS = [(5, 4, 3), (3, 6, 5), (7, 2, 6)]


def configs():
    from transformers import GPT2Config, LlamaConfig, Qwen2Config
    return {
        "gpt2": GPT2Config(vocab_size=301, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                           resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0),
        "llama": LlamaConfig(vocab_size=293, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, intermediate_size=48, max_position_embeddings=128,
                             rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False),
        "qwen2": Qwen2Config(vocab_size=307, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, intermediate_size=40, max_position_embeddings=128,
                             rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True),
    }


LORA_TARGETS = {"gpt2": ["c_attn", "c_proj"], "llama": ["q_proj", "v_proj", "o_proj", "gate_proj"],
                "qwen2": ["q_proj", "k_proj", "down_proj"]}


def make_pairs(vocab, seed):
    g = torch.Generator().manual_seed(seed)
    pairs = []
    for p, c, r in LENGTHS:
        ids = lambda n: torch.randint(0, vocab, (n,), generator=g).tolist()
        pairs.append({"prompt": ids(p), "chosen": ids(c), "rejected": ids(r)})
    return pairs


def sequence_logps(model, pairs):
    """Two rows per pair (prompt + chosen, prompt + rejected), right-padded; chosen rows first."""
    rows = [(p["prompt"], p["chosen"]) for p in pairs] + [(p["prompt"], p["rejected"]) for p in pairs]
    width = max(len(a) + len(b) for a, b in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    comp = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, (a, b) in enumerate(rows):
        n = len(a) + len(b)
        ids[i, :n] = torch.tensor(a + b)
        mask[i, :n] = 1
        comp[i, len(a):n] = True
    logits = model(input_ids=ids, attention_mask=mask).logits.float()
    logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return (logp * comp[:, 1:]).sum(-1)


def dpo_loss(logps, ref, n):
    pc, pr = logps[:n], logps[n:]
    rc, rr = ref[:n], ref[n:]
    return -F.logsigmoid(BETA * ((pc - rc) - (pr - rr))).mean()


def build(name, cfg, seed):
    from transformers import AutoModelForCausalLM
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float()
    with torch.no_grad():  # larger weights than the default 0.02 so every term matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.eval()
    return model


def grads_by_name(model, strip_default=False):
    out = {}
    for n, p in model.named_parameters():
        if p.grad is None:
            continue
        key = n.replace(".default", "") if strip_default else n
        out[key] = p.grad.detach().float().contiguous().clone()
    return out


def main_generate():
    from peft import LoraConfig, get_peft_model
    os.makedirs(OUT, exist_ok=True)
    summary = {}
    for k, (name, cfg) in enumerate(configs().items()):
        model = build(name, cfg, 100 + k)
        d = os.path.join(OUT, name)
        model.save_pretrained(d, safe_serialization=True)
        pairs = make_pairs(cfg.vocab_size, 7 + k)
        n = len(pairs)
        with torch.no_grad():
            base = sequence_logps(model, pairs)
        g = torch.Generator().manual_seed(1000 + k)
        ref = (base + torch.randn(base.shape, generator=g) * 2.0).double()
        model.zero_grad()
        logps = sequence_logps(model, pairs)
        loss = dpo_loss(logps.double(), ref, n)
        loss.backward()
        save_file(grads_by_name(model), os.path.join(d, "grads.safetensors"))
        rec = {"pairs": pairs, "beta": BETA, "reference_logps": ref.tolist(), "logps": logps.detach().double().tolist(),
               "loss": loss.item()}
        # LoRA on top of the same base weights
        lcfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=LORA_TARGETS[name],
                          init_lora_weights=False, task_type="CAUSAL_LM",
                          fan_in_fan_out=(name == "gpt2"))
        torch.manual_seed(200 + k)
        peft_model = get_peft_model(model, lcfg)
        peft_model.eval()
        ld = os.path.join(OUT, name + "_lora")
        peft_model.save_pretrained(ld)
        for extra in ("README.md",):
            if os.path.exists(os.path.join(ld, extra)):
                os.remove(os.path.join(ld, extra))
        peft_model.zero_grad()
        llogps = sequence_logps(peft_model, pairs)
        lloss = dpo_loss(llogps.double(), ref, n)
        lloss.backward()
        save_file(grads_by_name(peft_model, strip_default=True), os.path.join(ld, "grads.safetensors"))
        with torch.no_grad(), peft_model.disable_adapter():
            disabled = sequence_logps(peft_model, pairs)
        rec["lora"] = {"r": 4, "alpha": 8, "target_modules": LORA_TARGETS[name], "logps": llogps.detach().double().tolist(),
                       "loss": lloss.item(), "adapters_disabled_logps": disabled.double().tolist()}
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump(rec, f, indent=1)
        summary[name] = {"loss": rec["loss"], "lora_loss": rec["lora"]["loss"]}
    print(json.dumps(summary, indent=1))


def main_check(adapter_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    with open(os.path.join(adapter_dir, "prefopt_logps.json")) as f:
        want = json.load(f)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    base = AutoModelForCausalLM.from_pretrained(os.path.join(root, want["base_model_dir"]),
                                                attn_implementation="eager").float().eval()
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    with torch.no_grad():
        got = sequence_logps(model, want["pairs"]).double()
    diff = (got - torch.tensor(want["logps"], dtype=torch.float64)).abs().max().item()
    res = {"peft_logps": got.tolist(), "prefopt_logps": want["logps"], "max_abs_diff": diff}
    with open(os.path.join(adapter_dir, "peft_check.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-adapter")
    a = ap.parse_args()
    if a.check_adapter:
        main_check(a.check_adapter)
    else:
        main_generate()
