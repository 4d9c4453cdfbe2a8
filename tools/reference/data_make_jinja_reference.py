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

Also renders one small template per construct the interpreter supports (CONSTRUCTS below) into
tests/data/chat/jinja_constructs.json: {"name", "template", "context", "output"} or {..., "error"}.

Writes tests/data/chat/templates/tool_records.json: TOOL_RECORDS (messages as dataset records hold
them: tool_calls, null content, name, tool_call_id, reasoning_content) rendered per template, with and
without tools, by tokenizer.apply_chat_template(messages, tools=..., tokenize=False,
add_generation_prompt=...) on a tokenizer carrying the template: {"template", "tokens" (its special tokens, as
tokenizer_config.json holds them), "conversation", "messages", "tools",
"add_generation_prompt", "output"} or {..., "error", "error_type"}.

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


CONSTRUCTS = [  # (name, template, context): one construct each; err_*: the error transformers raises
 ("if_elif_else", "{% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %}", {"x": 2}),
 ("for_loop_vars", "{% for a in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}|{% endfor %}", {"xs": ["a","b","c"]}),
 ("for_else", "{% for a in xs %}{{ a }}{% else %}empty{% endfor %}", {"xs": []}),
 ("for_filter", "{% for a in xs if a is odd %}{{ a }}{{ loop.index }},{% endfor %}", {"xs": [1,2,3,4,5]}),
 ("for_unpack_items", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {"d": {"b": 1, "a": 2}}),
 ("set_scope", "{% set y = 1 %}{% for a in xs %}{% set y = a %}{% endfor %}{{ y }}", {"xs": [5,6]}),
 ("set_in_loop_persists", "{% for a in xs %}{% if loop.first %}{% set z = 'first' %}{% endif %}{{ z }},{% endfor %}", {"xs": [1,2]}),
 ("namespace", "{% set ns = namespace(n=0, s='') %}{% for a in xs %}{% set ns.n = ns.n + a %}{% endfor %}{{ ns.n }}", {"xs": [1,2,3]}),
 ("set_block", "{% set b %}x{{ 1 + 1 }}y{% endset %}[{{ b }}]", {}),
 ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', punct='?') }}", {}),
 ("macro_sees_globals", "{% macro m() %}{{ bos_token }}{% endmacro %}{{ m() }}", {"bos_token": "<s>"}),
 ("ws_dash", "a  {%- if true -%}  b  {%- endif -%}  c", {}),
 ("ws_expr_dash", "a  {{- 'b' -}}  c", {}),
 ("trim_blocks", "{% if true %}\nline\n{% endif %}\nend", {}),
 ("lstrip_blocks", "x\n    {% if true %}\n    y\n    {% endif %}\nz", {}),
 ("lstrip_plus", "x\n    {%+ if true %}y{% endif %}", {}),
 ("comment", "a{# hidden #}b\n  {# c #}\nd", {}),
 ("trailing_newline", "abc\n", {}),
 ("arith", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 1.5 + 1 }}", {}),
 ("concat_tilde", "{{ 'a' ~ 1 ~ none ~ true }}", {}),
 ("compare_chain", "{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 'x' != 'y' }}", {}),
 ("in_not_in", "{{ 'a' in 'cat' }} {{ 2 in [1,2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1,2] }}", {}),
 ("and_or_not", "{{ 1 and 'x' }} {{ 0 or 'y' }} {{ not 0 }} {{ none or [] }}|", {}),
 ("ternary", "{{ 'yes' if x else 'no' }} {{ 'only' if not x }}|", {"x": False}),
 ("subscript_slice", "{{ xs[0] }} {{ xs[-1] }} {{ xs[1:] }} {{ xs[:2] }} {{ xs[::-1] }} {{ xs[::2] }} {{ 'héllo'[1:3] }} {{ 'abc'[::-1] }}", {"xs": [1,2,3,4]}),
 ("attr_item", "{{ m.role }} {{ m['role'] }} {{ m.missing is defined }} {{ m.get('role') }} {{ m.get('x', 'dflt') }} {{ m.get('x') }}", {"m": {"role": "user"}}),
 ("str_methods", "{{ '  a b  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  a'.lstrip() }}|{{ 'a  '.rstrip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x','c')) }}|{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}|{{ 'hello world'.title() }}|{{ 'aaa'.replace('a','b',2) }}", {}),
 ("dict_methods", "{% for k in d.keys() %}{{ k }}{% endfor %}|{% for v in d.values() %}{{ v }}{% endfor %}|{{ d.items() | list }}", {"d": {"x": 1, "y": [2]}}),
 ("filters_text", "{{ '  t  ' | trim }}|{{ 'ab' | upper }}|{{ 'AB' | lower }}|{{ 'hello WORLD' | capitalize }}|{{ 'a-b' | replace('-', '+') }}|{{ 'x' | safe }}|{{ 5 | string }}|{{ 'ab' | length }}|{{ 'héllo' | length }}", {}),
 ("filters_default", "{{ missing | default('d') }}|{{ '' | default('e', true) }}|{{ '' | default('e') }}|{{ none | default('n') }}", {}),
 ("filters_list", "{{ xs | join(', ') }}|{{ xs | first }}|{{ xs | last }}|{{ xs | reverse | list }}|{{ xs | length }}|{{ [3,1,3,2] | unique | list }}|{{ 'ab' | list }}", {"xs": [1,2,3]}),
 ("filters_num", "{{ '42' | int }}|{{ 'x' | int }}|{{ 3.7 | int }}|{{ '2.5' | float }}|{{ -3 | abs }}|{{ 2.567 | round(2) }}|{{ 2.5 | round }}|{{ 7 | float }}", {}),
 ("filters_dict", "{{ d | items | list }}|{{ d | dictsort }}|{{ d | dictsort(by='value') }}", {"d": {"b": 2, "a": 3}}),
 ("selectattr_map", "{{ ms | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}|{{ ms | rejectattr('role', 'eq', 'user') | map(attribute='content') | list }}|{{ ms | selectattr('tool') | list | length }}", {"ms": [{"role":"user","content":"a"},{"role":"assistant","content":"b","tool":1},{"role":"user","content":"c"}]}),
 ("select_reject", "{{ [1,2,3,4] | select('even') | list }} {{ [1,2,3,4] | reject('odd') | list }} {{ [0,1,'',2] | select | list }}", {}),
 ("indent", "{{ 'a\nb\n\nc' | indent(2) }}|{{ 'a\nb' | indent(4, true) }}|{{ 'a\n\nb' | indent(2, blank=true) }}", {}),
 ("tojson", "{{ d | tojson }}|{{ d | tojson(indent=2) }}|{{ d | tojson(sort_keys=true) }}|{{ 'é\"\n' | tojson }}|{{ [1.0, 2.5, none, true] | tojson }}", {"d": {"z": [1, {"a": "ü"}], "a": None, "e": {}, "l": []}}),
 ("tests", "{{ x is defined }}{{ y is undefined }}{{ none is none }}{{ 'a' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ [] is sequence }}{{ 1 is number }}{{ 1 is integer }}{{ 1.0 is integer }}{{ true is boolean }}{{ true is true }}{{ false is false }}{{ 1 is eq 1 }}{{ 2 is equalto 2 }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 2 is in [1,2] }}{{ x is not none }}", {"x": 1}),
 ("print_values", "{{ none }}|{{ true }}|{{ 1.0 }}|{{ 1e20 }}|{{ 0.0001 }}|{{ [1, 'a', none] }}|{{ {'k': 'v'} }}|{{ \"it's\" }}|{{ missing }}|", {}),
 ("string_escapes", "{{ 'a\\tb\\\\c\\'d' }}|{{ \"x\\\"y\" }}|{{ 'a' 'b' }}", {}),
 ("range_loop", "{% for i in range(3) %}{{ i }}{% endfor %}|{% for i in range(5, 0, -2) %}{{ i }}{% endfor %}", {}),
 ("loop_controls", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
 ("nested_loops", "{% for a in [1,2] %}{% for b in [3,4] %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.index }};{% endfor %}", {}),
 ("list_concat", "{{ [1] + [2] }} {{ 'ab' * 2 }} {{ [0] * 3 }}", {}),
 ("dict_literal", "{% set d = {'a': 1, 'b': [1,2]} %}{{ d.a }}{{ d['b'][1] }}{{ d | length }}", {}),
 ("generation_tag", "{% for m in ms %}{% generation %}{{ m }}{% endgeneration %}{% endfor %}", {"ms": ["a", "b"]}),
 ("raw", "{% raw %}{{ not parsed }}{% endraw %}", {}),
 ("dict_global", "{% set d = dict(a=1, b=2) %}{{ d | tojson }}", {}),
 ("loop_prev_next", "{% for a in xs %}{{ loop.previtem is defined }}{{ loop.nextitem | default('-') }}{{ loop.cycle('x','y') }} {% endfor %}", {"xs": [1,2,3]}),
 ("none_methods", "{{ m.content is none }}{{ m.tool_calls is defined }}{{ m.tool_calls | length }}", {"m": {"content": None}}),
 # errors
 ("err_raise", "{{ raise_exception('custom: ' ~ x) }}", {"x": 7}),
 ("err_undefined_attr", "{{ a.b.c }}", {"a": {}}),
 ("err_undefined_name_attr", "{{ nothere.b }}", {}),
 ("err_none_attr_call", "{{ x.strip() }}", {"x": None}),
 ("err_list_element", "{{ xs[5]['role'] }}", {"xs": []}),
 ("err_add_undefined", "{{ 'a' + nothere }}", {}),
 ("err_append", "{% set xs = [] %}{{ xs.append(1) }}", {}),
]

# Conversations as dataset records carry them, for tool_records.json: message keys beyond role and
# content (tool_calls with dict or JSON-string arguments, null or absent content, tool results with
# name/tool_call_id, reasoning_content), each rendered with and without a tools list (its keys in
# schema order, not sorted) by the tokenizer's own apply_chat_template, as TRL calls it.
TOOL_RECORDS = [
    ("call_dict_args", [m("system", "You answer about the weather."), m("user", "Weather in Zürich?"),
                        m("assistant", "", tool_calls=[{"id": "call_1", "type": "function", "function": {
                            "name": "get_weather", "arguments": {"unit": "celsius", "city": "Zürich"}}}]),
                        m("tool", "{\"temp\": 21}", name="get_weather", tool_call_id="call_1"),
                        m("assistant", "It is 21 °C.")]),
    ("call_string_args_null_content", [m("user", "Weather in Paris and Rome?"),
                                       m("assistant", None, tool_calls=[call("{\"city\": \"Paris\"}"),
                                                                        call("{\"city\": \"Rome\"}")]),
                                       m("tool", "18"), m("tool", "25"), m("assistant", "Paris 18, Rome 25.")]),
    ("call_no_content_ends_tool", [m("user", "Weather in Oslo?"),
                                   {"role": "assistant", "tool_calls": [call({"city": "Oslo"})]},
                                   m("tool", "-3", name="get_weather")]),
    ("call_unwrapped", [m("user", "Weather in Bern?"),
                        m("assistant", "Let me check.", tool_calls=[{"name": "get_weather", "arguments": {"city": "Bern"}}]),
                        m("tool", "12"), m("assistant", "12 degrees.")]),
    ("reasoning_content", [m("user", "Why is the sky blue?"),
                           m("assistant", "Because of Rayleigh scattering.", reasoning_content="Short waves scatter more."),
                           m("user", "And sunsets?")]),
    ("plain_with_tools", [m("user", "Hello!"), m("assistant", "Hi, how can I help?")]),
]


def tool_records():
    """tool_records.json: each conversation through tokenizer.apply_chat_template, per template."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    out = []
    for name in sorted(SOURCES):
        text = (DIR / f"{name}.jinja").read_text(encoding="utf-8")
        tokens = {k: v for k, v in TOKENS.get(name, DEFAULT_TOKENS).items() if v is not None}
        tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({"<unk>": 0}, unk_token="<unk>")),
                                      unk_token="<unk>", **tokens)
        tok.chat_template = text
        for label, messages in TOOL_RECORDS:
            for tools in (None, [WEATHER]):
                for gen in (False, True):
                    case = {"template": name, "tokens": tokens, "conversation": label,
                            "messages": messages, "tools": tools, "add_generation_prompt": gen}
                    try:
                        case["output"] = tok.apply_chat_template(copy.deepcopy(messages), tools=copy.deepcopy(tools),
                                                                 tokenize=False, add_generation_prompt=gen)
                    except (jinja2.exceptions.TemplateError, TypeError, ValueError, AttributeError, KeyError,
                            IndexError) as e:
                        case["error"], case["error_type"] = str(e), type(e).__name__
                    out.append(case)
    return out


def render(template, context):
    try:
        return {"output": template.render(**copy.deepcopy(context))}
    except jinja2.exceptions.TemplateError as e:  # raise_exception, undefined values, type errors
        return {"error": str(e), "error_type": type(e).__name__}
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, jinja2.exceptions.SecurityError) as e:
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
    constructs = [{"name": name, "template": text, "context": context, **render(_compile_jinja_template(text), context)}
                  for name, text, context in CONSTRUCTS]
    (DIR.parent / "jinja_constructs.json").write_text(json.dumps(constructs, ensure_ascii=False, indent=1) + "\n",
                                                       encoding="utf-8")
    records = tool_records()
    (DIR / "tool_records.json").write_text(json.dumps(records, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{len(records)} tool record renderings ({sum('error' in c for c in records)} errors)")
    errors = sum("error" in c for c in cases)
    print(f"{len(cases)} cases ({errors} errors) from {len(SOURCES)} templates")


if __name__ == "__main__":
    main()
