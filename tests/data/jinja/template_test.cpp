// Tests for prefopt/data/jinja/ (the Jinja2-subset interpreter of chat templates).
// Expected strings come from transformers' own renderer (_compile_jinja_template: jinja2 3.1.6,
// sandboxed, trim_blocks, lstrip_blocks) via tools/reference/data_make_jinja_reference.py:
//  - tests/data/chat/templates/: 13 real chat templates (Llama 2, Llama 3, Llama 3.1, Qwen2,
//    Qwen2.5, Qwen3, Mistral, Gemma, Phi-3, SmolLM2, DeepSeek-R1-Distill, Zephyr, ChatML) over
//    varied conversations, with expected.json holding each rendering or the error raised;
//  - tests/data/chat/jinja_constructs.json: one small template per construct.
// The errors and limits below are prefopt's own.
#include <doctest/doctest.h>

#include <prefopt/data/jinja/template.hpp>
#include <support/data.hpp>

#include <fstream>
#include <iterator>
#include <set>
#include <string>

namespace {

using namespace prefopt::data::jinja;
using ojson = nlohmann::ordered_json;

std::string read_text(const std::string& rel) {
  std::ifstream in(prefopt::test::data_path(rel), std::ios::binary);
  REQUIRE(in);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string run(std::string_view text, const ojson& context = ojson::object(), limits lim = {}) {
  return render(compile(text, "t.jinja"), context, lim);
}

// The error's what() for a template that must fail.
template <class E> std::string failure(std::string_view text, const ojson& context = ojson::object(), limits lim = {}) {
  try {
    (void)run(text, context, lim);
  } catch (const E& e) {
    return e.what();
  }
  FAIL_CHECK("no error for " << text);
  return {};
}

// Checks one expected.json / jinja_constructs.json case: the output byte for byte, or an error
// whose message is jinja2's (raise_exception's text, undefined values); Python's own TypeError
// wording is not reproduced, only that the render fails.
void check_case(const ojson& c, const program& p) {
  if (c.contains("output")) {
    CHECK(render(p, c["context"]) == c["output"].get<std::string>());
    return;
  }
  try {
    const auto out = render(p, c["context"]);
    FAIL_CHECK("rendered instead of failing: " << out);
  } catch (const render_error& e) {
    if (c["error_type"] != "TypeError") CHECK(e.why() == c["error"].get<std::string>());
  }
}

} // namespace

TEST_CASE("real chat templates render as transformers renders them") {
  const auto cases = ojson::parse(read_text("chat/templates/expected.json"));
  REQUIRE(cases.size() >= 300);
  std::set<std::string> templates, failing;
  std::size_t tool_cases = 0, raised = 0;
  for (const auto& c : cases) {
    const auto name = c["template"].get<std::string>();
    CAPTURE(name);
    CAPTURE(c["conversation"].get<std::string>());
    CAPTURE(c["context"]["add_generation_prompt"].get<bool>());
    templates.insert(name);
    const auto p = compile(read_text("chat/templates/" + name + ".jinja"), name + ".jinja");
    check_case(c, p);
    if (c.contains("error")) failing.insert(name);
    if (c.contains("error") && c["error_type"] == "TemplateError") ++raised;
    if (c.contains("output") && c["conversation"].get<std::string>().starts_with("tool")) ++tool_cases;
  }
  CHECK(templates == std::set<std::string>{"chatml", "deepseek_r1_distill", "gemma", "llama2", "llama3", "llama3_1",
                                           "mistral", "phi3", "qwen2", "qwen2_5", "qwen3", "smollm2", "zephyr"});
  CHECK(raised >= 20);      // raise_exception messages, compared exactly
  CHECK(tool_cases >= 20);  // tool calls, tool results and tools lists rendered
  CHECK(failing.contains("gemma"));
}

TEST_CASE("each construct renders as jinja2 renders it") {
  const auto cases = ojson::parse(read_text("chat/jinja_constructs.json"));
  REQUIRE(cases.size() >= 50);
  for (const auto& c : cases) {
    CAPTURE(c["name"].get<std::string>());
    check_case(c, compile(c["template"].get<std::string>(), "t.jinja"));
  }
}

TEST_CASE("values print as Python prints them") {
  CHECK(python_float(1.0) == "1.0");
  CHECK(python_float(0.1) == "0.1");
  CHECK(python_float(-2.5e-7) == "-2.5e-07");
  CHECK(python_float(1e16) == "1e+16");
  CHECK(python_float(123456789012345.0) == "123456789012345.0");
  CHECK(python_float(0.0001) == "0.0001");
  CHECK(run("{{ [1, 'a', none, true, 2.0] }}|{{ {'k': [1]} }}|{{ x.items() | list }}", ojson{{"x", {{"a", 1}}}}) ==
        "[1, 'a', None, True, 2.0]|{'k': [1]}|[('a', 1)]");
  CHECK(run("{{ 'héllo wörld'.upper() }}|{{ 'ÉCOLE'.lower() }}|{{ '日本語'[1] }}|{{ '日本語' | length }}") ==
        "HÉLLO WÖRLD|école|本|3");
}

TEST_CASE("syntax errors and unsupported constructs name the construct and the line") {
  CHECK(failure<template_error>("line one\n{% if x %}\n{% include 'other.jinja' %}\n{% endif %}") ==
        "t.jinja line 3: unsupported construct: {% include %}");
  CHECK(failure<template_error>("{% extends 'base' %}") == "t.jinja line 1: unsupported construct: {% extends %}");
  CHECK(failure<template_error>("a\n{% for x in xs recursive %}{% endfor %}") ==
        "t.jinja line 2: unsupported construct: recursive for loops");
  CHECK(failure<template_error>("{% for x in xs %}\n\n{{ x }}") == "t.jinja line 3: missing {% endfor %}");
  CHECK(failure<template_error>("\n\n{{ x + }}") == "t.jinja line 3: expected an expression, found the end of the tag");
  CHECK(failure<template_error>("{{ 'open") == "t.jinja line 1: unterminated string literal");
  CHECK(failure<template_error>("x\n{{ a ") == "t.jinja line 2: unclosed tag: expected '}}'");
  CHECK(failure<template_error>("{% endif %}") == "t.jinja line 1: unexpected {% endif %}");
  CHECK(failure<template_error>("{{ a ; b }}") == "t.jinja line 1: unexpected character ';' in a tag");
  // Template errors are config errors: the template is the model's configuration.
  CHECK_THROWS_AS((void)compile("{% block x %}{% endblock %}"), prefopt::config_error);
}

TEST_CASE("render errors: raise_exception carries the template's message, undefined values name themselves") {
  try {
    (void)run("{% if messages[0].role == 'system' %}\n{{ raise_exception('System role not supported') }}{% endif %}",
              ojson{{"messages", ojson::array({{{"role", "system"}, {"content", "x"}}})}});
    FAIL_CHECK("no error");
  } catch (const render_error& e) {
    CHECK(e.why() == "System role not supported");
    CHECK(e.where() == "t.jinja line 2");
  }
  CHECK_THROWS_AS((void)run("{{ raise_exception('x') }}"), prefopt::data_error);
  CHECK(failure<render_error>("\n{{ m.content.strip() }}", ojson{{"m", ojson::object()}}) ==
        "t.jinja line 2: 'dict object' has no attribute 'content'");
  CHECK(failure<render_error>("{{ 1 + 'a' }}") == "t.jinja line 1: unsupported operand type(s) for +: 'int' and 'str'");
  CHECK(failure<render_error>("{{ x | wordwrap }}") == "t.jinja line 1: unsupported construct: filter 'wordwrap'");
  CHECK(failure<render_error>("{{ x | nosuch }}") == "t.jinja line 1: no filter named 'nosuch'");
  CHECK(failure<render_error>("{{ x is nosuch }}") == "t.jinja line 1: unsupported construct: test 'nosuch'");
  CHECK(failure<render_error>("{{ 1 // 0 }}") == "t.jinja line 1: integer division or modulo by zero");
  CHECK(failure<render_error>("{% set ns = namespace(_x=1) %}").find("underscore-prefixed") != std::string::npos);
  // A namespace stored inside itself would be a reference cycle that shared ownership never frees
  // (found by fuzzing: ns.s = ns, s ~ ns.s leaked); directly, through a list, a dict, another
  // namespace or a bound method.
  for (const char* t : {"{% set ns = namespace(s='x') %}{% set ns.s = ns, 1 %}",
                        "{% set ns = namespace(s='x') %}{% set ns.s = [[ns]] %}",
                        "{% set ns = namespace(s='x') %}{% set ns.s = {'a': ns}.items %}",
                        "{% set a = namespace(x=1) %}{% set b = namespace(y=a) %}{% set a.x = {'b': b} %}"})
    CHECK(failure<render_error>(t).find("cannot store a namespace inside itself") != std::string::npos);
  CHECK(run("{% set a = namespace(x=1) %}{% set b = namespace(y=a) %}{% set shared = [a, a] %}{% set b.y = [shared, shared] %}{{ b.y | length }}") == "2");
  // Undefined values are harmless where jinja2's default Undefined is: printed, iterated, tested.
  CHECK(run("[{{ nothing }}{% for x in nothing %}{{ x }}{% endfor %}{{ nothing is defined }}{{ nothing | length }}]") ==
        "[False0]");
}

TEST_CASE("limits stop hostile templates cleanly") {
  limits small{.max_output = 1000, .max_iterations = 500, .max_depth = 8};
  CHECK(failure<render_error>("{% for i in range(100000) %}x{% endfor %}", {}, small) ==
        "t.jinja line 1: more than 500 loop iterations (the limit)");
  CHECK(failure<render_error>("{% for i in range(400) %}{% for j in range(400) %}{% endfor %}{% endfor %}", {}, small)
            .find("loop iterations (the limit)") != std::string::npos);
  CHECK(failure<render_error>("{% for i in range(100) %}{{ 'abcdefghijklmnop' }}{% endfor %}", {}, small) ==
        "t.jinja line 1: output larger than 1000 bytes (the limit)");
  CHECK(failure<render_error>("{{ 'x' * 1000000000000 }}") == "t.jinja line 1: output larger than 33554432 bytes (the limit)");
  CHECK(failure<render_error>("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", {}, small) ==
        "t.jinja line 1: macros nested deeper than 8 (the limit)");
  CHECK(failure<template_error>("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}") ==
        "t.jinja line 1: expression nested too deeply");
  CHECK(failure<template_error>("{{ " + std::string(5000, '[') + " }}") == "t.jinja line 1: expression nested too deeply");
  std::string deep;
  for (int i = 0; i < 300; ++i) deep += "{% if true %}";
  CHECK(failure<template_error>(deep).find("nested too deeply") != std::string::npos);
  CHECK(failure<render_error>("{{ 9223372036854775807 + 1 }}") == "t.jinja line 1: integer too large");
  // Found by fuzzing: an indent width that is no number; huge steps and exponents stay cheap.
  CHECK(failure<render_error>("{{ 'a\nb' | indent(nothing) }}") ==
        "t.jinja line 2: indent width must be an integer or a string, got Undefined");
  CHECK(failure<render_error>("{{ 'a' | indent(100000000000) }}") == "t.jinja line 1: indent too wide");
  // Found by fuzzing: an empty sequence times a huge count looped n times.
  CHECK(run("{{ (() * 100001103230) | length }}|{{ [] * 9223372036854775807 }}|{{ '' * 100001103230 }}|") == "0|[]||");
  CHECK(run("{{ (-1) ** 1000000000000000000 }}|{{ 'abc'[::9223372036854775807] }}|{{ range(0, 9223372036854775807, "
            "4611686018427387904) | list }}") == "1|a|[0, 4611686018427387904]");
}

TEST_CASE("globals transformers adds: strftime_now, namespace, dict, range") {
  const auto year = run("{{ strftime_now('%Y') }}");
  CHECK(year.size() == 4);
  CHECK(year >= "2024");
  CHECK(run("{% set ns = namespace(a=1) %}{% set ns.a = ns.a * 5 %}{{ ns.a }}|{{ dict(x=1) | tojson }}|{{ range(2, 8, 3) | list }}") ==
        "5|{\"x\": 1}|[2, 5]");
}
