// Tests for prefopt/data/chat_template.hpp. Expected strings: tests/data/chat/expected_<name>.json,
// rendered by transformers' apply_chat_template (jinja2) with each model's genuine chat template and
// by TRL's maybe_apply_chat_template, over the 52 conversations of conversations.json
// (tools/reference/data_make_chat_reference.py). The tokenizer_config.json files there carry the
// same templates, plus variants for select_chat_template's errors. gpt2-plain is prefopt's own
// template, checked against hand-written strings.
#include <doctest/doctest.h>

#include <prefopt/data/chat_template.hpp>
#include <support/data.hpp>

#include <fstream>
#include <iterator>
#include <map>
#include <string>

namespace {

using namespace prefopt::data;
using nlohmann::json;

json load(const std::string& name) {
  std::ifstream in(prefopt::test::data_path("chat/" + name));
  return json::parse(in);
}

messages to_messages(const json& v) {
  messages m;
  for (const auto& x : v) m.push_back({x["role"].get<std::string>(), x["content"].get<std::string>()});
  return m;
}

messages concat(messages a, const messages& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

chat_template select(const std::string& dir, if_no_template missing = if_no_template::error) {
  return select_chat_template(prefopt::test::data_path("chat/" + dir + "/tokenizer_config.json"), missing);
}

std::string config_error_of(const std::string& dir) {
  try {
    (void)select(dir);
  } catch (const prefopt::config_error& e) {
    return e.what();
  }
  FAIL_CHECK("no config_error for " << dir);
  return {};
}

} // namespace

TEST_CASE("every template renders the 52 conversations as transformers and TRL do") {
  const auto conversations = load("conversations.json");
  REQUIRE(conversations.size() == 52);
  const std::vector<std::pair<std::string, chat_template>> templates{
      {"qwen2", qwen2_template()},
      {"chatml", chatml_template()},
      {"smollm2", chatml_template("You are a helpful AI assistant named SmolLM, trained by Hugging Face")},
      {"qwen2_5", qwen2_5_template()},
      {"llama3", llama3_template()}};
  for (const auto& entry : templates) {
    const auto& name = entry.first;
    const auto& builtin = entry.second;
    CAPTURE(name);
    const auto t = select(name);
    CHECK(t == builtin);
    const auto expected = load("expected_" + name + ".json");
    REQUIRE(expected.size() == conversations.size());
    std::size_t generation = 0;
    for (std::size_t i = 0; i < conversations.size(); ++i) {
      CAPTURE(i);
      const auto prompt = to_messages(conversations[i]["prompt"]);
      const auto chosen = to_messages(conversations[i]["chosen"]);
      const auto rejected = to_messages(conversations[i]["rejected"]);
      const auto& e = expected[i];
      CHECK(render(t, concat(prompt, chosen)) == e["full"].get<std::string>());
      if (e.contains("generation")) {
        CHECK(render(t, prompt, true) == e["generation"].get<std::string>());
        ++generation;
      }
      const auto pair = render_pair(t, prompt, chosen, rejected);
      CHECK(pair.prompt == e["prompt"].get<std::string>());
      CHECK(pair.chosen == e["chosen"].get<std::string>());
      CHECK(pair.rejected == e["rejected"].get<std::string>());
      const auto unpaired = render_unpaired(t, prompt, chosen);
      CHECK(unpaired.prompt == e["unpaired_prompt"].get<std::string>());
      CHECK(unpaired.completion == e["unpaired_completion"].get<std::string>());
    }
    CHECK(generation >= 40);
  }
}

TEST_CASE("built-in templates by name") {
  CHECK(chat_template_by_name("qwen2") == qwen2_template());
  CHECK(chat_template_by_name("qwen2").default_system == "You are a helpful assistant.");
  CHECK(chat_template_by_name("chatml").name() == "chatml");
  CHECK(chat_template_by_name("qwen2.5").name() == "qwen2.5");
  CHECK(chat_template_by_name("llama3").bos_token == "<|begin_of_text|>");
  CHECK(chat_template_by_name("gpt2-plain").name() == "gpt2-plain");
  CHECK_THROWS_WITH_AS((void)chat_template_by_name("mistral"),
                       "chat template 'mistral': unknown; the built-in templates are chatml, qwen2, qwen2.5, llama3 "
                       "and gpt2-plain",
                       prefopt::config_error);
}

TEST_CASE("select_chat_template: named lists, AddedToken, jinja file, reformatted templates") {
  CHECK(select("llama3_named") == llama3_template());
  CHECK(select("llama3_added_token") == llama3_template());
  CHECK(select("jinja_file") == qwen2_5_template());
  CHECK(select("qwen2_reformatted") == qwen2_template());  // renders the same (checked in the script)
  CHECK(select("no_template", if_no_template::gpt2_plain) == gpt2_plain_template());
  CHECK(config_special_token(load("llama3_added_token/tokenizer_config.json"), "bos_token") == "<|begin_of_text|>");
  CHECK(config_special_token(load("qwen2/tokenizer_config.json"), "eos_token") == "<|im_end|>");
  CHECK_FALSE(config_special_token(load("qwen2/tokenizer_config.json"), "bos_token").has_value());
  // From JSON already read, where names the source.
  CHECK(select_chat_template(load("chatml/tokenizer_config.json"), "my/config.json") == chatml_template());
}

TEST_CASE("select_chat_template errors say what is wrong and how to choose") {
  const auto dir = prefopt::test::data_path("chat").string();
  CHECK(config_error_of("no_template") ==
        dir + "/no_template/tokenizer_config.json: has no chat_template; choose a template by name: chatml, qwen2, "
              "qwen2.5, llama3, or gpt2-plain for a base model that has none");
  CHECK(config_error_of("named_without_default") ==
        dir + "/named_without_default/tokenizer_config.json: field 'chat_template': has named templates (rag, "
              "tool_use) but none called 'default'; choose a built-in template by name (chatml, qwen2, qwen2.5, "
              "llama3, gpt2-plain)");
  CHECK(config_error_of("llama3_no_bos").starts_with(dir + "/llama3_no_bos/tokenizer_config.json: field 'bos_token': "
                                                           "missing"));
  CHECK_THROWS_AS((void)select("no_such_dir"), prefopt::io_error);
  CHECK_THROWS_AS((void)select_chat_template(prefopt::test::data_path("chat/conversations.json")),
                  prefopt::format_error);
  CHECK_THROWS_AS((void)select_chat_template(json::array()), prefopt::config_error);
  CHECK_THROWS_WITH_AS((void)select_chat_template(json{{"chat_template", "{% for m in messages %}\n{% call x %}"}},
                                                   "c.json"),
                       "c.json: field 'chat_template' line 2: unsupported construct: {% call %}",
                       prefopt::config_error);
}

TEST_CASE("templates prefopt does not know are rendered by the Jinja interpreter") {
  // Llama 3.1's template (tools, date, ipython) and a changed Qwen2 template are no built-in.
  const auto t31 = select("llama3_1");
  CHECK(t31.kind == chat_template_kind::jinja);
  CHECK(t31.name() == "jinja");
  CHECK(t31.variables == json{{"bos_token", "<|begin_of_text|>"}});
  CHECK(render(t31, messages{{"user", "Hi"}}, true) ==
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
        "Today Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n");
  const auto changed = select("qwen2_changed");
  CHECK(changed.kind == chat_template_kind::jinja);
  CHECK(render(changed, messages{{"user", "Hi"}}) ==
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\n");
  // A template that raises is a data error carrying its message.
  const auto gemma = jinja_template(
      "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}x",
      json::object(), "gemma");
  CHECK_THROWS_WITH_AS((void)render(gemma, messages{{"system", "s"}, {"user", "u"}}),
                       "gemma line 1: System role not supported", prefopt::data_error);
  // Rendering a record, the error names the record first.
  CHECK_THROWS_WITH_AS((void)render_pair(gemma, {{"system", "s"}, {"user", "u"}}, {{"assistant", "a"}},
                                         {{"assistant", "b"}}, "d.jsonl:7"),
                       "d.jsonl:7: the chat template fails on this record: gemma line 1: System role not supported",
                       prefopt::data_error);
}

TEST_CASE("a template as jinja renders the 52 conversations as the built-in does, under TRL's pair semantics") {
  const auto conversations = load("conversations.json");
  for (const std::string name : {"qwen2", "chatml", "smollm2", "qwen2_5", "llama3"}) {
    CAPTURE(name);
    const auto cfg = load(name + "/tokenizer_config.json");
    const auto t = jinja_template(cfg["chat_template"].get<std::string>(), cfg, name);
    const auto expected = load("expected_" + name + ".json");
    for (std::size_t i = 0; i < conversations.size(); ++i) {
      CAPTURE(i);
      const auto prompt = to_messages(conversations[i]["prompt"]);
      const auto chosen = to_messages(conversations[i]["chosen"]);
      const auto rejected = to_messages(conversations[i]["rejected"]);
      const auto& e = expected[i];
      CHECK(render(t, concat(prompt, chosen)) == e["full"].get<std::string>());
      if (e.contains("generation")) CHECK(render(t, prompt, true) == e["generation"].get<std::string>());
      const auto pair = render_pair(t, prompt, chosen, rejected);
      CHECK(pair.prompt == e["prompt"].get<std::string>());
      CHECK(pair.chosen == e["chosen"].get<std::string>());
      CHECK(pair.rejected == e["rejected"].get<std::string>());
      const auto unpaired = render_unpaired(t, prompt, chosen);
      CHECK(unpaired.prompt == e["unpaired_prompt"].get<std::string>());
      CHECK(unpaired.completion == e["unpaired_completion"].get<std::string>());
    }
  }
}

TEST_CASE("Qwen3's template: completions start with the empty think block, as TRL renders them") {
  const auto t = chat_template_from_setting(prefopt::test::data_path("chat/templates/qwen3.jinja").string(),
                                            json{{"eos_token", "<|im_end|>"}});
  const auto pair = render_pair(t, {{"user", "Hi"}}, {{"assistant", "Hello"}}, {{"assistant", "Go away"}});
  CHECK(pair.prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  CHECK(pair.chosen == "<think>\n\n</think>\n\nHello<|im_end|>\n");
  CHECK(pair.rejected == "<think>\n\n</think>\n\nGo away<|im_end|>\n");
}

TEST_CASE("chat_template_from_setting: auto, built-in names, named templates, .jinja files") {
  const auto cfg = load("named_without_default/tokenizer_config.json");
  CHECK(chat_template_from_setting("chatml", cfg) == chatml_template());
  CHECK(chat_template_from_setting("qwen2_5", cfg) == qwen2_5_template());
  CHECK(chat_template_from_setting("auto", load("qwen2/tokenizer_config.json")) == qwen2_template());
  const auto rag = chat_template_from_setting("rag", cfg, "c.json");
  CHECK(rag.kind == chat_template_kind::jinja);
  CHECK(render(rag, messages{{"user", "Hi"}}, true) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  const auto file = prefopt::test::data_path("chat/templates/zephyr.jinja").string();
  const auto zephyr = chat_template_from_setting(file, json{{"eos_token", "</s>"}});
  CHECK(render(zephyr, messages{{"user", "Hi"}}, true) == "<|user|>\nHi</s>\n<|assistant|>\n");
  const auto pair = render_pair(zephyr, {{"user", "Q"}}, {{"assistant", "A"}}, {{"assistant", "B"}});
  CHECK(pair.prompt == "<|user|>\nQ</s>\n<|assistant|>\n");
  CHECK(pair.chosen == "A</s>\n");
  CHECK_THROWS_AS((void)chat_template_from_setting("missing.jinja", cfg), prefopt::io_error);
  CHECK_THROWS_WITH_AS((void)chat_template_from_setting("mistral", cfg),
                       "chat template 'mistral': unknown; give a built-in template (chatml, qwen2, qwen2.5, llama3, "
                       "gpt2-plain), auto (the model's own), the name of one of its tokenizer_config.json's named "
                       "templates, or a .jinja file",
                       prefopt::config_error);
}

TEST_CASE("gpt2-plain: contents joined by the separator; EOS added by to_text") {
  const auto t = gpt2_plain_template();
  const messages prompt{{"system", "Be kind."}, {"user", "Q?"}};
  const messages chosen{{"assistant", "Yes."}}, rejected{{"assistant", "No."}};
  CHECK(render(t, prompt) == "Be kind.\n\nQ?");
  CHECK(render(t, prompt, true) == "Be kind.\n\nQ?\n\n");
  CHECK(render(t, messages{}, true).empty());
  const auto pair = render_pair(t, prompt, chosen, rejected);
  CHECK(pair.prompt == "Be kind.\n\nQ?\n\n");
  CHECK(pair.chosen == "Yes.");
  CHECK(pair.rejected == "No.");
  const preference_record rec{.prompt = prompt, .chosen = chosen, .rejected = rejected};
  const auto text = to_text(rec, t, "<|endoftext|>");
  CHECK(text.prompt == "Be kind.\n\nQ?\n\n");
  CHECK(text.chosen == "Yes.<|endoftext|>");
  CHECK(text.rejected == "No.<|endoftext|>");
  // Continuing an assistant message: no separator after it, the completion starts with one.
  const auto cont = render_pair(gpt2_plain_template(" | "), {{"user", "Q"}, {"assistant", "Part"}}, chosen, rejected);
  CHECK(cont.prompt == "Q | Part");
  CHECK(cont.chosen == " | Yes.");
}

TEST_CASE("to_text: strings get EOS as TRL's trainers add it; chat templates keep their end of turn") {
  const preference_record s{.prompt = "The sky is", .chosen = " blue.", .rejected = " green.</s>"};
  const auto st = to_text(s, llama3_template(), "</s>");
  CHECK(st.prompt == "The sky is");
  CHECK(st.chosen == " blue.</s>");
  CHECK(st.rejected == " green.</s>");
  const preference_record c{.prompt = messages{{"user", "Hi"}},
                            .chosen = messages{{"assistant", "Hello"}},
                            .rejected = messages{{"assistant", "Bye"}}};
  const auto ct = to_text(c, qwen2_template(), "<|im_end|>");
  CHECK(ct.prompt ==
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n");
  CHECK(ct.chosen == "Hello<|im_end|>\n");
  const unpaired_record u{.prompt = "Q:", .completion = " A", .label = true};
  CHECK(to_text(u, chatml_template(), "<eos>").completion == " A<eos>");
  const unpaired_record uc{
      .prompt = messages{{"user", "Q"}}, .completion = messages{{"assistant", " A "}}, .label = false};
  const auto ut = to_text(uc, llama3_template(), "<|eot_id|>");
  CHECK(ut.completion == "A<|eot_id|>");
  const preference_record mixed{.prompt = "p", .chosen = messages{{"assistant", "x"}}, .rejected = "r"};
  CHECK_THROWS_AS((void)to_text(mixed, chatml_template(), ""), prefopt::data_error);
}

TEST_CASE("records read from a file render through their template") {
  const auto f = read_preference_file(prefopt::test::data_path("datasets/conversational.jsonl.gz"));
  const auto& r = f.pairs().at(0);
  const auto text = to_text(r, llama3_template(), "<|eot_id|>", prefopt::where_in(f.file, r.line));
  CHECK(text.prompt == "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat color is the sky?<|eot_id|>"
                       "<|start_header_id|>assistant<|end_header_id|>\n\n");
  CHECK(text.chosen == "It is blue.<|eot_id|>");
  CHECK(text.rejected == "It is green.<|eot_id|>");
}

TEST_CASE("rendering errors") {
  CHECK_THROWS_WITH_AS(
      (void)render_pair(chatml_template(), {}, {{"assistant", "a"}}, {{"assistant", "b"}}, "d.jsonl:4"),
                       "d.jsonl:4: field 'prompt': empty prompt", prefopt::data_error);
  CHECK_THROWS_WITH_AS((void)render_unpaired(llama3_template(), {{"system", "s"}}, {{"assistant", "a"}}, "d.jsonl:5"),
                       "d.jsonl:5: field 'prompt': the prompt ends with a system message; it must end with a user, "
                       "tool or assistant message",
                       prefopt::data_error);
  CHECK_THROWS_AS((void)render(chatml_template(), messages{{"user", "q"}}, true, true), prefopt::config_error);
  CHECK_THROWS_AS((void)render(qwen2_5_template(), messages{}), prefopt::data_error);
}

TEST_CASE("Python's whitespace, as Jinja's trim and str.rstrip see it") {
  using prefopt::data::detail::python_strip;
  CHECK(python_strip(" \t\n\v\f\r\x1c\x1d\x1e\x1f x y \xc2\x85\xc2\xa0\xe1\x9a\x80\xe2\x80\x80\xe2\x80\x8a\xe2\x80\xa8"
                     "\xe2\x80\xa9\xe2\x80\xaf\xe2\x81\x9f\xe3\x80\x80") == "x y");
  // U+200B is not whitespace to Python.
  CHECK(python_strip("\xe2\x80\x8bzero width\xe2\x80\x8b") == "\xe2\x80\x8bzero width\xe2\x80\x8b");
  CHECK(python_strip("   ").empty());
  // The common prefix stops before é/è, not inside them.
  CHECK(prefopt::data::detail::common_prefix("na\xc3\xafve \xc3\xa9", "na\xc3\xafve \xc3\xa8") == 7);
}

TEST_CASE("records with tool calls, tool results, reasoning and tools render as apply_chat_template renders them") {
  // tool_records.json: transformers' tokenizer.apply_chat_template(messages, tools=...) over 13 real
  // templates; the messages go through the dataset reader's message parser (every key kept, in the
  // file's order) and the template chosen by select_chat_template: the built-in chatml, qwen2,
  // qwen2.5, smollm2 and llama3 kinds fall back to their genuine Jinja text.
  std::ifstream in(prefopt::test::data_path("chat/templates/tool_records.json"));
  const auto cases = nlohmann::ordered_json::parse(in);
  REQUIRE(cases.size() >= 300);
  std::map<std::string, chat_template> templates;
  std::size_t rendered = 0, by_builtin = 0, with_tools = 0, failed = 0;
  for (const auto& c : cases) {
    const auto name = c["template"].get<std::string>();
    const bool gen = c["add_generation_prompt"].get<bool>();
    CAPTURE(name);
    CAPTURE(c["conversation"].get<std::string>());
    CAPTURE(gen);
    CAPTURE(!c["tools"].is_null());
    if (!templates.contains(name)) {
      std::ifstream tf(prefopt::test::data_path("chat/templates/" + name + ".jinja"), std::ios::binary);
      json cfg = json(c["tokens"]);
      cfg["chat_template"] = std::string(std::istreambuf_iterator<char>(tf), std::istreambuf_iterator<char>());
      templates.emplace(name, select_chat_template(cfg));
    }
    const auto& t = templates.at(name);
    const prefopt::data::detail::record_place at{"tool_records.json", 1};
    const auto ms = prefopt::data::detail::parse_messages(json(c["messages"]), at, "messages", &c["messages"]);
    json record = json::object();
    record["tools"] = json(c["tools"]);
    const auto tools = prefopt::data::detail::parse_tools(record, at, &c["tools"]);
    if (c.contains("output")) {
      CHECK(render(t, ms, gen, false, tools) == c["output"].get<std::string>());
      ++rendered;
      by_builtin += t.kind != chat_template_kind::jinja;
      with_tools += !tools.is_null();
    } else {
      CHECK_THROWS_AS((void)render(t, ms, gen, false, tools), prefopt::error);
      ++failed;
    }
  }
  CHECK(templates.at("qwen2_5").kind == chat_template_kind::qwen2_5);
  CHECK(templates.at("llama3").kind == chat_template_kind::llama3);
  CHECK(templates.at("chatml").kind == chat_template_kind::chatml);
  CHECK(templates.at("llama3_1").kind == chat_template_kind::jinja);
  CHECK(rendered >= 180);
  CHECK(by_builtin >= 60);
  CHECK(with_tools >= 90);
  CHECK(failed >= 100);
}

TEST_CASE("tools reach the template; a built-in renders its genuine text when a record needs it") {
  const auto tools = nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": "f"}}])");
  const messages q{{"user", "Hi"}};
  // Qwen2.5 with tools: the tool block in the system turn, keys in the record's order.
  const auto out = render(qwen2_5_template(), q, true, false, tools);
  CHECK(out.find("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"f\"}}\n</tools>") != std::string::npos);
  CHECK(render(qwen2_5_template(), q, true) ==
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  // A ChatML template with its own default system text, through the genuine text: same output.
  auto odd = chatml_template("It's a \"test\"\\n\nsecond line");
  message with_name{"user", "Hi", nlohmann::ordered_json::parse(R"({"role": "user", "content": "Hi", "name": "ann"})")};
  CHECK(render(odd, messages{with_name}, true) == render(odd, q, true));
  CHECK(render(odd, q).starts_with("<|im_start|>system\nIt's a \"test\"\\n\nsecond line<|im_end|>\n"));
  // Continuing a final message that has more keys than role and content.
  message partial{"assistant", "Sure", nlohmann::ordered_json::parse(R"({"role": "assistant", "content": "Sure", "name": "b"})")};
  CHECK(render(qwen2_5_template(), messages{{"user", "Hi"}, partial}, false, true).ends_with("<|im_start|>assistant\nSure"));
  // to_text passes the record's tools column.
  preference_record r{.prompt = q, .chosen = messages{{"assistant", "A"}}, .rejected = messages{{"assistant", "B"}}};
  r.tools = tools;
  CHECK(to_text(r, qwen2_5_template(), "<|im_end|>").prompt == out);
  // maybe_apply_chat_template: tools = tools or None, so [] renders as no tools (Llama 3.1 would
  // otherwise print its tool preamble).
  r.tools = nlohmann::ordered_json::array();
  const auto llama31 = select("llama3_1");
  CHECK(to_text(r, llama31, "<|eot_id|>").prompt == render(llama31, q, true));
  CHECK(render(llama31, q, true, false, r.tools) != render(llama31, q, true));
}
