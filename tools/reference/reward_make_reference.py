#!/usr/bin/env python3
"""Golden data for prefopt's reward models (tests/models/reward_model_test.cpp).

For each golden causal LM in tests/data/models/{gpt2,llama,qwen2}, builds the Hugging Face
*ForSequenceClassification model with num_labels=1 on the same body (the new score head drawn
from a fixed seed, then enlarged so it matters), a pad_token_id, and saves it to
tests/data/reward/<arch>/ (config.json + model.safetensors). For a few right-padded sequences
(with pad tokens inside a sequence too, which transformers counts as padding when they are the
last ones only) it records the scores, and for TRL's RewardTrainer loss on pairs of them (margins
and center_rewards_coefficient set) the loss and every parameter's gradient (grads.safetensors).

Mode `--check DIR`: loads the reward model prefopt saved in DIR with
AutoModelForSequenceClassification, scores the sequences of DIR/prefopt_scores.json and compares
them with the scores prefopt wrote there (1e-4); writes DIR/transformers_check.json. With
`--base BASE`, DIR is a PEFT SEQ_CLS adapter (LoRA + score head) loaded onto BASE.

Run: python3 tools/reference/reward_make_reference.py  (writes tests/data/reward/)
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "..", "tests", "data", "models")
OUT = os.path.join(HERE, "..", "..", "tests", "data", "reward")
PAD = {"gpt2": 300, "llama": 0, "qwen2": 5}
CENTER = 0.01


def sequences(vocab, pad, seed):
    """Six sequences (three chosen, then three rejected), right-padded to one width."""
    g = torch.Generator().manual_seed(seed)
    lengths = [7, 4, 9, 5, 8, 3]
    rows = []
    for n in lengths:
        ids = torch.randint(0, vocab, (n,), generator=g).tolist()
        ids = [t if t != pad else (t + 1) % vocab for t in ids]
        rows.append(ids)
    rows[1][1] = pad  # a pad token inside a sequence: still scored after it
    width = max(lengths) + 2
    return [r + [pad] * (width - len(r)) for r in rows], lengths


def scores(model, rows, lengths):
    """Right padding is masked by length; a pad token inside a sequence is attended as TRL's collator does."""
    ids = torch.tensor(rows)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    return model(input_ids=ids, attention_mask=mask).logits.squeeze(-1)


def bt_loss(r, margin, n):
    rc, rr = r[:n], r[n:]
    loss = -F.logsigmoid(rc - rr - margin).mean()
    return loss + CENTER * torch.mean((rc + rr) ** 2)


def generate():
    from transformers import AutoModelForSequenceClassification
    summary = {}
    for k, arch in enumerate(["gpt2", "llama", "qwen2"]):
        torch.manual_seed(500 + k)
        model = AutoModelForSequenceClassification.from_pretrained(
            os.path.join(MODELS, arch), num_labels=1, pad_token_id=PAD[arch], attn_implementation="eager").float()
        with torch.no_grad():
            model.score.weight.normal_(0.0, 0.5)
        model.eval()
        d = os.path.join(OUT, arch)
        model.save_pretrained(d, safe_serialization=True)
        for extra in ("generation_config.json", "README.md"):
            if os.path.exists(os.path.join(d, extra)):
                os.remove(os.path.join(d, extra))
        rows, lengths = sequences(model.config.vocab_size, PAD[arch], 70 + k)
        n = len(rows) // 2
        margin = torch.tensor([0.5, -0.25, 1.0])
        model.zero_grad()
        r = scores(model, rows, lengths)
        loss = bt_loss(r, margin, n)
        loss.backward()
        grads = {name: p.grad.detach().float().contiguous().clone()
                 for name, p in model.named_parameters() if p.grad is not None}
        save_file(grads, os.path.join(d, "grads.safetensors"))
        rec = {"pad_token_id": PAD[arch], "sequences": rows, "lengths": lengths, "scores": r.detach().double().tolist(),
               "margin": margin.tolist(), "center_rewards_coefficient": CENTER, "loss": loss.item()}
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump(rec, f, indent=1)
        summary[arch] = loss.item()
    print(json.dumps(summary, indent=1))


def check(d, base=None):
    from transformers import AutoModelForSequenceClassification
    with open(os.path.join(d, "prefopt_scores.json")) as f:
        rec = json.load(f)
    if base is None:
        model = AutoModelForSequenceClassification.from_pretrained(d, attn_implementation="eager").float().eval()
    else:  # a PEFT SEQ_CLS adapter on a base model; the pad token prefopt used
        from peft import PeftModel
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, attn_implementation="eager").float()
        model.config.pad_token_id = rec["pad_token_id"]
        model = PeftModel.from_pretrained(model, d).eval()
    pad = model.config.pad_token_id
    with torch.no_grad():
        got = []
        for row in rec["sequences"]:  # one at a time: no padding needed
            got.append(scores(model, [row], [len(row)]).item())
    err = max(abs(a - b) for a, b in zip(got, rec["scores"]))
    out = {"architectures": model.config.architectures, "num_labels": model.config.num_labels, "peft_base": base,
           "pad_token_id": pad, "transformers_scores": got, "max_abs_error": err, "ok": err < 1e-4}
    with open(os.path.join(d, "transformers_check.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", help="a reward model directory prefopt wrote (with prefopt_scores.json)")
    ap.add_argument("--base", help="with --check: DIR is a PEFT adapter for this base model")
    a = ap.parse_args()
    sys.exit(check(a.check, a.base) if a.check else generate())
