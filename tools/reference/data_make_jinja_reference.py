#!/usr/bin/env python3
"""Golden renderings of real chat templates for tests/data/jinja_test.cpp (prefopt's Jinja interpreter).

Reads every tests/data/chat/templates/<name>.jinja (the chat_template text of a public checkpoint's
tokenizer_config.json; see SOURCES below) and renders it over varied conversations — with and
without a system message, one and several turns, generation prompt on and off, tool calls and tool
results, a tools list, reasoning in <think>, non-ASCII text, conversations the template rejects —
with transformers' own renderer: transformers.utils.chat_template_utils._compile_jinja_template
(the environment apply_chat_template uses: sandboxed, trim_blocks, lstrip_blocks, its tojson,
raise_exception, strftime_now, namespace) and Template.render with the variables
render_jinja_template passes (messages, tools, documents, add_generation_prompt, special tokens).

Writes tests/data/chat/templates/expected.json: a list of cases
  {"template": name, "context": {...every variable the template sees...},
   "output": rendered text}  or  {"template", "context", "error": str(exception), "error_type": ...}.
Deterministic; rerun with  python3 tools/reference/data_make_jinja_reference.py
(made with jinja2 3.1.6, transformers 5.25.0).
"""
import copy
import json
from pathlib import Path

import jinja2
from transformers.utils.chat_template_utils import _compile_jinja_template

DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "chat" / "templates"

# Where each template's text comes from (the model's tokenizer_config.json "chat_template").
SOURCES = {
    "llama2": "meta-llama/Llama-2-13b-chat-hf",
    "llama3": "meta-llama/Meta-Llama-3-8B-Instruct",
    "llama3_1": "meta-llama/Llama-3.1-8B-Instruct",
    "qwen2": "Qwen/Qwen2-7B-Instruct",
    "qwen2_5": "Qwen/Qwen2.5-7B-Instruct",
    "qwen3": "Qwen/Qwen3-8B",
    "mistral": "mistralai/Mistral-7B-Instruct-v0.2",
    "gemma": "google/gemma-7b-it",
    "phi3": "microsoft/Phi-3-mini-4k-instruct (May 2024)",
    "smollm2": "HuggingFaceTB/SmolLM2-1.7B-Instruct",
    "deepseek_r1_distill": "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B (as llama.cpp's models/templates keeps it)",
    "zephyr": "HuggingFaceH4/zephyr-7b-beta",
    "chatml": "ChatML as TRL's setup_chat_format installs it",
}

TOKENS = {
    "llama2": {"bos_token": "<s>", "eos_token": "</s>"},
    "mistral": {"bos_token": "<s>", "eos_token": "</s>"},
    "zephyr": {"bos_token": "<s>", "eos_token": "</s>"},
    "phi3": {"bos_token": "<s>", "eos_token": "<|endoftext|>"},
    "gemma": {"bos_token": "<bos>", "eos_token": "<eos>"},
    "llama3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "llama3_1": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "deepseek_r1_distill": {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"},
}
DEFAULT_TOKENS = {"bos_token": None, "eos_token": "<|im_end|>"}


def m(role, content, **extra):
    return {"role": role, "content": content, **extra}


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name, e.g. Zürich"},
                           "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"],
        },
    },
}


def call(args):
    return {"type": "function", "function": {"name": "get_weather", "arguments": args}}


CONVERSATIONS = [
    ("user", [m("user", "Hello!")]),
    ("system_user", [m("system", "You are terse."), m("user", "What is 2+2?")]),
    ("multi_turn", [m("user", "Hi"), m("assistant", "Hello, how can I help?"), m("user", "Tell me a joke.")]),
    ("system_multi_turn", [m("system", "Be kind."), m("user", "Hi"), m("assistant", "  Hello there.  "),
                           m("user", "Bye"), m("assistant", "Goodbye!")]),
    ("non_ascii", [m("user", "Grüße aus Zürich — 日本語で答えて 👋"), m("assistant", "こんにちは！\n\tÇa va ?")]),
    ("whitespace", [m("user", "\n  padded question \n"), m("assistant", "\n\nanswer with blank lines\n\n")]),
    ("think", [m("user", "Why is the sky blue?"),
               m("assistant", "<think>\nRayleigh scattering.\n</think>\n\nBecause of Rayleigh scattering."),
               m("user", "And sunsets?")]),
    ("tool_calls_dict", [m("user", "Weather in Zürich?"), m("assistant", "", tool_calls=[call({"city": "Zürich"})]),
                         m("tool", "{\"temp\": 21}"), m("assistant", "It is 21 °C.")]),
    ("tool_calls_string", [m("user", "Weather in Paris and Rome?"),
                           m("assistant", None, tool_calls=[call("{\"city\": \"Paris\"}"), call("{\"city\": \"Rome\"}")]),
                           m("tool", "18"), m("tool", "25"), m("assistant", "Paris 18, Rome 25.")]),
    ("not_alternating", [m("user", "one"), m("user", "two")]),
    ("assistant_first", [m("assistant", "I start."), m("user", "ok")]),
    ("empty", []),
]

TOOLS_CASES = [("tools_list", [m("system", "Use tools."), m("user", "Weather in Oslo?")]),
               ("tools_list_no_system", [m("user", "Weather in Oslo?")])]


def render(template, context):
    try:
        return {"output": template.render(**copy.deepcopy(context))}
    except jinja2.exceptions.TemplateError as e:  # raise_exception, undefined values, type errors
        return {"error": str(e), "error_type": type(e).__name__}
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as e:
        return {"error": str(e), "error_type": type(e).__name__}


def main():
    cases = []
    for name in sorted(SOURCES):
        text = (DIR / f"{name}.jinja").read_text(encoding="utf-8")
        template = _compile_jinja_template(text)
        tokens = TOKENS.get(name, DEFAULT_TOKENS)
        convs = CONVERSATIONS + (TOOLS_CASES if "tools" in text else [])
        for label, messages in convs:
            for gen in (False, True):
                context = {"messages": messages, "tools": [WEATHER] if label.startswith("tools_list") else None,
                           "documents": None, "add_generation_prompt": gen, **tokens}
                if name == "qwen3" and label == "think":
                    context["enable_thinking"] = False
                cases.append({"template": name, "conversation": label, "context": context, **render(template, context)})
    (DIR / "expected.json").write_text(json.dumps(cases, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (DIR / "SOURCES.md").write_text(
        "# Chat templates\n\nEach `<name>.jinja` is the `chat_template` of a public checkpoint's tokenizer_config.json, "
        "byte for byte; `expected.json` holds transformers' renderings "
        "(tools/reference/data_make_jinja_reference.py).\n\n| file | model |\n|---|---|\n"
        + "".join(f"| `{k}.jinja` | {v} |\n" for k, v in sorted(SOURCES.items())), encoding="utf-8")
    errors = sum("error" in c for c in cases)
    print(f"{len(cases)} cases ({errors} errors) from {len(SOURCES)} templates")


if __name__ == "__main__":
    main()
