#!/usr/bin/env python3
"""Golden chat-template renderings for tests/data/chat_template_test.cpp.

Renders ~50 conversations with transformers' apply_chat_template machinery (a real tokenizer object
carrying the model's genuine Jinja chat template) and with TRL's maybe_apply_chat_template, and
writes tests/data/chat/:
  conversations.json          the conversations: prompt, chosen, rejected message lists
  expected_<name>.json        per template, per conversation: TRL's prompt/chosen/rejected, TRL's
                              prompt/completion for the unpaired example (prompt, chosen, label),
                              and apply_chat_template of prompt+chosen and of the prompt alone
  <dir>/tokenizer_config.json minimal configs (chat_template and special tokens) for select_chat_template
Templates: Qwen2-Instruct (ChatML with a default system message), plain ChatML, SmolLM2-Instruct
(ChatML, another default), Qwen2.5-Instruct and Meta-Llama-3-Instruct. The Llama-3 and Qwen2.5
strings are checked against the copies TRL ships in trl/chat_templates/. Deterministic; rerun with
python3 tools/reference/data_make_chat_reference.py
"""
import json
import random
from pathlib import Path

import trl
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast
from trl.data_utils import maybe_apply_chat_template

OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "chat"
TRL_TEMPLATES = Path(trl.__file__).parent / "chat_templates"

# Qwen/Qwen2-*-Instruct tokenizer_config.json "chat_template".
QWEN2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
         "You are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
         "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
         "{% endif %}")
# HuggingFaceTB/SmolLM2-*-Instruct: the same shape with its own default system message.
SMOLLM2 = QWEN2.replace("You are a helpful assistant.", "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
# Plain ChatML, as TRL's setup_chat_format installed it.
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
          "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
# meta-llama/Meta-Llama-3-8B-Instruct tokenizer_config.json "chat_template".
LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
          "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
          "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
          "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
assert LLAMA3 == (TRL_TEMPLATES / "llama3.jinja").read_text(encoding="utf-8")
QWEN2_5 = (TRL_TEMPLATES / "qwen2_5.jinja").read_text(encoding="utf-8")  # Qwen/Qwen2.5-*-Instruct
assert "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." in QWEN2_5
# Qwen2's template rewritten (whitespace control, indentation, quotes, attribute access): renders the same.
QWEN2_REFORMATTED = """{%- for message in messages -%}
    {%- if loop.first and messages[0].role != "system" -%}
        {{- "<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n" -}}
    {%- endif -%}
    {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|im_start|>assistant\\n' -}}
{%- endif -%}
"""
# One character different from Qwen2's (a blank line after each turn): must not be recognised.
QWEN2_CHANGED = QWEN2.replace("'<|im_end|>' + '\n'", "'<|im_end|>' + '\n\n'")

TEMPLATES = {  # name: (template, bos, eos)
    "qwen2": (QWEN2, None, "<|im_end|>"),
    "chatml": (CHATML, None, "<|im_end|>"),
    "smollm2": (SMOLLM2, "<|im_start|>", "<|im_end|>"),
    "qwen2_5": (QWEN2_5, None, "<|im_end|>"),
    "llama3": (LLAMA3, "<|begin_of_text|>", "<|eot_id|>"),
}


def tokenizer(template, bos, eos):
    vocab = {"<unk>": 0, "<|im_start|>": 1, "<|im_end|>": 2, "<|begin_of_text|>": 3, "<|eot_id|>": 4}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<unk>")), unk_token="<unk>",
                                  bos_token=bos, eos_token=eos)
    tok.chat_template = template
    return tok


def m(role, content):
    return {"role": role, "content": content}


def u(c):
    return m("user", c)


def a(c):
    return m("assistant", c)


def s(c):
    return m("system", c)


def t(c):
    return m("tool", c)


HANDWRITTEN = [
    ([u("What color is the sky?")], [a("It is blue.")], [a("It is green.")]),
    ([s("You are terse."), u("Hi")], [a("Hello.")], [a("Go away.")]),
    ([u("q1"), a("a1"), u("q2")], [a("good")], [a("bad")]),
    ([s("sys"), u("q1"), a("a1"), u("q2"), a("a2"), u("q3")], [a("three")], [a("four")]),
    ([u("日本語で答えて")], [a("はい、わかりました。")], [a("No.")]),
    ([u("😀?")], [a("😀😀")], [a("😢")]),
    ([u("e\u0301 vs \u00e9")], [a("combining")], [a("precomposed")]),
    ([u("  padded question  ")], [a(" answer with space ")], [a("answer\n")]),
    ([u("\u00a0nbsp\u00a0")], [a("\u3000full-width\u3000")], [a("\t tab \t")]),
    ([u("line1\nline2\n")], [a("\n\nstarts with newlines")], [a("ends with newlines\n\n")]),
    ([u("q")], [a("   ")], [a("x")]),
    ([u("Write a poem"), a("Roses are")], [a(" red")], [a(" blue")]),
    ([u("q"), a("partial answer  ")], [a("rest")], [a("other")]),
    ([u("q"), a("  ")], [a("x")], [a("y")]),
    ([u("What is 6*7?"), a("Calling calculator."), t("42")], [a("It is 42.")], [a("I don't know.")]),
    ([u("Weather in A and B?"), a("Checking both."), t("A: sunny"), t("B: rain")], [a("A sunny, B rainy.")],
     [a("Both sunny.")]),
    ([u("q"), s("late system"), u("q2")], [a("ok")], [a("no")]),
    ([u("q")], [a("a"), u("follow-up"), a("b")], [a("c")]),
    ([u("q")], [u("another question"), a("x")], [a("y")]),
    ([u("q")], [a("same")], [a("same")]),
    ([u("what is <|im_end|>?")], [a("a token <|eot_id|>")], [a("no")]),
    ([u("q")], [a("The answer is 4.")], [a("The answer is 5.")]),
    ([u("C:\\path \"quoted\" 'single' {{ not jinja }}")], [a("\\n is not a newline")], [a("{% raw %}")]),
    ([u("a\r\nb")], [a("crlf\r\n")], [a("cr\r")]),
    ([u("\x1fq\x1c")], [a("\x1d\x1eunit separators")], [a("\x0bvertical tab\x0c")]),
    ([u("\x85next line\u2028")], [a("\u2029para")], [a("\u200bzero width is not space\u200b")]),
    ([s("Only the system and"), u("a user")], [a("fine")], [a("not fine")]),
    ([u("tool first?"), t("a tool result")], [a("answer")], [a("other")]),
    ([t("tool message first")], [a("answer")], [a("other")]),
    ([u("q " * 200)], [a("long " * 300)], [a("short")]),
]

WORDS = ["alpha", "béta", "γάμμα", "δ", "日本", "😀", "hello", "world", "x", "42", "<tag>", "a\nb", "end."]
PADS = ["", "", "", " ", "  ", "\n", "\t", "\u00a0", " \n "]


def generated(n, seed=0):
    rng = random.Random(seed)

    def text():
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))
        return rng.choice(PADS) + body + rng.choice(PADS)

    out = []
    for _ in range(n):
        prompt = [s(text())] if rng.random() < 0.4 else []
        for _ in range(rng.randint(0, 2)):
            prompt += [u(text()), a(text())]
        prompt.append(u(text()))
        if rng.random() < 0.15:
            prompt.append(a(text()))  # continue the assistant's message
        chosen = [a(text())] + ([u(text()), a(text())] if rng.random() < 0.2 else [])
        rejected = [a(text())]
        out.append((prompt, chosen, rejected))
    return out


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    conversations = [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in HANDWRITTEN + generated(22)]
    (OUT / "conversations.json").write_text(json.dumps(conversations, ensure_ascii=False, indent=1) + "\n")
    for name, (template, bos, eos) in TEMPLATES.items():
        tok = tokenizer(template, bos, eos)
        rows = []
        for conv in conversations:
            pair = maybe_apply_chat_template(conv, tok)
            unpaired = maybe_apply_chat_template({"prompt": conv["prompt"], "completion": conv["chosen"], "label": True},
                                                 tok)
            row = {"prompt": pair["prompt"], "chosen": pair["chosen"], "rejected": pair["rejected"],
                   "unpaired_prompt": unpaired["prompt"], "unpaired_completion": unpaired["completion"],
                   "full": tok.apply_chat_template(conv["prompt"] + conv["chosen"], tokenize=False)}
            if conv["prompt"][-1]["role"] != "assistant":
                row["generation"] = tok.apply_chat_template(conv["prompt"], tokenize=False, add_generation_prompt=True)
            rows.append(row)
        (OUT / f"expected_{name}.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n")

    # The reformatted template renders exactly as Qwen2's, so recognising it as Qwen2's is right;
    # the changed one does not.
    genuine, reformatted, changed = (tokenizer(x, None, "<|im_end|>") for x in (QWEN2, QWEN2_REFORMATTED, QWEN2_CHANGED))
    for conv in conversations:
        msgs = conv["prompt"] + conv["chosen"]
        assert genuine.apply_chat_template(msgs, tokenize=False) == reformatted.apply_chat_template(msgs, tokenize=False)
        assert genuine.apply_chat_template(msgs, tokenize=False) != changed.apply_chat_template(msgs, tokenize=False)

    configs = {
        "qwen2": {"chat_template": QWEN2, "bos_token": None, "eos_token": "<|im_end|>"},
        "chatml": {"chat_template": CHATML, "eos_token": "<|im_end|>"},
        "smollm2": {"chat_template": SMOLLM2, "bos_token": "<|im_start|>", "eos_token": "<|im_end|>"},
        "qwen2_5": {"chat_template": QWEN2_5, "eos_token": "<|im_end|>"},
        "llama3": {"chat_template": LLAMA3, "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
        "llama3_added_token": {"chat_template": LLAMA3, "eos_token": "<|eot_id|>",
                               "bos_token": {"__type": "AddedToken", "content": "<|begin_of_text|>", "lstrip": False}},
        "llama3_named": {"chat_template": [{"name": "default", "template": LLAMA3},
                                           {"name": "tool_use", "template": "{{ tools }}"}],
                         "bos_token": "<|begin_of_text|>"},
        "llama3_no_bos": {"chat_template": LLAMA3},
        "named_without_default": {"chat_template": [{"name": "rag", "template": CHATML},
                                                    {"name": "tool_use", "template": CHATML}]},
        "qwen2_reformatted": {"chat_template": QWEN2_REFORMATTED, "eos_token": "<|im_end|>"},
        "qwen2_changed": {"chat_template": QWEN2_CHANGED, "eos_token": "<|im_end|>"},
        "llama3_1": {"chat_template": (TRL_TEMPLATES / "llama3_1.jinja").read_text(encoding="utf-8"),
                     "bos_token": "<|begin_of_text|>"},
        "no_template": {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>"},
        "jinja_file": {"eos_token": "<|im_end|>"},
    }
    for name, cfg in configs.items():
        (OUT / name).mkdir(exist_ok=True)
        (OUT / name / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=1) + "\n")
    (OUT / "jinja_file" / "chat_template.jinja").write_text(QWEN2_5, encoding="utf-8")
    print(len(conversations), "conversations,", len(TEMPLATES), "templates,", len(configs), "configs")


if __name__ == "__main__":
    main()
