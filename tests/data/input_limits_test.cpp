// Hostile input to the data readers: deeply nested JSON, NUL bytes, duplicate keys and numbers
// beyond a double in JSONL lines (each a data_error at file:line, skipped and counted under
// on_error::skip); nested JSON in tokenizer.json; a chat-template message never cut inside a
// UTF-8 character; token ids and lengths checked against the model at load time (fit_check.hpp).
// Every hostile file is written by the test itself.
#include <doctest/doctest.h>

#include <prefopt/data/chat_template.hpp>
#include <prefopt/data/fit_check.hpp>
#include <prefopt/data/jsonl.hpp>
#include <prefopt/data/tokenizer.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using prefopt::data::jsonl_line;
using prefopt::data::jsonl_reader;
using prefopt::data::on_error;

fs::path temp_file(const std::string& name, const std::string& bytes) {
  const auto dir = fs::temp_directory_path() / "prefopt_input_limits_test";
  fs::create_directories(dir);
  const auto path = dir / name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string deep_arrays(std::size_t levels) { return std::string(levels, '[') + std::string(levels, ']'); }

template <class E, class F> std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "(no exception)";
}

const std::string good = R"({"prompt": "p", "chosen": "c", "rejected": "r"})";
const std::string deep_line = R"({"prompt": "p", "chosen": "c", "rejected": )" + deep_arrays(100000) + "}";
const std::string nul_line = good + std::string(1, '\0') + "{\"prompt\": garbage";
const std::string duplicate_line = R"({"prompt": "p", "chosen": "c", "chosen": "d", "rejected": "r"})";
const std::string huge_number_line = R"({"prompt": "p", "chosen": "c", "rejected": "r", "score_chosen": 1e400})";

} // namespace

TEST_CASE("JSONL: each hostile line is a data_error at file:line") {
  struct bad_case {
    std::string line, expect;
  };
  for (const bad_case& c : {bad_case{deep_line, "deeper than 256 levels"}, bad_case{nul_line, "NUL byte at offset 47"},
                            bad_case{duplicate_line, "key 'chosen' appears more than once"},
                            bad_case{huge_number_line, "malformed JSON: number overflow parsing '1e400'"}}) {
    const auto path = temp_file("bad.jsonl", good + "\n" + c.line + "\n" + good + "\n");
    jsonl_reader in(path);  // on_error::stop, as --strict
    jsonl_line l;
    REQUIRE(in.next(l));
    const auto msg = message_of<prefopt::data_error>([&] { in.next(l); });
    CHECK(msg.starts_with(path.string() + ":2: "));
    CHECK(msg.find(c.expect) != std::string::npos);
  }
}

TEST_CASE("JSONL in skip mode: hostile lines are skipped and counted, the others read") {
  const auto path = temp_file("mixed.jsonl", good + "\n" + deep_line + "\n" + nul_line + "\n" + duplicate_line + "\n" +
                                                 huge_number_line + "\n" + good + "\n");
  jsonl_reader in(path, {.policy = on_error::skip});
  std::vector<std::size_t> lines;
  for (const auto& l : in) lines.push_back(l.line);
  CHECK(lines == std::vector<std::size_t>{1, 6});
  CHECK(in.report().skipped == 4);
  REQUIRE(in.report().first_errors.size() == 4);
  for (std::size_t i = 0; i < 4; ++i) CHECK(in.report().first_errors[i].starts_with(path.string() + ":" + std::to_string(i + 2) + ": "));
}

TEST_CASE("JSONL: the nesting limit is a reader option") {
  const auto path = temp_file("nested.jsonl", R"({"prompt": "p", "chosen": "c", "rejected": "r", "x": )" + deep_arrays(300) + "}\n");
  jsonl_reader strict(path);
  jsonl_line l;
  CHECK_THROWS_AS(strict.next(l), prefopt::data_error);
  jsonl_reader relaxed(path, {.json = {.max_depth = 400}});
  CHECK(relaxed.next(l));
}

TEST_CASE("tokenizer.json nested 100 000 levels deep (merges, pre-tokenizer pattern) is a format_error naming the file") {
  for (const std::string& text :
       {R"({"model": {"type": "BPE", "vocab": {}, "merges": )" + deep_arrays(100000) + "}}",
        R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": )" + deep_arrays(100000) + "}}, \"model\": null}"}) {
    const auto path = temp_file("tokenizer.json", text);
    const auto msg = message_of<prefopt::format_error>([&] { (void)prefopt::data::tokenizer::from_file(path); });
    CHECK(msg.starts_with(path.string() + ": "));
    CHECK(msg.find("deeper than 256") != std::string::npos);
  }
  const auto dup = temp_file("tokenizer.json", R"({"model": {"type": "BPE", "type": "WordPiece"}})");
  CHECK(message_of<prefopt::format_error>([&] { (void)prefopt::data::tokenizer::from_file(dup); }).find("key 'type' appears more than once in 'model'") !=
        std::string::npos);
}

TEST_CASE("tokenizer_config.json nested deeply is a format_error naming the file") {
  const auto path = temp_file("tokenizer_config.json", R"({"chat_template": )" + deep_arrays(100000) + "}");
  const auto msg = message_of<prefopt::format_error>([&] { (void)prefopt::data::select_chat_template(path); });
  CHECK(msg.starts_with(path.string() + ": "));
}

TEST_CASE("a chat template's syntax error names the line, in valid UTF-8") {
  std::string text = "x";
  for (int i = 0; i < 40; ++i) text += "\xC3\xA9";
  text += "\n{{ messages \xC3\xA9 }}";
  const nlohmann::json cfg = {{"chat_template", text}};
  const auto msg = message_of<prefopt::config_error>([&] { (void)prefopt::data::select_chat_template(cfg, "tokenizer_config.json"); });
  CHECK(msg == "tokenizer_config.json: field 'chat_template' line 2: unexpected character '\xC3\xA9' in a tag");
  const nlohmann::json stray = {{"chat_template", "{{ a \xA9 }}"}};
  CHECK(message_of<prefopt::config_error>([&] { (void)prefopt::data::select_chat_template(stray); }) ==
        "tokenizer_config.json: field 'chat_template' line 1: unexpected byte 0xa9 in a tag");
  CHECK_NOTHROW((void)nlohmann::json(msg).dump());  // valid UTF-8 throughout
}

TEST_CASE("token ids beyond the vocabulary and rows beyond the positions are found at load time, with file:line") {
  prefopt::data::tokenized_preferences d;
  d.file = "pairs.jsonl";
  d.pairs = {{{1, 2}, {3}, {4}}, {{1}, {5, 99}, {4}}};
  d.lines = {3, 7};
  CHECK_NOTHROW(prefopt::data::check_fits(d, 100, 4));
  CHECK(message_of<prefopt::data_error>([&] { prefopt::data::check_fits(d, 50, 0); }) ==
        "pairs.jsonl:7: field 'chosen': token id 99 (position 1) is outside the model's vocabulary [0, 50)");
  d.pairs[1].rejected = {-1};
  CHECK(message_of<prefopt::data_error>([&] { prefopt::data::check_fits(d, 100, 0); }).starts_with("pairs.jsonl:7: field 'rejected'"));
  d.pairs[1].rejected = {4};
  d.pairs[0].chosen = {3, 3, 3};
  CHECK(message_of<prefopt::data_error>([&] { prefopt::data::check_fits(d, 100, 4); })
            .starts_with("pairs.jsonl:3: prompt + completion is 5 tokens, more than the model's 4 positions"));
  CHECK(prefopt::data::longest_row(d, false) == 5);
  CHECK(prefopt::data::longest_row(d, true) == 6);
  // Skip mode: the misfit is removed with its per-pair columns, and reported.
  d.score_chosen = {0.5, 0.25};
  const auto r = prefopt::data::check_fits(d, 100, 4, on_error::skip);
  CHECK(r.skipped == 1);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].starts_with("pairs.jsonl:3: "));
  CHECK(d.lines == std::vector<std::size_t>{7});
  CHECK(d.score_chosen == std::vector<double>{0.25});
  CHECK(d.pairs.size() == 1);

  prefopt::data::tokenized_unpaired u;
  u.file = "kto.jsonl";
  u.examples = {{{1, 2}, {3}, true}, {{1}, {7}, false}};
  u.lines = {1, 2};
  CHECK(message_of<prefopt::data_error>([&] { prefopt::data::check_fits(u, 5, 0); }) ==
        "kto.jsonl:2: field 'completion': token id 7 (position 0) is outside the model's vocabulary [0, 5)");
  CHECK(prefopt::data::longest_row(u) == 3);
}
