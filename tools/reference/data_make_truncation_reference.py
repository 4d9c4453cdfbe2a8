#!/usr/bin/env python3
"""Golden rows for the truncation modes (tests/data/collate_test.cpp), from TRL's own code.

TRL 1.16's DPOTrainer._prepare_dataset (called unbound with a stub self, as
data_make_collate_reference.py does) tokenizes the pairs and, with truncation_mode keep_start,
drops those whose prompt alone has max_length tokens or more; then TRL's DataCollatorForPreference,
given one example at a time (its two rows unpadded with the attention mask), cuts each row prompt + completion to its first
(keep_start) or last (keep_end) max_length tokens. Written per case and input line: whether TRL
kept the pair, and its two rows (input_ids) with their completion masks.

The tokenizers are tests/data/tokenizer/{gpt2,qwen2}/tokenizer.json as PreTrainedTokenizerFast with
eos_token <|endoftext|>. The pairs (tests/data/collate/truncation_pairs.jsonl, written here) are
text pairs whose prompts and completions straddle max_length: a prompt that alone fills it, a long
chosen beside a short rejected, completions longer than max_length, a pair that fits.

Writes tests/data/collate/truncation_pairs.jsonl and truncation_trl.json.
Deterministic; rerun with python3 tools/reference/data_make_truncation_reference.py
(made with trl 1.16.0, transformers 5.25.0, datasets 5.2.0; see tools/reference/README.md).
"""
import json
import logging
import os
import types
from pathlib import Path

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import datasets  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402
from trl.trainer.dpo_trainer import DataCollatorForPreference, DPOTrainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "collate"
TOKENIZERS = ROOT / "tests" / "data" / "tokenizer"

datasets.disable_progress_bars()
logging.getLogger("trl").setLevel(logging.ERROR)
transformers.logging.set_verbosity_error()

WORDS = ("the quick brown fox jumps over a lazy dog while seven small birds sing about rivers mountains "
         "and distant cities full of light").split()


def words(n, start=0):
    return " ".join(WORDS[(start + i) % len(WORDS)] for i in range(n))


PAIRS = [
    {"prompt": "Say hi.", "chosen": " Hi!", "rejected": " No."},                                  # fits
    {"prompt": words(40), "chosen": " yes", "rejected": " no"},                                   # prompt fills max_length
    {"prompt": words(5, 3), "chosen": " " + words(20, 5), "rejected": " short"},                  # long chosen, short rejected
    {"prompt": words(4, 7), "chosen": " " + words(15, 1), "rejected": " " + words(15, 9)},        # both long
    {"prompt": "Question:", "chosen": " " + words(40, 2), "rejected": " " + words(6, 4)},         # chosen longer than max_length
    {"prompt": words(8, 11), "chosen": " " + words(4, 2), "rejected": " " + words(4, 8)},         # equal completions, long prompt
    {"prompt": words(9, 4), "chosen": " " + words(5, 6), "rejected": " " + words(5, 6)},          # prompt near max_length
]
MAX_LENGTH = 24
EOS = "<|endoftext|>"


def make_tokenizer(name):
    return PreTrainedTokenizerFast(tokenizer_file=str(TOKENIZERS / name / "tokenizer.json"), eos_token=EOS, pad_token=EOS)


def rows(tok, mode):
    args = types.SimpleNamespace(dataset_num_proc=None, max_length=MAX_LENGTH, truncation_mode=mode)
    dataset = Dataset.from_list([dict(p, line=i + 1) for i, p in enumerate(PAIRS)])
    prepared = DPOTrainer._prepare_dataset(types.SimpleNamespace(_tokenizer=tok), dataset, tok, args, "train")
    collate = DataCollatorForPreference(pad_token_id=tok.pad_token_id, max_length=MAX_LENGTH, truncation_mode=mode)
    kept = {}
    for example in prepared:
        ex = {"prompt_ids": example["prompt_ids"], "chosen_ids": example["chosen_ids"], "rejected_ids": example["rejected_ids"]}
        out = collate([ex])
        n = out["attention_mask"].sum(dim=1).tolist()  # the two rows are padded to one width: unpad
        kept[example["line"]] = {
            "chosen_row": out["input_ids"][0][: n[0]].tolist(), "chosen_mask": out["completion_mask"][0][: n[0]].tolist(),
            "rejected_row": out["input_ids"][1][: n[1]].tolist(), "rejected_mask": out["completion_mask"][1][: n[1]].tolist(),
        }
    return [{"line": i + 1, "kept": (i + 1) in kept, **kept.get(i + 1, {})} for i in range(len(PAIRS))]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "truncation_pairs.jsonl", "w", encoding="utf-8") as f:
        for p in PAIRS:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    cases = []
    for name in ("gpt2", "qwen2"):
        tok = make_tokenizer(name)
        for mode in ("keep_start", "keep_end"):
            cases.append({"tokenizer": name, "truncation_mode": mode, "max_length": MAX_LENGTH, "pairs": rows(tok, mode)})
    result = {"trl": trl.__version__, "transformers": transformers.__version__, "datasets": datasets.__version__,
              "input": "truncation_pairs.jsonl", "eos_token": EOS, "cases": cases}
    (OUT / "truncation_trl.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    for c in cases:
        print(c["tokenizer"], c["truncation_mode"], "kept", sum(p["kept"] for p in c["pairs"]), "of", len(c["pairs"]))


if __name__ == "__main__":
    main()
