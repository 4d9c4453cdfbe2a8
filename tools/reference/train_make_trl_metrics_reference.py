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

The same script then runs three more of TRL's trainers and writes what they logged
(tests/train/trl_token_metrics_test.cpp reads them):
- trl_metrics_dpo_ga.json: the DPO run above with per_device_train_batch_size 2 and
  gradient_accumulation_steps 2 (the same 2 steps of 4 pairs, each step two micro-batches of
  different token counts): TRL logs each metric as the mean over the micro-batches of that
  micro-batch's value (its _metrics lists, averaged in log()).
- trl_metrics_kto.json: KTOTrainer (loss_type kto, beta 0.1) on 8 unpaired examples made from the
  first pairs (2 steps of 4, no accumulation: prefopt's KTO takes all micro-batches as one loss),
  KL completions rotated by one within each batch as TRL's _prepare_dataset does, a separate
  frozen reference model, then 4 held-out examples evaluated.
- trl_metrics_reward.json: RewardTrainer on the reward model of tests/data/reward/gpt2 (pad 300),
  pairs of random ids (prompt + completion as chosen_ids / rejected_ids), 2 steps of 4 pairs as
  2 micro-batches of 2 (gradient_accumulation_steps 2), center_rewards_coefficient 0.01, then 4
  held-out pairs evaluated.

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
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, PreTrainedTokenizerFast
from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer, RewardConfig, RewardTrainer

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "..", "tests", "data", "models", "gpt2")
REWARD_MODEL = os.path.join(HERE, "..", "..", "tests", "data", "reward", "gpt2")
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


class InOrderKTOTrainer(KTOTrainer):
    """KTOTrainer that takes the examples in order and uses them as given (KL completions included)."""

    def _get_train_sampler(self, *args, **kwargs):
        return SequentialSampler(self.train_dataset)

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        return dataset


class InOrderRewardTrainer(RewardTrainer):
    """RewardTrainer that takes the pairs in order and uses them as given."""

    def _get_train_sampler(self, *args, **kwargs):
        return SequentialSampler(self.train_dataset)

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        return dataset


DROP = ("epoch", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second")


def logged(history):
    train_rows = [row for row in history if "loss" in row and "step" in row]
    eval_row = next(row for row in history if "eval_loss" in row)
    return ([{k: v for k, v in row.items() if k not in DROP} for row in train_rows],
            {k: v for k, v in eval_row.items() if k not in DROP})


def versions():
    return {"trl": trl.__version__, "transformers": transformers.__version__, "torch": torch.__version__}


def write(name, result):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(name, json.dumps(result["train_rows"], indent=1), json.dumps(result.get("eval_row"), indent=1))


def dpo_accumulated(train, held_out):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
    config = dict(beta=0.1, learning_rate=1e-3, per_device_train_batch_size=2, gradient_accumulation_steps=2,
                  per_device_eval_batch_size=4, max_steps=2, logging_steps=1, lr_scheduler_type="constant",
                  warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, seed=42, max_length=None,
                  loss_type=["sigmoid"], bf16=False)
    with tempfile.TemporaryDirectory() as out_dir:
        args = DPOConfig(output_dir=out_dir, save_strategy="no", eval_strategy="no", report_to="none", use_cpu=True,
                         **config)
        trainer = InOrderDPOTrainer(model=model, args=args, processing_class=stand_in_tokenizer(model.config.vocab_size),
                                    train_dataset=Dataset.from_list(train), eval_dataset=Dataset.from_list(held_out))
        trainer.train()
        trainer.evaluate()
        train_rows, eval_row = logged(trainer.state.log_history)
    write("trl_metrics_dpo_ga.json", {"made_by": "tools/reference/train_make_trl_metrics_reference.py",
                                      "versions": versions(), "model": "tests/data/models/gpt2", "config": config,
                                      "train_pairs": train, "eval_pairs": held_out, "train_rows": train_rows,
                                      "eval_row": eval_row})


def unpaired(pairs):
    """Two examples per pair (desirable chosen, undesirable rejected), then KL completions rotated by
    one within each batch of 4, as KTOTrainer._prepare_dataset does."""
    examples = []
    for i, p in enumerate(pairs):
        good = {"prompt_ids": p["prompt_ids"], "completion_ids": p["chosen_ids"], "label": True}
        bad = {"prompt_ids": p["prompt_ids"], "completion_ids": p["rejected_ids"], "label": False}
        examples += [good, bad] if i % 2 == 0 else [bad, good]
    for b in range(0, len(examples), 4):
        batch = examples[b:b + 4]
        for k, e in enumerate(batch):
            e["KL_completion_ids"] = batch[(k - 1) % len(batch)]["completion_ids"]
    return examples


def kto(train_pairs, held_out_pairs):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
    ref = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
    train, held_out = unpaired(train_pairs[:4]), unpaired(held_out_pairs[:2])
    config = dict(beta=0.1, learning_rate=1e-3, per_device_train_batch_size=4, per_device_eval_batch_size=4,
                  max_steps=2, logging_steps=1, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
                  max_grad_norm=1.0, seed=42, max_length=None, loss_type="kto", desirable_weight=1.0,
                  undesirable_weight=1.0, bf16=False)
    with tempfile.TemporaryDirectory() as out_dir:
        args = KTOConfig(output_dir=out_dir, save_strategy="no", eval_strategy="no", report_to="none", use_cpu=True,
                         **config)
        trainer = InOrderKTOTrainer(model=model, ref_model=ref, args=args,
                                    processing_class=stand_in_tokenizer(model.config.vocab_size),
                                    train_dataset=Dataset.from_list(train), eval_dataset=Dataset.from_list(held_out))
        trainer.train()
        trainer.evaluate()
        train_rows, eval_row = logged(trainer.state.log_history)
    write("trl_metrics_kto.json", {"made_by": "tools/reference/train_make_trl_metrics_reference.py",
                                   "versions": versions(), "model": "tests/data/models/gpt2", "config": config,
                                   "train_examples": train, "eval_examples": held_out, "train_rows": train_rows,
                                   "eval_row": eval_row})


def reward(rng):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(REWARD_MODEL, dtype=torch.float32)

    def ids(lo, hi):
        return [rng.randrange(1, 300) for _ in range(rng.randint(lo, hi))]

    def pairs(n):
        out = []
        for _ in range(n):
            prompt = ids(2, 7)
            out.append({"prompt_ids": prompt, "chosen_ids": prompt + ids(1, 6), "rejected_ids": prompt + ids(1, 6)})
        return out

    train, held_out = pairs(8), pairs(4)
    config = dict(learning_rate=1e-3, per_device_train_batch_size=2, gradient_accumulation_steps=2,
                  per_device_eval_batch_size=4, max_steps=2, logging_steps=1, lr_scheduler_type="constant",
                  warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, seed=42, max_length=None, bf16=False,
                  # The Bradley-Terry loss alone does not see a shift of every score: the gradient of such a
                  # direction (ln_f.bias along the score head) is zero up to rounding, which Adam's first steps
                  # turn into updates of +-lr with a sign that rounding picks. Centering the rewards fixes it.
                  center_rewards_coefficient=0.01)
    tok = stand_in_tokenizer(model.config.vocab_size)
    assert tok.pad_token_id == model.config.pad_token_id
    with tempfile.TemporaryDirectory() as out_dir:
        args = RewardConfig(output_dir=out_dir, save_strategy="no", eval_strategy="no", report_to="none", use_cpu=True,
                            **config)
        trainer = InOrderRewardTrainer(model=model, args=args, processing_class=tok,
                                       train_dataset=Dataset.from_list([{k: p[k] for k in ("chosen_ids", "rejected_ids")}
                                                                        for p in train]),
                                       eval_dataset=Dataset.from_list([{k: p[k] for k in ("chosen_ids", "rejected_ids")}
                                                                       for p in held_out]))
        trainer.train()
        trainer.evaluate()
        train_rows, eval_row = logged(trainer.state.log_history)
    write("trl_metrics_reward.json", {"made_by": "tools/reference/train_make_trl_metrics_reference.py",
                                      "versions": versions(), "model": "tests/data/reward/gpt2", "config": config,
                                      "train_pairs": train, "eval_pairs": held_out, "train_rows": train_rows,
                                      "eval_row": eval_row})


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
    dpo_accumulated(train, held_out)
    kto(train, held_out)
    reward(rng)


if __name__ == "__main__":
    main()
