#!/usr/bin/env python3
"""Golden data for TRL's logged DPO metrics (tests/train/trl_metrics_test.cpp).

Runs TRL's own DPOTrainer (trl 1.16.0, transformers 5.25.0, torch 2.15.0, CPU, float32: bf16=False, as DPOConfig
defaults to bf16 autocast) on the
tiny GPT-2 of tests/data/models/gpt2 for 2 steps of 4 pairs (pre-tokenized pairs, in order: no
shuffling), sigmoid loss, beta 0.1, AdamW lr 1e-3 constant, then evaluates 4 held-out pairs (chosen completions mostly the model's own argmax tokens), and
writes every logged value (loss, grad_norm, learning_rate, rewards/*, logps/*, entropy,
logits/chosen, logits/rejected, mean_token_accuracy, num_tokens and the eval_ forms) to
tests/data/train/trl_metrics.json with the pairs themselves. prefopt's trainer runs the same
model, pairs and configuration in the C++ test and must log the same numbers.

The pairs are ids, so the tokenizer TRL requires is a stand-in (a word-level vocabulary of the
model's 301 ids); TRL's dataset preparation is skipped (the pairs are already prompt_ids /
chosen_ids / rejected_ids, nothing appended).

Run: python3 tools/reference/train_make_trl_metrics_reference.py  (writes tests/data/train/)
"""
import json
import os
import random
import tempfile

import torch
import transformers
import trl
from datasets import Dataset
from tokenizers import Tokenizer, models as tk_models
from torch.utils.data import SequentialSampler
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
from trl import DPOConfig, DPOTrainer

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "..", "tests", "data", "models", "gpt2")
OUT = os.path.join(HERE, "..", "..", "tests", "data", "train")

torch.set_num_threads(1)
torch.manual_seed(0)


def make_pairs(n, rng, model):
    """Random pairs whose chosen completions mostly follow the model's own argmax, so that
    mean_token_accuracy is neither 0 nor 1."""
    def ids(lo, hi):
        return [rng.randrange(1, 300) for _ in range(rng.randint(lo, hi))]

    def mostly_greedy(prompt, length):
        out = []
        for _ in range(length):
            with torch.no_grad():
                logits = model(torch.tensor([prompt + out])).logits[0, -1]
            out.append(int(logits.argmax()) if rng.random() < 0.6 else rng.randrange(1, 300))
        return out

    pairs = []
    for _ in range(n):
        prompt = ids(2, 7)
        pairs.append({"prompt_ids": prompt, "chosen_ids": mostly_greedy(prompt, rng.randint(1, 6)),
                      "rejected_ids": ids(1, 6)})
    return pairs


class InOrderDPOTrainer(DPOTrainer):
    """DPOTrainer that takes the pairs in order (the C++ test builds the same batches) and uses them as given."""

    def _get_train_sampler(self, *args, **kwargs):
        return SequentialSampler(self.train_dataset)

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        return dataset


def stand_in_tokenizer(vocab):
    tok = Tokenizer(tk_models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t0"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=f"t{vocab - 1}", pad_token=f"t{vocab - 1}")


def main():
    rng = random.Random(11)
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
    train, held_out = make_pairs(8, rng, model), make_pairs(4, rng, model)
    config = dict(beta=0.1, learning_rate=1e-3, per_device_train_batch_size=4, per_device_eval_batch_size=4,
                  max_steps=2, logging_steps=1, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
                  max_grad_norm=1.0, seed=42, max_length=None, loss_type=["sigmoid"],
                  bf16=False)  # DPOConfig defaults to bf16=True (autocast, on CPU too); prefopt computes in fp32
    with tempfile.TemporaryDirectory() as out_dir:
        args = DPOConfig(output_dir=out_dir, save_strategy="no", eval_strategy="no", report_to="none", use_cpu=True,
                         **config)
        trainer = InOrderDPOTrainer(model=model, args=args, processing_class=stand_in_tokenizer(model.config.vocab_size),
                                    train_dataset=Dataset.from_list(train), eval_dataset=Dataset.from_list(held_out))
        trainer.train()
        trainer.evaluate()
        history = trainer.state.log_history
    train_rows = [row for row in history if "loss" in row and "step" in row]
    eval_row = next(row for row in history if "eval_loss" in row)
    drop = ("epoch", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second")
    result = {
        "made_by": "tools/reference/train_make_trl_metrics_reference.py",
        "versions": {"trl": trl.__version__, "transformers": transformers.__version__, "torch": torch.__version__},
        "model": "tests/data/models/gpt2",
        "config": config,
        "train_pairs": train,
        "eval_pairs": held_out,
        "train_rows": [{k: v for k, v in row.items() if k not in drop} for row in train_rows],
        "eval_row": {k: v for k, v in eval_row.items() if k not in drop},
    }
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "trl_metrics.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(json.dumps(result["train_rows"], indent=1), json.dumps(result["eval_row"], indent=1))


if __name__ == "__main__":
    main()
