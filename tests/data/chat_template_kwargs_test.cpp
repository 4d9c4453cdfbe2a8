// Tests for a record's chat_template_kwargs column and for content lists (multimodal parts) in
// prefopt/data (detail/record_fields.hpp, chat_template.hpp). Expected strings:
// tests/data/chat/templates/kwargs_records.json, rendered by transformers' own
// tokenizer.apply_chat_template(messages, add_generation_prompt, **kwargs) over 14 real templates
// (tools/reference/data_make_kwargs_reference.py); TRL's token ids for datasets with both features
// are compared in collate_test.cpp. The errors' texts are prefopt's own.
#include <doctest/doctest.h>

#include <prefopt/data/chat_template.hpp>
#include <prefopt/data/formats.hpp>
#include <support/data.hpp>

#include <fstream>
#include <iterator>
#include <map>
#include <string>

namespace {

using namespace prefopt::data;
using nlohmann::json;
using ojson = nlohmann::ordered_json;

chat_template template_named(const std::string& name, const ojson& tokens) {
  std::ifstream tf(prefopt::test::data_path("chat/templates/" + name + ".jinja"), std::ios::binary);
  json cfg = json(tokens);
  cfg["chat_template"] = std::string(std::istreambuf_iterator<char>(tf), std::istreambuf_iterator<char>());
  return select_chat_template(cfg);
}

// The record's text parsed as the dataset reader parses it (formats.hpp), or its error.
preference_record parse_line(const std::string& text) {
  return parse_preference_record(json::parse(text), dataset_format::conversational, "d.jsonl", 3, text);
}

std::string error_of(const std::string& text) {
  try {
    (void)parse_line(text);
  } catch (const prefopt::data_error& e) {
    return e.what();
  }
  return "(no error)";
}

} // namespace

TEST_CASE("chat_template_kwargs and content lists render as apply_chat_template(..., **kwargs) renders them") {
  std::ifstream in(prefopt::test::data_path("chat/templates/kwargs_records.json"));
  const auto golden = ojson::parse(in);
  std::map<std::string, chat_template> templates;
  std::map<std::string, messages> conversations;
  const prefopt::data::detail::record_place at{"kwargs_records.json", 1};
  for (const auto& [label, ms] : golden["conversations"].items())
    conversations.emplace(label, prefopt::data::detail::parse_messages(json(ms), at, "messages", &ms));
  std::size_t rendered = 0, failed = 0, with_parts = 0, by_builtin = 0, thinking_off = 0;
  for (const auto& c : golden["cases"]) {
    const auto name = c["template"].get<std::string>();
    const auto label = c["conversation"].get<std::string>();
    const bool gen = c["add_generation_prompt"].get<bool>();
    const auto& kwargs = golden["kwargs"][c["kwargs"].get<std::size_t>()];
    CAPTURE(name);
    CAPTURE(label);
    CAPTURE(kwargs.dump());
    CAPTURE(gen);
    if (!templates.contains(name)) templates.emplace(name, template_named(name, c["tokens"]));
    const auto& t = templates.at(name);
    const ojson kw = kwargs.empty() ? ojson() : kwargs;
    if (c.contains("output")) {
      CHECK(render(t, conversations.at(label), gen, false, nullptr, kw) == c["output"].get<std::string>());
      ++rendered;
      with_parts += label.starts_with("parts");
      by_builtin += t.kind != chat_template_kind::jinja;
      thinking_off += name == "qwen3" && gen && kwargs.contains("enable_thinking") && !kwargs["enable_thinking"].get<bool>();
    } else {
      CHECK_THROWS_AS((void)render(t, conversations.at(label), gen, false, nullptr, kw), prefopt::error);
      ++failed;
    }
  }
  CHECK(templates.at("qwen2_5").kind == chat_template_kind::qwen2_5);
  CHECK(templates.at("llama3").kind == chat_template_kind::llama3);
  CHECK(rendered == 392);
  CHECK(failed == 384);
  CHECK(with_parts == 96);  // Llama 3's, Llama 3.1's and Mistral Small 3.1's over content lists
  CHECK(by_builtin >= 80);
  CHECK(thinking_off == 3);  // Qwen3's empty <think> block after the generation prompt
}

TEST_CASE("Qwen3's enable_thinking from a record's chat_template_kwargs") {
  const auto t = template_named("qwen3", ojson{{"eos_token", "<|im_end|>"}});
  const auto r = parse_line(
      R"({"prompt": [{"role": "user", "content": "2+2?"}], "chosen": [{"role": "assistant", "content": "4"}],)"
      R"( "rejected": [{"role": "assistant", "content": "5"}], "chat_template_kwargs": {"enable_thinking": false}})");
  REQUIRE(r.chat_template_kwargs.is_object());
  const auto off = to_text(r, t, "<|im_end|>", "d.jsonl:3");
  CHECK(off.prompt == "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  CHECK(off.chosen == "4<|im_end|>\n");
  auto on = r;
  on.chat_template_kwargs = nullptr;
  CHECK(to_text(on, t, "<|im_end|>", "d.jsonl:3").prompt == "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n");
  // A built-in template given kwargs renders its genuine text, which reads them.
  const auto q = select_chat_template(prefopt::test::data_path("chat/qwen2_5/tokenizer_config.json"));
  CHECK(render(q, messages{{"user", "Hi"}}, true, false, nullptr, ojson{{"eos_token", "X"}}) ==
        render(q, messages{{"user", "Hi"}}, true));
}

TEST_CASE("a record's chat_template_kwargs: keys in order, tools replaced, null and {} as none") {
  const auto r = parse_line(
      R"({"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "a"}],)"
      R"( "rejected": [{"role": "assistant", "content": "b"}], "tools": [{"type": "function"}],)"
      R"( "chat_template_kwargs": {"z": 1, "a": {"y": null, "b": 2}, "tools": [{"name": "f"}]}})");
  CHECK(r.chat_template_kwargs.dump() == R"({"z":1,"a":{"y":null,"b":2}})");
  CHECK(r.tools.dump() == R"([{"name":"f"}])");  // TRL: {"tools": tools, **chat_template_kwargs}
  const std::string base = R"({"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "a"}],)"
                           R"( "rejected": [{"role": "assistant", "content": "b"}], "chat_template_kwargs": )";
  CHECK(parse_line(base + "null}").chat_template_kwargs.is_null());
  CHECK(parse_line(base + "{}}").chat_template_kwargs.is_null());
  CHECK(parse_line(base + R"({"tools": null}})").tools.is_null());
  // Unpairing (KTO from pairs) keeps them.
  const auto u = unpair(std::vector<preference_record>{parse_line(base + R"({"enable_thinking": false}})")});
  CHECK(u.at(1).chat_template_kwargs.dump() == R"({"enable_thinking":false})");
}

TEST_CASE("malformed chat_template_kwargs and content lists name the file, line and field") {
  const std::string head = R"({"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "a"}],)"
                           R"( "rejected": [{"role": "assistant", "content": "b"}], "chat_template_kwargs": )";
  CHECK(error_of(head + "[1]}").starts_with("d.jsonl:3: field 'chat_template_kwargs': expected an object"));
  CHECK(error_of(head + R"("enable_thinking"})").starts_with("d.jsonl:3: field 'chat_template_kwargs': expected an object"));
  for (const char* key : {"messages", "add_generation_prompt", "tokenize", "return_dict"})
    CHECK(error_of(head + "{\"" + key + "\": 1}}")
              .starts_with("d.jsonl:3: field 'chat_template_kwargs." + std::string(key) + "': not a template variable"));
  for (const char* key : {"documents", "chat_template", "continue_final_message", "max_length"})
    CHECK(error_of(head + "{\"" + key + "\": 1}}")
              .starts_with("d.jsonl:3: field 'chat_template_kwargs." + std::string(key) + "': not a template variable"));
  CHECK(error_of(head + R"({"tools": "[]"}})").starts_with("d.jsonl:3: field 'chat_template_kwargs.tools': a string"));
  CHECK(error_of(head + R"({"tools": [1]}})").starts_with("d.jsonl:3: field 'chat_template_kwargs.tools[0]'"));

  const std::string tail = R"(], "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]})";
  auto prompt = [&](const std::string& content) {
    return error_of(R"({"prompt": [{"role": "user", "content": )" + content + "}" + tail);
  };
  CHECK(prompt("[]").starts_with("d.jsonl:3: field 'prompt[0].content': an empty list of parts"));
  CHECK(prompt("[\"hi\"]").starts_with("d.jsonl:3: field 'prompt[0].content[0]': expected a content part object"));
  CHECK(prompt(R"([{"type": 3}])").starts_with("d.jsonl:3: field 'prompt[0].content[0].type': expected a string"));
  CHECK(prompt(R"([{"type": "text", "text": ["x"]}])").starts_with("d.jsonl:3: field 'prompt[0].content[0].text'"));
  CHECK(prompt("{\"text\": \"x\"}").starts_with("d.jsonl:3: field 'prompt[0].content': expected a string or a list"));
  CHECK(prompt(R"([{"type": "text", "text": "ok"}])") == "(no error)");
}

TEST_CASE("content lists: prefopt's own reading, continuation and gpt2-plain") {
  const auto r = parse_line(
      R"({"prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is "}, {"type": "text", "text": "it?"}]}],)"
      R"( "chosen": [{"role": "assistant", "content": [{"type": "text", "text": "A cat."}]}],)"
      R"( "rejected": [{"role": "assistant", "content": "A dog."}]})");
  const auto& p = std::get<messages>(r.prompt);
  CHECK(p[0].content == "What is it?");  // the text parts, joined
  CHECK(p[0].as_json()["content"].size() == 3);
  // gpt2-plain renders text only: an image part is an error naming it.
  CHECK_THROWS_WITH_AS((void)to_text(r, gpt2_plain_template(), "<eos>", "d.jsonl:3"),
                       doctest::Contains("d.jsonl:3: the chat template fails on this record: gpt2-plain chat "
                                         "template: message 0 content part 0 (type 'image') is not text"),
                       prefopt::data_error);
  const auto texts = parse_line(
      R"({"prompt": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],)"
      R"( "chosen": [{"role": "assistant", "content": [{"type": "text", "text": "a"}]}], "rejected": [{"role": "assistant", "content": "b"}]})");
  CHECK(to_text(texts, gpt2_plain_template(), "<eos>").chosen == "a<eos>");
  // continue_final_message continues the last part that has text, as transformers does.
  const auto t = template_named("mistral3_1", ojson{{"bos_token", "<s>"}, {"eos_token", "</s>"}});
  messages cont{{"system", "S"}, {"user", "Hi"}, p[0]};
  cont.back().role = "assistant";
  cont.back().fields["role"] = "assistant";
  cont.back().fields["content"] = ojson::parse(R"([{"type": "text", "text": "Sure, "}, {"type": "image"}])");
  CHECK(render(t, cont, false, true) == "<s>[SYSTEM_PROMPT]S[/SYSTEM_PROMPT][INST]Hi[/INST]Sure, ");
  cont.back().fields["content"] = ojson::parse(R"([{"type": "image"}])");
  CHECK_THROWS_WITH_AS((void)render(t, cont, false, true), doctest::Contains("no text part to continue"), prefopt::data_error);
}
