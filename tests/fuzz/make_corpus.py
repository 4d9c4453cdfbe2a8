#!/usr/bin/env python3
"""Builds the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/) from tests/data.

Run from anywhere: python3 tests/fuzz/make_corpus.py. Deterministic; the output is committed.
Each corpus stays small (a few KB to ~130 KB); libFuzzer grows its own working copy from it.
"""
import json
import pathlib
import shutil

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
OUT = ROOT / "tests" / "fuzz" / "corpus"


KEPT = ("regression-", "crash-", "timeout-", "oom-", "leak-", "slow-unit-")


def target(name):
    """The corpus folder of one target, emptied of generated seeds. Inputs a fuzzer once crashed or
    hung on, committed by hand as regression seeds (regression-*, or libFuzzer's own artifact names
    crash-*, timeout-*, oom-*, leak-*, slow-unit-*), stay."""
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    for f in d.iterdir():
        if f.name.startswith(KEPT):
            continue
        if f.is_dir():
            shutil.rmtree(f)
        else:
            f.unlink()
    return d


def put(d, name, content):
    (d / name).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))


def lines(path, n):
    return "".join(l + "\n" for l in path.read_text(encoding="utf-8").split("\n")[:n])


# safetensors: small real files, and every crafted case of the header test suite.
d = target("safetensors")
put(d, "reference.safetensors", (DATA / "safetensors/reference.safetensors").read_bytes())
put(d, "qwen2_lora.safetensors", (DATA / "models/qwen2_lora/adapter_model.safetensors").read_bytes())
for case in json.loads((DATA / "safetensors/malformed_cases.json").read_text())["cases"]:
    put(d, "case_" + case["name"], bytes.fromhex(case["hex"]))

# jsonl_collate: every TRL format (text, conversational, implicit, unpaired, tokenized, gzip), and
# records with chat_template_kwargs and content lists.
d = target("jsonl_collate")
for f in sorted((DATA / "datasets").iterdir()):
    if f.name.endswith((".jsonl", ".jsonl.gz")):
        put(d, f.name, f.read_bytes())
for f in ["collate/conversations.jsonl", "collate/unpaired_conversations.jsonl", "collate/implicit_conversations.jsonl",
          "collate/text_pairs.jsonl", "cli/pairs_text.jsonl", "cli/pairs_tokenized.jsonl",
          "collate/kwargs_conversations.jsonl", "collate/parts_conversations.jsonl"]:
    put(d, f.replace("/", "_"), lines(DATA / f, 4))

# tokenizer_json: the small committed tokenizers (Llama-3's 120 KB file is left out).
d = target("tokenizer_json")
for fam in ["charlevel", "gpt2", "qwen2", "variants"]:
    put(d, fam + ".json", (DATA / "tokenizer" / fam / "tokenizer.json").read_bytes())

# tokenizer_roundtrip: texts of the tokenizer tests, one per file.
d = target("tokenizer_roundtrip")
texts = [json.loads(l) for l in (DATA / "tokenizer/strings.jsonl").read_text(encoding="utf-8").split("\n") if l]
for i, t in enumerate(texts[:80]):
    put(d, "string_%03d" % i, t[:2000])

# pretokenizer: [options byte][pattern]\0[text] from the regex test cases (first text of each pattern).
d = target("pretokenizer")
seen = {}
for l in (DATA / "tokenizer/regex_cases.jsonl").read_text(encoding="utf-8").split("\n"):
    if l:
        c = json.loads(l)
        seen.setdefault(c["pattern"], c["text"])
for i, (p, t) in enumerate(list(seen.items())[:60]):
    put(d, "case_%03d" % i, bytes([i % 5]) + p.encode() + b"\0" + t[:500].encode())

# chat_template: tokenizer_config.json files, and conversations as dataset records.
d = target("chat_template")
for f in sorted((DATA / "chat").glob("*/tokenizer_config.json")):
    put(d, "config_" + f.parent.name + ".json", f.read_bytes())
for i, c in enumerate(json.loads((DATA / "chat/conversations.json").read_text(encoding="utf-8"))[:12]):
    put(d, "conversation_%02d.json" % i, json.dumps(c, ensure_ascii=False))
for f in ["datasets/standard.jsonl", "datasets/unpaired_conversational.jsonl", "datasets/implicit_conversational.jsonl",
          "collate/kwargs_conversations.jsonl", "collate/parts_conversations.jsonl",
          "collate/unpaired_kwargs_conversations.jsonl"]:
    put(d, f.replace("/", "_") + ".json", lines(DATA / f, 1))

# jinja: the real chat templates, one template per construct, and a few hostile ones.
d = target("jinja")
for f in sorted((DATA / "chat/templates").glob("*.jinja")):
    put(d, f.name, f.read_bytes())
for c in json.loads((DATA / "chat/jinja_constructs.json").read_text(encoding="utf-8")):
    put(d, "construct_" + c["name"] + ".jinja", c["template"])
put(d, "hostile_loop.jinja", "{% for i in range(100000000) %}{% endfor %}")
put(d, "hostile_doubling.jinja", "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}")
put(d, "hostile_recursion.jinja", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")
put(d, "found_indent_undefined.jinja", "{{ 'a\nb\n\nc' | indent(D) }}")
put(d, "hostile_power.jinja", "{{ (-1) ** 1000000000000000000 }}{{ 'abc'[::9223372036854775807] }}")
put(d, "hostile_nesting.jinja", "{{ " + "(" * 300 + "1" + ")" * 300 + " }}")

# transformer_config: the committed model configs.
d = target("transformer_config")
for m in ["gpt2", "llama", "qwen2"]:
    put(d, m + ".json", (DATA / "models" / m / "config.json").read_bytes())

# run_config: configurations as the command line tests write them.
d = target("run_config")
put(d, "lora.json", json.dumps({
    "model": "gpt2_text", "lora": {"r": 4, "alpha": 8, "target_modules": ["c_attn"], "use_rslora": False},
    "data": {"train": "pairs_text.jsonl", "tokenizer": "tokenizer.json", "eval_fraction": 0.25, "max_length": 64},
    "optimizer": {"learning_rate": 0.01},
    "training": {"num_train_epochs": 2, "batch_size": 4, "logging_steps": 2, "save_steps": 4},
    "output": {"dir": "lora"}}, indent=1))
put(d, "mixture.json", json.dumps({
    "model": "m", "data": {"train": "t.jsonl"},
    "loss": {"type": ["sigmoid", "bco_pair", "sft"], "weights": [0.8, 0.2, 1.0], "beta": 0.1,
             "constraints": [{"type": "chosen_floor", "lambda": 50, "bound": 0, "rate": 0}]},
    "reference": {"strategy": "synced", "sync_steps": 64, "mixup_alpha": 0.9}}))
put(d, "kto.json", json.dumps({"model": "m", "data": {"train": "t.jsonl", "max_length": 128},
                               "loss": {"type": ["kto"], "desirable_weight": 1.33}, "lora": None}))
put(d, "empty.json", "{}")

# trl_config: YAML configs, TRL's flat names and prefopt's sections (tests/cli/trl_config_test.sh).
d = target("trl_config")
put(d, "dpo.yaml", """# TRL DPOConfig + ModelConfig + ScriptArguments
model_name_or_path: models/gpt2
dataset_name: pairs.jsonl
per_device_train_batch_size: 4
learning_rate: 1.0e-2
max_steps: 2
loss_type: [sigmoid, sft]
loss_weights: [1.0, 0.5]
beta: 0.1
max_length: 64
truncation_mode: keep_start
use_peft: true
lora_r: 4
lora_target_modules: [c_attn]
bf16: false
report_to: none
save_strategy: "no"
output_dir: out
""")
put(d, "sections.yaml", """model: m
data:
  train: t.jsonl
  truncation_mode: keep_end
optimizer:
  learning_rate: 1e-6
lora: {r: 4, alpha: 8, target_modules: [c_attn]}
""")
put(d, "anchors.yaml", "base: &b {beta: 0.1}\nbeta: 0.2\nlearning_rate: &lr 1e-6\nweight_decay: *lr\n")
put(d, "empty.yaml", "")


# checkpoint_state: trainer_state.json as write_checkpoint writes it.
d = target("checkpoint_state")
put(d, "state.json", json.dumps({"global_step": 18, "optimizer_steps": 18, "epoch": 1, "next_batch": 6,
                                 "loss_state": [0.5, 1.25], "best_metric": 0.6931, "evals_without_improvement": 1,
                                 "extra": {"rng": "12345"}, "format": "prefopt-checkpoint-1"}, indent=2))
put(d, "fresh.json", json.dumps({"global_step": 0, "optimizer_steps": 0, "epoch": 0, "next_batch": 0, "loss_state": [],
                                 "best_metric": None, "evals_without_improvement": 0, "format": "prefopt-checkpoint-1"}))
