#!/usr/bin/env python3
"""Small inputs for the command line tests (tests/cli/): a GPT-2-shaped model whose vocabulary is
the test GPT-2 tokenizer's (tests/data/tokenizer/gpt2), and preference datasets in TRL's formats.

Writes tests/data/cli/:
  gpt2_text/      config.json, model.safetensors (random, seeded), tokenizer_config.json
  pairs_text.jsonl        standard format (prompt / chosen / rejected strings), with one malformed line
  pairs_tokenized.jsonl   pre-tokenized ids for tests/data/models/gpt2 (vocab 301), with one bad line
Run: python3 tools/reference/cli_make_data.py
"""
import json
import os
import random

import torch
from transformers import GPT2Config, GPT2LMHeadModel

HERE = os.path.dirname(__file__)
OUT = os.path.join(HERE, "..", "..", "tests", "data", "cli")


def main():
    os.makedirs(OUT, exist_ok=True)
    tok = json.load(open(os.path.join(HERE, "..", "..", "tests", "data", "tokenizer", "gpt2", "tokenizer.json")))
    vocab = max(max(tok["model"]["vocab"].values()), max(a["id"] for a in tok["added_tokens"])) + 1
    torch.manual_seed(3)
    cfg = GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=128, resid_pdrop=0.0,
                     embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=vocab - 1, eos_token_id=vocab - 1)
    model = GPT2LMHeadModel(cfg)
    d = os.path.join(OUT, "gpt2_text")
    model.save_pretrained(d, safe_serialization=True)
    if os.path.exists(os.path.join(d, "generation_config.json")):
        os.remove(os.path.join(d, "generation_config.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "model_max_length": 128}, f, indent=1)

    rng = random.Random(7)
    subjects = ["the movie", "this book", "the service", "our trip", "the food", "that song"]
    good = ["was wonderful", "felt delightful", "was a joy", "made us happy", "was excellent"]
    bad = ["was awful", "felt boring", "was a mess", "made us sad", "was terrible"]
    with open(os.path.join(OUT, "pairs_text.jsonl"), "w") as f:
        for i in range(48):
            s = rng.choice(subjects)
            f.write(json.dumps({"prompt": f"Review {i}: {s}", "chosen": " " + rng.choice(good) + ".",
                                "rejected": " " + rng.choice(bad) + "."}) + "\n")
            if i == 20:
                f.write('{"prompt": "broken line", "chosen": \n')
    with open(os.path.join(OUT, "pairs_tokenized.jsonl"), "w") as f:
        for i in range(24):
            ids = lambda n: [rng.randrange(0, 301) for _ in range(n)]
            f.write(json.dumps({"prompt_input_ids": ids(rng.randint(3, 8)), "chosen_input_ids": ids(rng.randint(2, 6)),
                                "rejected_input_ids": ids(rng.randint(2, 6))}) + "\n")
            if i == 10:
                f.write(json.dumps({"prompt_input_ids": [1, 2], "chosen_input_ids": "oops", "rejected_input_ids": [3]}) + "\n")


if __name__ == "__main__":
    main()
