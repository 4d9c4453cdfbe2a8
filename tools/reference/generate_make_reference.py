#!/usr/bin/env python3
"""Golden data for prefopt's generation tests (tests/models/generate_test.cpp, sampling_test.cpp).

For the tiny GPT-2, Llama and Qwen2 checkpoints of tests/data/models (and Llama with its PEFT LoRA
adapter), records transformers' greedy continuations, `generate(do_sample=False)`, of the fixed
prompts (one prompt per call, so no padding is involved), plain and with repetition_penalty 1.3;
no end token (eos disabled), max_new_tokens 24. Also, for one fixed row of random logits, what
each of transformers' logits processors makes of it: RepetitionPenaltyLogitsProcessor,
TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper, MinPLogitsWarper (removed = -inf,
written as null).

Run: python3 tools/reference/generate_make_reference.py  (writes tests/data/generate/)
Needs torch, transformers and peft.
"""
import json
import math
import os

import torch
from transformers import AutoModelForCausalLM
from transformers.generation.logits_process import (MinPLogitsWarper, RepetitionPenaltyLogitsProcessor,
                                                    TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "..", "tests", "data", "models")
OUT = os.path.join(HERE, "..", "..", "tests", "data", "generate")
MAX_NEW = 24


def greedy(model, prompt, penalty):
    ids = torch.tensor([prompt])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=MAX_NEW,
                         min_new_tokens=MAX_NEW, repetition_penalty=penalty, eos_token_id=None, pad_token_id=0,
                         num_beams=1, top_k=None, top_p=None, temperature=None)
    return out[0, len(prompt):].tolist()


def prompts_of(arch):
    with open(os.path.join(MODELS, arch, "reference.json")) as f:
        ref = json.load(f)
    return [p["prompt"] for p in ref["pairs"]] + [[ref["pairs"][0]["prompt"][0]]], ref


def cases():
    out = {}
    for arch in ["gpt2", "llama", "qwen2"]:
        model = AutoModelForCausalLM.from_pretrained(os.path.join(MODELS, arch), torch_dtype=torch.float32).eval()
        model.generation_config.eos_token_id = None
        prompts, ref = prompts_of(arch)
        out[arch] = {"prompts": prompts,
                     "greedy": [greedy(model, p, 1.0) for p in prompts],
                     "greedy_repetition_penalty_1.3": [greedy(model, p, 1.3) for p in prompts]}
        if arch == "llama":
            from peft import PeftModel
            lm = PeftModel.from_pretrained(model, os.path.join(MODELS, arch + "_lora")).eval()
            out[arch + "_lora"] = {"prompts": prompts, "lora": {k: ref["lora"][k] for k in ("r", "alpha", "target_modules")},
                                   "greedy": [greedy(lm, p, 1.0) for p in prompts]}
    return out


def processors():
    g = torch.Generator().manual_seed(7)
    z = (torch.randn(1, 12, generator=g) * 2.0).float()
    ids = torch.tensor([[3, 5, 5, 0]])
    res = {"logits": z[0].tolist(), "input_ids": ids[0].tolist(), "cases": []}

    def rec(name, param, proc):
        y = proc(ids, z.clone())[0].tolist()
        res["cases"].append({"processor": name, "param": param, "out": [None if math.isinf(v) else v for v in y]})

    for p in [1.3, 0.7]:
        rec("repetition_penalty", p, RepetitionPenaltyLogitsProcessor(p))
    for t in [0.5, 2.0]:
        rec("temperature", t, TemperatureLogitsWarper(t))
    for k in [1, 3, 5]:
        rec("top_k", k, TopKLogitsWarper(k))
    for p in [0.1, 0.5, 0.9]:
        rec("top_p", p, TopPLogitsWarper(p))
    for p in [0.05, 0.2, 0.6]:
        rec("min_p", p, MinPLogitsWarper(p))
    return res


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "greedy.json"), "w") as f:
        json.dump(cases(), f, indent=1)
    with open(os.path.join(OUT, "processors.json"), "w") as f:
        json.dump(processors(), f, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
