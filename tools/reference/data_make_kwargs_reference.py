#!/usr/bin/env python3
"""Golden renderings of chat_template_kwargs and content lists for tests/data/chat_template_test.cpp.

A dataset record's `chat_template_kwargs` column (a JSON object) reaches
tokenizer.apply_chat_template(messages, tools=..., **chat_template_kwargs) in TRL 1.16's DPOTrainer,
KTOTrainer and RewardTrainer (their tokenize_fn) and in trl.data_utils.apply_chat_template: each key
becomes a template variable (enable_thinking for Qwen3, ...), overriding a special token of the same
name. Message content may be a list of parts ([{"type": "text", "text": ...}, {"type": "image"}]);
for a text-only tokenizer TRL passes it to the template unchanged, and the template decides:
Mistral-Small-3.1's iterates the parts, Qwen2.5's fails to add a list to a string, Llama 3's `trim`
prints the list as Python prints it.

Renders KWARGS_CONVERSATIONS under every KWARGS entry, with and without the generation prompt,
through each template of data_make_jinja_reference.SOURCES and CONTENT_TEMPLATES (below), with the
tokenizer's own apply_chat_template (the same special-tokens-only tokenizer as tool_records.json).
Writes tests/data/chat/templates/kwargs_records.json:
  {"conversations": {label: messages}, "kwargs": [kwargs...],
   "cases": [{"template", "tokens", "conversation", "kwargs" (index), "add_generation_prompt",
              "output"} or {..., "error", "error_type"}]}.
CONTENT_TEMPLATES' texts (mistral3_1.jinja) are committed as their source keeps them; their rows are
added to SOURCES.md (data_make_jinja_reference.py writes the others; rerun this script after it).
Deterministic; rerun with  python3 tools/reference/data_make_kwargs_reference.py
(made with jinja2 3.1.6, transformers 5.25.0).
"""
import copy
import json
import sys
from pathlib import Path

import jinja2
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_make_jinja_reference import DEFAULT_TOKENS, DIR, SOURCES, TOKENS, m  # noqa: E402

# Templates that iterate content parts, kept as llama.cpp's models/templates keeps them (the
# checkpoint's chat_template, byte for byte): the file is committed; its text is checked here.
CONTENT_TEMPLATES = {
    "mistral3_1": ("mistralai/Mistral-Small-3.1-24B-Instruct-2503 (as llama.cpp's models/templates keeps it)",
                   {"bos_token": "<s>", "eos_token": "</s>"}),
}


def text(t):
    return {"type": "text", "text": t}


KWARGS_CONVERSATIONS = {
    "user": [m("user", "What is 2+2?")],
    "system_multi_turn": [m("system", "Be brief."), m("user", "Hi"), m("assistant", "Hello."),
                          m("user", "What is 2+2?")],
    "think_history": [m("system", "Think first."), m("user", "Why is the sky blue?"),
                      m("assistant", "<think>\nRayleigh.\n</think>\n\nScattering."), m("user", "And sunsets?")],
    "parts_user": [m("system", "Be brief."), m("user", [text("Describe "), text("this, please.")])],
    "parts_image": [m("system", "You see images."), m("user", [{"type": "image"}, text("What is it?")])],
    "parts_all_roles": [m("system", [text("Be brief.")]), m("user", [text("Hi")]),
                        m("assistant", [text("Hello.")]), m("user", [text("Bye")])],
    "parts_mixed": [m("system", "Be brief."), m("user", "Hi"), m("assistant", [text("Hello.")]),
                    m("user", [text("Grüße "), text("— 👋")])],
}

KWARGS = [
    {},
    {"enable_thinking": False},
    {"enable_thinking": True},
    {"add_vision_id": True, "bos_token": "<BOS>", "eos_token": "<EOS>", "custom": [1, "two", None]},
]


def template_text(name):
    return (DIR / f"{name}.jinja").read_text(encoding="utf-8")


def main():
    names = sorted(list(SOURCES) + list(CONTENT_TEMPLATES))
    cases = []
    for name in names:
        tokens = CONTENT_TEMPLATES[name][1] if name in CONTENT_TEMPLATES else TOKENS.get(name, DEFAULT_TOKENS)
        tokens = {k: v for k, v in tokens.items() if v is not None}
        tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({"<unk>": 0}, unk_token="<unk>")),
                                      unk_token="<unk>", **tokens)
        tok.chat_template = template_text(name)
        for label, messages in KWARGS_CONVERSATIONS.items():
            if name == "mistral3_1" and messages[0]["role"] != "system":
                continue  # its default system message holds today's date
            for k, kwargs in enumerate(KWARGS):
                for gen in (False, True):
                    case = {"template": name, "tokens": tokens, "conversation": label, "kwargs": k,
                            "add_generation_prompt": gen}
                    try:
                        case["output"] = tok.apply_chat_template(copy.deepcopy(messages), tokenize=False,
                                                                 add_generation_prompt=gen, **copy.deepcopy(kwargs))
                    except (jinja2.exceptions.TemplateError, TypeError, ValueError, AttributeError, KeyError,
                            IndexError) as e:
                        case["error"], case["error_type"] = str(e), type(e).__name__
                    cases.append(case)
    sources = DIR / "SOURCES.md"
    rows = [l for l in sources.read_text(encoding="utf-8").splitlines() if not any(f"`{k}.jinja`" in l for k in CONTENT_TEMPLATES)]
    rows += [f"| `{k}.jinja` | {v[0]} |" for k, v in sorted(CONTENT_TEMPLATES.items())]
    sources.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = {"conversations": KWARGS_CONVERSATIONS, "kwargs": KWARGS, "cases": cases}
    (DIR / "kwargs_records.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{len(cases)} renderings ({sum('error' in c for c in cases)} errors) from {len(names)} templates")


if __name__ == "__main__":
    main()
