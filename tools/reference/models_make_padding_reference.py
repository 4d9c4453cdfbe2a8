#!/usr/bin/env python3
"""Golden data for the embedding padding row (tests/models/embedding_padding_test.cpp).

Llama, Qwen2 and Mistral build their token embedding as nn.Embedding(vocab, hidden,
padding_idx=config.pad_token_id): the lookup's gradient of that row is zero, while a tied LM head's
gradient still reaches it. This loads the golden Llama (untied head) and Qwen2 (tied head) models of
tests/data/models/ with pad_token_id set, so transformers builds them with that padding_idx, takes
the pairs of their reference.json with the pad id written over some input tokens (prompt and
completion, so it is also a predicted token once), and records one DPO step (TRL's sigmoid loss,
the recorded reference log-probs): log-probs, loss, and the gradients of the token embedding and
of an untied LM head.

Run: python3 tools/reference/models_make_padding_reference.py  (writes tests/data/models/<arch>/padding.*)
Needs torch, transformers and safetensors.
"""
import json
import os

import torch
from safetensors.torch import save_file

import models_make_reference as base

PAD = {"llama": 17, "qwen2": 23}


def with_pad(pairs, pad):
    """The pad id over: pair 0's second prompt token, pair 1's first chosen token (an input for the
    next prediction and a predicted token itself), pair 2's first prompt and first rejected tokens."""
    out = json.loads(json.dumps(pairs))
    out[0]["prompt"][1] = pad
    out[1]["chosen"][0] = pad
    out[2]["prompt"][0] = pad
    out[2]["rejected"][0] = pad
    return out


def main():
    from transformers import AutoModelForCausalLM
    summary = {}
    for name, pad in PAD.items():
        d = os.path.join(base.OUT, name)
        with open(os.path.join(d, "reference.json")) as f:
            ref = json.load(f)
        model = AutoModelForCausalLM.from_pretrained(d, pad_token_id=pad, attn_implementation="eager").float().eval()
        emb = model.get_input_embeddings()
        assert emb.padding_idx == pad, emb.padding_idx
        pairs = with_pad(ref["pairs"], pad)
        n = len(pairs)
        model.zero_grad()
        logps = base.sequence_logps(model, pairs)
        loss = base.dpo_loss(logps.double(), torch.tensor(ref["reference_logps"], dtype=torch.float64), n)
        loss.backward()
        grads = {"model.embed_tokens.weight": emb.weight.grad.detach().float().contiguous().clone()}
        if not model.config.tie_word_embeddings:
            grads["lm_head.weight"] = model.lm_head.weight.grad.detach().float().contiguous().clone()
            assert grads["model.embed_tokens.weight"][pad].abs().max().item() == 0.0
        else:
            assert grads["model.embed_tokens.weight"][pad].abs().max().item() > 0.0
        save_file(grads, os.path.join(d, "padding_grads.safetensors"))
        rec = {"pad_token_id": pad, "pairs": pairs, "beta": ref["beta"], "reference_logps": ref["reference_logps"],
               "logps": logps.detach().double().tolist(), "loss": loss.item(),
               "tie_word_embeddings": bool(model.config.tie_word_embeddings)}
        with open(os.path.join(d, "padding.json"), "w") as f:
            json.dump(rec, f, indent=1)
        summary[name] = {"loss": rec["loss"], "pad_row_grad_norm": grads["model.embed_tokens.weight"][pad].norm().item()}
    # torch's own rule for a negative padding_idx (the C++ config counts it the same way)
    e = torch.nn.Embedding(10, 2, padding_idx=-1)
    summary["negative_padding_idx_-1_of_10"] = e.padding_idx
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
