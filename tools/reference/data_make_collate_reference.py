#!/usr/bin/env python3
"""Golden token ids for tests/data/collate_test.cpp, from TRL's own dataset preparation.

TRL 1.16's DPOTrainer._prepare_dataset and KTOTrainer._prepare_dataset are called unbound on a
datasets.Dataset with a stub `self` (they read only self._tokenizer, and KTO self.calculate_KL):
so prompt extraction, EOS appending, tokenization (tokenizer(text) for strings, which adds the
post-processor's special tokens; apply_chat_template(..., tokenize=True) for message lists, the prompt
with add_generation_prompt=True) and the split at common_prefix_length are TRL's code, not a copy.
max_length is None, so TRL drops nothing; prefopt's own truncation is tested by hand. The
tool_conversations dataset (tool calls, tool results, reasoning, a tools column) is written as
datasets hands it to TRL (Dataset.from_list(...).to_list()) and tokenized under Qwen2.5's template
(tests/data/chat/qwen2_5) and Qwen3's (tests/data/chat/qwen3, its tokenizer_config.json written
here from tests/data/chat/templates/qwen3.jinja). The kwargs datasets (a chat_template_kwargs column:
Qwen3's enable_thinking) go through DPO and KTO under Qwen3's template; the parts dataset (message
content as lists of text and image parts) through DPO under Llama 3's template (which prints the
list) and Mistral-Small-3.1's (which iterates it; tests/data/chat/mistral3_1, written here with the
Llama 3 tokenizer's special tokens).

The tokenizers are tests/data/tokenizer/{gpt2,llama3,qwen2}/tokenizer.json wrapped as
transformers.PreTrainedTokenizerFast, with eos/bos tokens set and, for message lists, the chat
template of tests/data/chat/<dir>/tokenizer_config.json.

Writes tests/data/collate/:
  <dataset>.jsonl     inputs in TRL's formats (standard, implicit, conversational, unpaired)
  <case>.jsonl        TRL's output, one row per example in order: line (of the input),
                      prompt_ids, chosen_ids, rejected_ids (DPO) or prompt_ids, completion_ids,
                      label (KTO)
  cases.json          the cases: input, tokenizer, chat config dir (or null), eos token, trainer
Deterministic; rerun with python3 tools/reference/data_make_collate_reference.py
"""
import json
import logging
import os
import random
import types
from pathlib import Path

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import datasets  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402
from trl.trainer.dpo_trainer import DPOTrainer  # noqa: E402
from trl.trainer.kto_trainer import KTOTrainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "collate"
TOKENIZERS = ROOT / "tests" / "data" / "tokenizer"
CHAT = ROOT / "tests" / "data" / "chat"

datasets.disable_progress_bars()
logging.getLogger("trl").setLevel(logging.ERROR)
transformers.logging.set_verbosity_error()


def u(text):
    return {"role": "user", "content": text}


def a(text):
    return {"role": "assistant", "content": text}


def s(text):
    return {"role": "system", "content": text}


def t(text):
    return {"role": "tool", "content": text}


COLUMNS = ("preference_prob", "score_chosen", "score_rejected", "cost", "weight")

# Standard pairs, chosen to put the prompt/completion boundary where byte-level BPE merges across it.
HANDWRITTEN_TEXT = [
    ("What is 2 + 2?", " 4", " 5"),
    ("The answer is ", "42.", "forty-two."),                      # prompt ends with a space
    ("The capital of Fra", "nce is Paris.", "nce is Lyon."),       # a word split across the boundary
    ("Say hel", "lo", " goodbye"),                                 # chosen merges, rejected does not
    ("Question:\n", "\nAnswer: yes", "No"),                        # newline runs across the boundary
    ("Story:\n\n", "Once upon a time.", "\nThe end."),
    ("Hi", " there<|endoftext|>", " you"),                         # already ends with GPT-2/Qwen2's EOS
    ("Hi", " there<|end_of_text|>", " you"),                       # already ends with Llama-3's EOS
    ("Café au lai", "t ☕", "t 🍵"),                                # multi-byte characters at the boundary
    ("你好，世", "界", "界！"),
    ("Hello world", "!!!", "?"),                                   # punctuation runs
    ("Year 20", "24", "25 and 2026"),                              # digit groups (Llama-3 splits by 3)
    ("", "Something to say.", "Else."),                            # empty prompt (text data allows it)
    ("Count: 1 2 3", " 4 5 6", "4 5 6"),
    ("Use <|endoftext|> wisely:", " ok", " <|im_end|> no"),        # special-token text inside
    ("Whitespace", "   ", "\t\n"),                                  # whitespace-only completions
    ("Code:\n    def f(x):\n        return", " x * 2\n", "\n        return x"),
    ("He said \"", "yes\"", "no\""),
    ("A" * 40, "A" * 10, "B" * 10),                                # long repeats
    ("The", " quick brown fox jumps over the lazy dog. " * 3, " slow."),
]

WORDS = ("the a of and to in is was he for it with as his on be at by had are but from or have an they which one "
         "you were her all she there would their we him been has when who will more no if out so said what up its "
         "about into than them can only other new some could time these two may then do first any my now such like "
         "our over man me even most made after also did many before must through back years where much your way "
         "well down should because each just those people how too little state good very make world still own see "
         "men work long get here between both life being under never day same another know while last might us "
         "great old year off come since against go came right used take three café naïve 東京 übung ñandú").split()


def sentence(rng, n):
    words = [rng.choice(WORDS) for _ in range(n)]
    text = " ".join(words)
    if rng.random() < 0.3:
        text = text[0].upper() + text[1:]
    return text + rng.choice([".", "!", "?", ",", ";", "\n", ":", " -", ""])


def generated_text(n, seed):
    """Pairs cut from random sentences at a random character, often inside a word."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        text = sentence(rng, rng.randint(4, 40))
        cut = rng.randint(1, len(text) - 1)
        prompt, chosen = text[:cut], text[cut:]
        rejected = text[cut:cut + rng.randint(0, 3)] + " " + sentence(rng, rng.randint(1, 25))
        out.append((prompt, chosen, rejected.rstrip() or "x"))
    return out


def text_records():
    rng = random.Random(7)
    records = []
    for prompt, chosen, rejected in HANDWRITTEN_TEXT + generated_text(40, seed=1):
        rec = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
        sc, sr = round(rng.uniform(-3, 3), 3), round(rng.uniform(-3, 3), 3)
        rec.update(preference_prob=round(rng.uniform(0.5, 1.0), 3), score_chosen=sc, score_rejected=sr,
                   cost=round(rng.uniform(-1, 1), 3), weight=round(rng.uniform(0.1, 2.0), 3))
        records.append(rec)
    return records


def implicit_text_records():
    pairs = generated_text(25, seed=2) + [("Tell me a joke.", " No.", " Why not?")]
    return [{"chosen": prompt + chosen, "rejected": prompt + rejected} for prompt, chosen, rejected in pairs]


HANDWRITTEN_CONV = [
    ([u("What is 2 + 2?")], [a("4")], [a("5")]),
    ([s("You are terse."), u("Name a colour.")], [a("Blue.")], [a("I like many colours, for example green.")]),
    ([u("Hi"), a("Hello! How can I help?"), u("Tell me a joke.")], [a("Why did the chicken cross the road?")],
     [a("No.")]),
    ([u("Continue the story"), a("Once upon a")], [a("time, there was a king.")], [a("midnight dreary")]),  # ends with assistant
    ([u("  padded question  ")], [a("  padded answer  ")], [a("\nnewline first")]),  # Llama-3 trims, ChatML keeps
    ([u("Write a list")], [a("\n- one\n- two")], [a("- one")]),               # "\n\n" can merge across the boundary
    ([u("Use the tool"), a("Calling it."), t("{\"temp\": 21}")], [a("It is 21 degrees.")], [a("Unknown.")]),
    ([u("Say <|im_end|> literally")], [a("<|im_end|>")], [a("I cannot.")]),  # special-token text in content
    ([u("Café?")], [a("☕ oui")], [a("non 🍵")]),
    ([u("Two turns")], [a("First."), u("And?"), a("Second.")], [a("Only one.")]),  # multi-message completion
    ([u("Digits")], [a("1234567")], [a("12345678")]),
]


def generated_conv(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        prompt = []
        if rng.random() < 0.3:
            prompt.append(s(sentence(rng, rng.randint(2, 8))))
        for _ in range(rng.randint(0, 2)):
            prompt += [u(sentence(rng, rng.randint(1, 12))), a(sentence(rng, rng.randint(1, 12)))]
        prompt.append(u(sentence(rng, rng.randint(1, 20))))
        out.append((prompt, [a(sentence(rng, rng.randint(1, 30)))], [a(sentence(rng, rng.randint(1, 30)))]))
    return out


def conversation_records():
    return [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in HANDWRITTEN_CONV + generated_conv(20, seed=3)]


def implicit_conversation_records():
    return [{"chosen": p + c, "rejected": p + r} for p, c, r in generated_conv(12, seed=4)]


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                   "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city"]}}}


def weather_call(city, unit=None):
    return {"id": f"call_{city.lower()}", "type": "function",
            "function": {"name": "get_weather", "arguments": {"city": city, "unit": unit}}}


def tool_records():
    """Pairs with tool calls, tool results, reasoning and a tools column, as a JSON dataset holds them
    after datasets has read it: main() writes Dataset.from_list(...).to_list(), in which every message
    has every key (None where a record had none), so the file is exactly what TRL's preprocessing saw."""
    return [
        {"prompt": [s("You answer about the weather."), u("Weather in Zürich?"),
                    {"role": "assistant", "content": "", "tool_calls": [weather_call("Zürich", "celsius")]},
                    {"role": "tool", "content": "{\"temp\": 21}", "name": "get_weather", "tool_call_id": "call_zürich"}],
         "chosen": [a("It is 21 °C in Zürich.")], "rejected": [a("I cannot know that.")], "tools": [WEATHER]},
        {"prompt": [u("Is it raining in Bergen?")],
         "chosen": [{"role": "assistant", "content": "", "tool_calls": [weather_call("Bergen")]}],
         "rejected": [a("Yes, always.")], "tools": [WEATHER]},
        {"prompt": [u("Compare Paris and Rome.")],
         "chosen": [{"role": "assistant", "content": "Checking both.",
                     "tool_calls": [weather_call("Paris"), weather_call("Rome", "fahrenheit")]}],
         "rejected": [a("Rome is warmer.")], "tools": [WEATHER]},
        {"prompt": [u("Why is the sky blue?")],
         "chosen": [{"role": "assistant", "content": "Rayleigh scattering.", "reasoning_content": "Short waves scatter."}],
         "rejected": [a("Because the sea is.")], "tools": None},
        {"prompt": [u("Weather in Oslo?"), {"role": "assistant", "content": "", "tool_calls": [weather_call("Oslo")]},
                    t("-3")],
         "chosen": [a("It is -3 degrees.")], "rejected": [a("It is warm.")], "tools": [WEATHER]},
        {"prompt": [u("Hello!")], "chosen": [a("Hi! How can I help?")], "rejected": [a("Go away.")], "tools": []},
    ]


def kwargs_records():
    """Pairs with a chat_template_kwargs column (Qwen3's enable_thinking, an unused key), as datasets
    hands them to TRL: every record's object carries every key, None where it had none."""
    return [
        {"prompt": [u("What is 2+2?")], "chosen": [a("4")], "rejected": [a("5")],
         "chat_template_kwargs": {"enable_thinking": False}},
        {"prompt": [s("Be brief."), u("Name a colour.")], "chosen": [a("Blue.")], "rejected": [a("Seven.")],
         "chat_template_kwargs": {"enable_thinking": True}},
        {"prompt": [u("Why is the sky blue?")],
         "chosen": [a("<think>\nRayleigh.\n</think>\n\nScattering.")], "rejected": [a("Paint.")],
         "chat_template_kwargs": {"enable_thinking": False, "custom": "x"}},
        {"prompt": [u("Hi"), a("Hello."), u("Bye")], "chosen": [a("Goodbye!")], "rejected": [a("No.")],
         "chat_template_kwargs": {}},
    ]


def unpaired_kwargs_records():
    return [{"prompt": r["prompt"], "completion": r[k], "label": k == "chosen",
             "chat_template_kwargs": r["chat_template_kwargs"]}
            for r in kwargs_records() for k in ("chosen", "rejected")]


def text(t):
    return {"type": "text", "text": t}


def parts_records():
    """Pairs whose message content is a list of parts (text and image), as datasets hands them to TRL
    (an image part gets "text": None); TRL passes them to a text-only tokenizer's template unchanged."""
    return [
        {"prompt": [s([text("Be brief.")]), u([{"type": "image"}, text("What is in the picture?")])],
         "chosen": [a([text("A cat.")])], "rejected": [a([text("A dog.")])]},
        {"prompt": [s([text("You answer in German.")]), u([text("Good "), text("morning!")])],
         "chosen": [a([text("Guten Morgen!")])], "rejected": [a([text("Bonjour!")])]},
        {"prompt": [s([text("Be brief.")]), u([text("Hi")]), a([text("Hello.")]), u([text("Grüße — 👋")])],
         "chosen": [a([text("Hallo!")])], "rejected": [a([text("...")])]},
    ]


def unpaired_text_records():
    rng = random.Random(5)
    out = []
    for prompt, chosen, rejected in HANDWRITTEN_TEXT[:12] + generated_text(15, seed=6):
        label = rng.random() < 0.5
        out.append({"prompt": prompt, "completion": chosen if label else rejected, "label": label,
                    "weight": round(rng.uniform(0.5, 1.5), 3)})
    return out


def unpaired_conversation_records():
    rng = random.Random(8)
    out = []
    for prompt, chosen, rejected in HANDWRITTEN_CONV[:8] + generated_conv(10, seed=9):
        label = rng.random() < 0.5
        out.append({"prompt": prompt, "completion": chosen if label else rejected, "label": label})
    return out


DATASETS = {
    "text_pairs": text_records,
    "implicit_text": implicit_text_records,
    "conversations": conversation_records,
    "implicit_conversations": implicit_conversation_records,
    "unpaired_text": unpaired_text_records,
    "unpaired_conversations": unpaired_conversation_records,
    "tool_conversations": lambda: Dataset.from_list(tool_records()).to_list(),
    "kwargs_conversations": lambda: Dataset.from_list(kwargs_records()).to_list(),
    "unpaired_kwargs_conversations": lambda: Dataset.from_list(unpaired_kwargs_records()).to_list(),
    "parts_conversations": lambda: Dataset.from_list(parts_records()).to_list(),
}

# name: (dataset, tokenizer, chat config dir or None, eos token, bos token, trainer)
CASES = {
    "gpt2_text": ("text_pairs", "gpt2", None, "<|endoftext|>", None, "dpo"),
    "llama3_text": ("text_pairs", "llama3", None, "<|end_of_text|>", "<|begin_of_text|>", "dpo"),
    "qwen2_text": ("text_pairs", "qwen2", None, "<|endoftext|>", None, "dpo"),
    "gpt2_implicit_text": ("implicit_text", "gpt2", None, "<|endoftext|>", None, "dpo"),
    "llama3_implicit_text": ("implicit_text", "llama3", None, "<|end_of_text|>", "<|begin_of_text|>", "dpo"),
    "qwen2_chatml": ("conversations", "qwen2", "chatml", "<|im_end|>", None, "dpo"),
    "qwen2_qwen2": ("conversations", "qwen2", "qwen2", "<|im_end|>", None, "dpo"),
    "qwen2_qwen2_5": ("conversations", "qwen2", "qwen2_5", "<|im_end|>", None, "dpo"),
    "llama3_llama3": ("conversations", "llama3", "llama3", "<|eot_id|>", "<|begin_of_text|>", "dpo"),
    "qwen2_implicit_conversations": ("implicit_conversations", "qwen2", "qwen2", "<|im_end|>", None, "dpo"),
    "llama3_implicit_conversations": ("implicit_conversations", "llama3", "llama3", "<|eot_id|>", "<|begin_of_text|>",
                                      "dpo"),
    "gpt2_kto_text": ("unpaired_text", "gpt2", None, "<|endoftext|>", None, "kto"),
    "llama3_kto_text": ("unpaired_text", "llama3", None, "<|end_of_text|>", "<|begin_of_text|>", "kto"),
    "qwen2_kto_conversations": ("unpaired_conversations", "qwen2", "qwen2", "<|im_end|>", None, "kto"),
    "llama3_kto_conversations": ("unpaired_conversations", "llama3", "llama3", "<|eot_id|>", "<|begin_of_text|>",
                                 "kto"),
    "gpt2_kto_from_pairs": ("text_pairs", "gpt2", None, "<|endoftext|>", None, "kto"),  # TRL unpairs first
    "qwen2_qwen2_5_tools": ("tool_conversations", "qwen2", "qwen2_5", "<|im_end|>", None, "dpo"),
    "qwen2_qwen3_tools": ("tool_conversations", "qwen2", "qwen3", "<|im_end|>", None, "dpo"),
    "qwen2_qwen3_kwargs": ("kwargs_conversations", "qwen2", "qwen3", "<|im_end|>", None, "dpo"),
    "qwen2_kto_qwen3_kwargs": ("unpaired_kwargs_conversations", "qwen2", "qwen3", "<|im_end|>", None, "kto"),
    "llama3_llama3_parts": ("parts_conversations", "llama3", "llama3", "<|eot_id|>", "<|begin_of_text|>", "dpo"),
    "llama3_mistral3_1_parts": ("parts_conversations", "llama3", "mistral3_1", "<|eot_id|>", "<|begin_of_text|>",
                                "dpo"),
}


def make_tokenizer(name, chat_dir, eos, bos):
    tok = PreTrainedTokenizerFast(tokenizer_file=str(TOKENIZERS / name / "tokenizer.json"), eos_token=eos,
                                  bos_token=bos, pad_token=eos)
    if chat_dir is not None:
        config = json.loads((CHAT / chat_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
        tok.chat_template = config["chat_template"]
        assert config.get("eos_token") == eos, (chat_dir, config.get("eos_token"), eos)
    return tok


def prepare(trainer, records, tok):
    """TRL's own _prepare_dataset, called with a stub self."""
    args = types.SimpleNamespace(dataset_num_proc=None, max_length=None, truncation_mode="keep_start",
                                 per_device_train_batch_size=8)
    dataset = Dataset.from_list(records)
    if trainer == "dpo":
        stub = types.SimpleNamespace(_tokenizer=tok)
        return DPOTrainer._prepare_dataset(stub, dataset, tok, args, "eval")
    stub = types.SimpleNamespace(_tokenizer=tok, calculate_KL=False)
    return KTOTrainer._prepare_dataset(stub, dataset, tok, args, "eval")


def dump(rows):
    return "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows)


def write_qwen3_config():
    text = (CHAT / "templates" / "qwen3.jinja").read_text(encoding="utf-8")
    (CHAT / "qwen3").mkdir(exist_ok=True)
    (CHAT / "qwen3" / "tokenizer_config.json").write_text(
        json.dumps({"chat_template": text, "eos_token": "<|im_end|>"}, ensure_ascii=False, indent=1) + "\n",
        encoding="utf-8")


def write_mistral3_1_config():
    """Mistral-Small-3.1's template (it iterates content parts) with the Llama 3 tokenizer's special tokens."""
    text = (CHAT / "templates" / "mistral3_1.jinja").read_text(encoding="utf-8")
    (CHAT / "mistral3_1").mkdir(exist_ok=True)
    (CHAT / "mistral3_1" / "tokenizer_config.json").write_text(
        json.dumps({"chat_template": text, "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
                   ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    write_qwen3_config()
    write_mistral3_1_config()
    inputs = {}
    for name, make in DATASETS.items():
        inputs[name] = make()
        (OUT / f"{name}.jsonl").write_text(dump(inputs[name]), encoding="utf-8")

    cases = []
    for name, (data, tok_name, chat_dir, eos, bos, trainer) in CASES.items():
        tok = make_tokenizer(tok_name, chat_dir, eos, bos)
        out = prepare(trainer, inputs[data], tok)
        n = len(inputs[data])
        rows = []
        for i, ex in enumerate(out):
            if trainer == "dpo":
                rows.append({"line": i + 1, "prompt_ids": ex["prompt_ids"], "chosen_ids": ex["chosen_ids"],
                             "rejected_ids": ex["rejected_ids"]})
            else:
                # Unpairing (datasets' batched map, batch size 1000) puts a batch's chosen rows first; n < 1000.
                line = i + 1 if "label" in inputs[data][0] else (i % n) + 1
                rows.append({"line": line, "prompt_ids": ex["prompt_ids"], "completion_ids": ex["completion_ids"],
                             "label": bool(ex["label"])})
        assert len(rows) == (n if trainer == "dpo" or "label" in inputs[data][0] else 2 * n)
        (OUT / f"{name}.jsonl").write_text(dump(rows), encoding="utf-8")
        cases.append({"name": name, "input": f"{data}.jsonl", "tokenizer": tok_name, "chat": chat_dir,
                      "eos_token": eos, "trainer": trainer, "expected": f"{name}.jsonl"})

    meta = {"trl": trl.__version__, "transformers": transformers.__version__, "datasets": datasets.__version__,
            "cases": cases}
    (OUT / "cases.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
