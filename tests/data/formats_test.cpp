// Tests for prefopt/data/formats.hpp. Expected values come from TRL itself, through
// tools/reference/data_make_dataset_reference.py: formats_expected.json applies
// trl.data_utils.maybe_extract_prompt to every record of the golden files, extract_prompt_cases.json
// holds trl.extract_prompt's results (or the exception it raised), unpair_order.json the row order of
// trl.unpair_preference_dataset. Bad inputs are written by the tests into a temporary folder, and
// each error message is checked for the file, the line and the field.
#include <doctest/doctest.h>

#include <prefopt/data/formats.hpp>
#include <support/data.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace prefopt::data;
using nlohmann::json;

json load(const std::string& name) {
  std::ifstream in(prefopt::test::data_path("datasets/" + name));
  return json::parse(in);
}

text_or_messages to_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  messages m;
  for (const auto& x : v) {
    message msg{x["role"].get<std::string>(), x["content"].get<std::string>()};
    if (x.size() != 2) msg.fields = x;  // more than role and content: the template sees every key
    m.push_back(std::move(msg));
  }
  return m;
}

std::optional<double> opt(const json& row, const char* key) {
  if (!row.contains(key) || row[key].is_null()) return std::nullopt;
  return row[key].get<double>();
}

std::vector<std::int32_t> ids(const json& row, const std::string& name) {
  const auto& v = row.contains(name + "_input_ids") ? row[name + "_input_ids"] : row[name + "_ids"];
  return v.get<std::vector<std::int32_t>>();
}

fs::path temp_file(const std::string& name, const std::string& text) {
  const auto dir = fs::temp_directory_path() / "prefopt_formats_test";
  fs::create_directories(dir);
  const auto path = dir / name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// The data_error message of reading `lines` (one record per line) with on_error::stop.
std::string error_reading(const std::string& name, const std::string& lines) {
  const auto path = temp_file(name, lines);
  try {
    (void)read_preference_file(path);
  } catch (const prefopt::data_error& e) {
    const std::string msg = e.what(), prefix = path.string() + ":";
    CHECK_MESSAGE(msg.starts_with(prefix), msg);
    return msg.starts_with(prefix) ? msg.substr(prefix.size()) : msg;
  }
  FAIL_CHECK("no data_error for " << name);
  return {};
}

// One JSONL line from (key, JSON text) pairs, in that order.
std::string record(std::initializer_list<std::pair<const char*, std::string>> fields) {
  std::string s = "{";
  for (const auto& [key, value] : fields) s += (s.size() > 1 ? ", \"" : "\"") + std::string(key) + "\": " + value;
  return s + "}\n";
}
// The same line with one more "key": value.
std::string with(const std::string& line, const std::string& extra) {
  return line.substr(0, line.rfind('}')) + ", " + extra + "}\n";
}

const std::string Q = R"([{"role": "user", "content": "q"}])";
const std::string A = R"([{"role": "assistant", "content": "a"}])";
const std::string B = R"([{"role": "assistant", "content": "b"}])";
std::string conv(const std::string& prompt, const std::string& chosen, const std::string& rejected) {
  return record({{"prompt", prompt}, {"chosen", chosen}, {"rejected", rejected}});
}
const std::string std_line = record({{"prompt", "\"p\""}, {"chosen", "\"c\""}, {"rejected", "\"r\""}});
const std::string conv_line = conv(Q, A, B);

} // namespace

TEST_CASE("golden files in every format read as TRL's maybe_extract_prompt sees them") {
  const auto expected = load("formats_expected.json");
  const std::map<std::string, dataset_format> formats{
      {"standard.jsonl", dataset_format::standard},
      {"conversational.jsonl.gz", dataset_format::conversational},
      {"implicit_standard.jsonl", dataset_format::implicit_standard},
      {"implicit_conversational.jsonl", dataset_format::implicit_conversational},
      {"unpaired_standard.jsonl", dataset_format::unpaired_standard},
      {"unpaired_conversational.jsonl", dataset_format::unpaired_conversational},
      {"tokenized.jsonl", dataset_format::tokenized},
      {"tokenized_trl.jsonl", dataset_format::tokenized},
      {"tokenized_unpaired.jsonl", dataset_format::tokenized_unpaired}};
  REQUIRE(expected.size() == formats.size());
  for (const auto& item : expected.items()) {
    const std::string file = item.key();
    const auto& rows = item.value();
    CAPTURE(file);
    const auto f = read_preference_file(prefopt::test::data_path("datasets/" + file));
    CHECK(f.format == formats.at(file));
    REQUIRE(f.size() == rows.size());
    CHECK(f.report.records == rows.size());
    CHECK(f.report.skipped == 0);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto& row = rows[i];
      CAPTURE(i);
      if (f.format == dataset_format::tokenized) {
        const auto& r = f.tokenized_pairs()[i];
        CHECK(r.prompt == ids(row, "prompt"));
        CHECK(r.chosen == ids(row, "chosen"));
        CHECK(r.rejected == ids(row, "rejected"));
        CHECK(r.preference_prob == opt(row, "preference_prob"));
        CHECK(r.weight == opt(row, "weight"));
        CHECK(r.line == row["line"].get<std::size_t>());
      } else if (f.format == dataset_format::tokenized_unpaired) {
        const auto& r = f.tokenized_unpaired()[i];
        CHECK(r.prompt == ids(row, "prompt"));
        CHECK(r.completion == ids(row, "completion"));
        CHECK(r.label == row["label"].get<bool>());
        CHECK(r.weight == opt(row, "weight"));
      } else if (is_unpaired(f.format)) {
        const auto& r = f.unpaired()[i];
        CHECK(r.prompt == to_text(row["prompt"]));
        CHECK(r.completion == to_text(row["completion"]));
        CHECK(r.label == row["label"].get<bool>());
        CHECK(r.weight == opt(row, "weight"));
        CHECK(is_conversational(f.format) == row["is_conversational"].get<bool>());
      } else {
        const auto& r = f.pairs()[i];
        CHECK(r.prompt == to_text(row["prompt"]));
        CHECK(r.chosen == to_text(row["chosen"]));
        CHECK(r.rejected == to_text(row["rejected"]));
        CHECK(r.preference_prob == opt(row, "preference_prob"));
        CHECK(r.score_chosen == opt(row, "score_chosen"));
        CHECK(r.score_rejected == opt(row, "score_rejected"));
        CHECK(r.cost == opt(row, "cost"));
        CHECK(r.weight == opt(row, "weight"));
        CHECK(r.line == row["line"].get<std::size_t>());
        CHECK(is_conversational(f.format) == row["is_conversational"].get<bool>());
      }
    }
  }
}

TEST_CASE("extract_prompt matches TRL, and refuses where TRL's prompt would be empty") {
  std::size_t same = 0, refused = 0;
  for (const auto& c : load("extract_prompt_cases.json")) {
    CAPTURE(c.dump());
    const auto chosen = to_text(c["chosen"]), rejected = to_text(c["rejected"]);
    const bool refuse = !c.contains("trl") || c["first_differs"].get<bool>() || c["trl"]["prompt"] == "" ||
                        c["trl"]["prompt"] == json::array();
    if (refuse) {
      CHECK_THROWS_WITH_AS((void)extract_prompt(chosen, rejected, "f.jsonl:3"),
                           doctest::Contains("f.jsonl:3: field 'chosen': chosen and rejected differ from their first"),
                           prefopt::data_error);
      ++refused;
    } else {
      const auto e = extract_prompt(chosen, rejected);
      CHECK(e.prompt == to_text(c["trl"]["prompt"]));
      CHECK(e.chosen == to_text(c["trl"]["chosen"]));
      CHECK(e.rejected == to_text(c["trl"]["rejected"]));
      ++same;
    }
  }
  CHECK(same == 15);
  CHECK(refused == 6);  // 5 cases where TRL's prompt is empty (one of them its "x " quirk), 1 it raises on
}

TEST_CASE("unpair orders rows as TRL's unpair_preference_dataset (batches of 1000)") {
  const auto golden = load("unpair_order.json");
  std::vector<preference_record> pairs;
  for (std::size_t i = 0; i < golden["pairs"].get<std::size_t>(); ++i)
    pairs.push_back({.prompt = "p" + std::to_string(i), .chosen = "c" + std::to_string(i),
                     .rejected = "r" + std::to_string(i), .weight = double(i), .line = i + 1});
  const auto rows = unpair(pairs);
  REQUIRE(rows.size() == golden["rows"].size());
  for (std::size_t k = 0; k < rows.size(); ++k) {
    const auto i = golden["rows"][k][0].get<std::size_t>();
    const bool label = golden["rows"][k][1].get<bool>();
    CHECK(rows[k].label == label);
    CHECK(std::get<std::string>(rows[k].prompt) == "p" + std::to_string(i));
    CHECK(std::get<std::string>(rows[k].completion) == (label ? "c" : "r") + std::to_string(i));
    CHECK(rows[k].weight == double(i));
    CHECK(rows[k].line == i + 1);
  }
  std::vector<tokenized_pair_record> tok{{.prompt = {1}, .chosen = {2}, .rejected = {3}},
                                         {.prompt = {4}, .chosen = {5}, .rejected = {6}}};
  const auto t = unpair(tok, 1);
  REQUIRE(t.size() == 4);
  CHECK(t[1].completion == std::vector<std::int32_t>{3});
  CHECK_FALSE(t[1].label);
  CHECK(t[2].completion == std::vector<std::int32_t>{5});
  CHECK_THROWS_AS((void)unpair(tok, 0), prefopt::config_error);
}

TEST_CASE("detect_format and is_message_list") {
  CHECK(detect_format(json::parse(std_line)) == dataset_format::standard);
  CHECK(detect_format(json::parse(conv_line)) == dataset_format::conversational);
  CHECK(detect_format(json::parse(R"({"chosen": "a b", "rejected": "a c", "prompt": null})")) ==
        dataset_format::implicit_standard);
  CHECK(detect_format(json::parse(R"({"prompt": "p", "completion": "c", "label": true})")) ==
        dataset_format::unpaired_standard);
  CHECK(is_message_list(json::parse(R"([{"role": "user"}])")));
  CHECK_FALSE(is_message_list(json::parse(R"([])")));
  CHECK_FALSE(is_message_list(json::parse(R"(["user"])")));
  CHECK(to_string(dataset_format::implicit_conversational) == "implicit_conversational");
}

TEST_CASE("record-level errors name file, line and field") {
  CHECK(error_reading("array.jsonl", std_line + "[1, 2]\n") == "2: a record must be a JSON object, got a list");
  CHECK(error_reading("unknown.jsonl", std_line + record({{"text", "\"x\""}, {"id", "3"}})) ==
        "2: not a preference record: expected prompt/chosen/rejected, chosen/rejected, prompt/completion/label, or "
        "token ids (prompt_input_ids with chosen_input_ids and rejected_input_ids, or with completion_input_ids); "
        "found: id, text");
  CHECK(error_reading("malformed.jsonl", std_line + "{\"prompt\": \n").starts_with("2: malformed JSON at column"));
  CHECK(error_reading("nan.jsonl", std_line + with(std_line, "\"weight\": NaN")) ==
        "2: field 'weight': NaN is not a valid JSON number (non-finite values are not allowed)");
  const auto empty = temp_file("empty.jsonl", "\n\n");
  CHECK_THROWS_WITH_AS((void)read_preference_file(empty),
                       (empty.string() + ": no usable records (2 lines: 0 records, 0 skipped, 2 blank)").c_str(),
                       prefopt::data_error);
}

TEST_CASE("text field errors: wrong type, missing, empty, roles, content") {
  CHECK(error_reading("type.jsonl", std_line + record({{"prompt", "\"p\""}, {"chosen", "3"}, {"rejected", "\"r\""}})) ==
        "2: field 'chosen': expected a string or a list of {role, content} messages, got a number");
  CHECK(error_reading("prompt_type.jsonl", record({{"prompt", "7"}, {"chosen", "\"c\""}, {"rejected", "\"r\""}})) ==
        "1: field 'prompt': expected a string or a list of {role, content} messages, got a number");
  CHECK(error_reading("missing.jsonl", std_line + record({{"prompt", "\"p\""}, {"chosen", "\"c\""}})) ==
        "2: field 'rejected': missing (the record has 'chosen')");
  const auto empty_chosen = record({{"prompt", "\"p\""}, {"chosen", "\"\""}, {"rejected", "\"r\""}});
  CHECK(error_reading("empty_str.jsonl", std_line + empty_chosen) ==
        "2: field 'chosen': empty string; a completion needs some text");
  CHECK(error_reading("kinds.jsonl", record({{"chosen", Q}, {"rejected", "\"r\""}})) ==
        "1: field 'rejected': is a string but 'chosen' is a message list");
  CHECK(error_reading("list.jsonl", record({{"prompt", "\"p\""}, {"chosen", "[\"c\"]"}, {"rejected", "[\"r\"]"}})) ==
        "1: field 'chosen': expected a string or a list of {role, content} messages, got a list whose first "
        "element is not a message");
  CHECK(error_reading("role.jsonl", conv_line + conv(Q, R"([{"role": "bot", "content": "a"}])", B)) ==
        "2: field 'chosen[0].role': unknown role 'bot'; expected system, user, assistant or tool");
  CHECK(error_reading("role_type.jsonl",
                      conv_line + conv(R"([{"role": "user", "content": "q"}, {"role": 1, "content": "x"}])", A, B)) ==
        "2: field 'prompt[1].role': expected a string, got a number");
  CHECK(error_reading("no_content.jsonl", conv_line + conv(R"([{"role": "user"}])", A, B)) ==
        "2: field 'prompt[0].content': missing");
  CHECK(error_reading("content_list.jsonl",
                      conv_line + conv(R"([{"role": "user", "content": [{"type": "text", "text": 7}]}])", A, B)) ==
        "2: field 'prompt[0].content[0].text': expected a string, got a number");
  CHECK(error_reading("content_number.jsonl", conv_line + conv(R"([{"role": "user", "content": 7}])", A, B)).starts_with(
      "2: field 'prompt[0].content': expected a string or a list of content parts"));
  CHECK(error_reading("empty_content.jsonl", conv_line + conv(Q, A, R"([{"role": "assistant", "content": ""}])")) ==
        "2: field 'rejected[0].content': empty string; a message needs content (or tool_calls)");
  CHECK(error_reading("not_message.jsonl",
                      conv_line + conv(Q, R"([{"role": "assistant", "content": "a"}, "more"])", B)) ==
        "2: field 'chosen[1]': expected a {role, content} message, got a string");
  CHECK(error_reading("system_end.jsonl", conv_line + conv(R"([{"role": "system", "content": "s"}])", A, B)) ==
        "2: field 'prompt': the prompt ends with a system message; it must end with a user, tool or assistant "
        "message");
  CHECK(error_reading("no_prompt.jsonl", record({{"chosen", "\"x\""}, {"rejected", "\"y\""}})) ==
        "1: field 'chosen': chosen and rejected differ from their first character, so they share no implicit "
        "prompt");
  CHECK(error_reading("unpaired_prompt.jsonl", record({{"completion", "\"c\""}, {"label", "true"}})) ==
        "1: field 'prompt': missing (required with 'completion')");
  CHECK(error_reading("unpaired_kind.jsonl", record({{"prompt", "\"p\""}, {"completion", A}, {"label", "true"}})) ==
        "1: field 'prompt': is a string but 'completion' is a message list");
}

TEST_CASE("mixed formats across lines name the field that differs") {
  const auto implicit_line = record({{"chosen", "\"p c\""}, {"rejected", "\"p r\""}});
  const auto unpaired_line = record({{"prompt", "\"p\""}, {"completion", "\"c\""}, {"label", "false"}});
  const auto tokenized_line =
      record({{"prompt_input_ids", "[1]"}, {"chosen_input_ids", "[2]"}, {"rejected_input_ids", "[3]"}});
  CHECK(error_reading("mixed_conv.jsonl", std_line + conv_line) ==
        "2: field 'chosen': this record is in the conversational format but the first record (line 1) is in the "
        "standard format; all records of a file must share one format");
  CHECK(error_reading("mixed_implicit.jsonl", std_line + "\n" + implicit_line)
            .starts_with("3: field 'prompt': this record is in the implicit_standard format"));
  CHECK(error_reading("mixed_unpaired.jsonl", std_line + unpaired_line)
            .starts_with("2: field 'completion': this record is in the unpaired_standard format"));
  CHECK(error_reading("mixed_tok.jsonl", std_line + tokenized_line)
            .starts_with("2: field 'chosen_input_ids': this record is in the tokenized format"));
  CHECK(error_reading("mixed_text.jsonl", tokenized_line + std_line)
            .starts_with("2: field 'chosen': this record is in the standard format but the first record (line 1) is "
                         "in the tokenized format"));
}

TEST_CASE("token id errors") {
  auto line = [](const std::string& chosen) {
    return record({{"prompt_input_ids", "[1, 2]"}, {"chosen_input_ids", chosen}, {"rejected_input_ids", "[3]"}});
  };
  const auto ok = line("[4]");
  CHECK(error_reading("neg.jsonl", ok + line("[4, -5]")) == "2: field 'chosen_input_ids[1]': negative token id -5");
  CHECK(error_reading("float.jsonl", ok + line("[4.5]")) ==
        "2: field 'chosen_input_ids[0]': token id 4.5 is not an integer");
  CHECK(error_reading("float2.jsonl", ok + line("[4.0]")) ==
        "2: field 'chosen_input_ids[0]': token id 4 is not an integer");
  CHECK(error_reading("big.jsonl", ok + line("[2147483648]")) ==
        "2: field 'chosen_input_ids[0]': token id 2147483648 is too large (at most 2147483647)");
  CHECK(error_reading("str.jsonl", ok + line(R"(["4"])")) ==
        "2: field 'chosen_input_ids[0]': expected a token id (a non-negative integer), got a string");
  CHECK(error_reading("empty_ids.jsonl", ok + line("[]")) ==
        "2: field 'chosen_input_ids': empty list; a completion needs at least one token");
  CHECK(error_reading("not_list.jsonl", ok + line("4")) ==
        "2: field 'chosen_input_ids': expected a list of token ids, got a number");
  CHECK(error_reading("no_prompt_ids.jsonl", record({{"chosen_input_ids", "[1]"}, {"rejected_input_ids", "[2]"}})) ==
        "1: field 'prompt_input_ids': missing (required by the tokenized formats)");
  CHECK(error_reading("both.jsonl", record({{"prompt_ids", "[1]"}, {"prompt_input_ids", "[1]"}, {"chosen_ids", "[1]"},
                                            {"rejected_ids", "[2]"}})) ==
        "1: field 'prompt_ids': both 'prompt_input_ids' and 'prompt_ids' are present; keep one");
  CHECK(error_reading("pair_and_unpaired.jsonl", record({{"prompt_ids", "[1]"}, {"chosen_ids", "[1]"},
                                                         {"rejected_ids", "[2]"}, {"completion_ids", "[3]"}})) ==
        "1: field 'completion_ids': token ids of a pair (chosen/rejected) and of an unpaired completion; keep one "
        "kind");
  CHECK(error_reading("label.jsonl", record({{"prompt_ids", "[1]"}, {"completion_ids", "[3]"}})) ==
        "1: field 'label': missing (required by the tokenized_unpaired format)");
}

TEST_CASE("optional numeric columns: type, finiteness, range; label type") {
  CHECK(error_reading("prob.jsonl", std_line + with(std_line, R"("preference_prob": 1.5)")) ==
        "2: field 'preference_prob': 1.5 is out of range (must be in [0, 1])");
  CHECK(error_reading("prob_neg.jsonl", std_line + with(std_line, R"("preference_prob": -0.25)")) ==
        "2: field 'preference_prob': -0.25 is out of range (must be in [0, 1])");
  CHECK(error_reading("weight.jsonl", std_line + with(std_line, R"("weight": -1)")) ==
        "2: field 'weight': -1 is out of range (must be >= 0)");
  CHECK(error_reading("score.jsonl", std_line + with(std_line, R"("score_chosen": "high")")) ==
        "2: field 'score_chosen': expected a number, got a string");
  CHECK(error_reading("cost.jsonl", std_line + with(std_line, R"("cost": true)")) ==
        "2: field 'cost': expected a number, got a boolean");
  CHECK(error_reading("score_inf.jsonl", std_line + with(std_line, R"("score_rejected": -Infinity)")) ==
        "2: field 'score_rejected': -Infinity is not a valid JSON number (non-finite values are not allowed)");
  const auto unpaired = record({{"prompt", "\"p\""}, {"completion", "\"c\""}, {"label", "true"}});
  CHECK(error_reading("label_type.jsonl", record({{"prompt", "\"p\""}, {"completion", "\"c\""}, {"label", "1"}})) ==
        "1: field 'label': expected true or false, got a number");
  CHECK(error_reading("unpaired_weight.jsonl", unpaired + with(unpaired, R"("weight": -2)")) ==
        "2: field 'weight': -2 is out of range (must be >= 0)");
}

TEST_CASE("on_error::skip leaves bad records out and counts them") {
  const auto empty_chosen = record({{"prompt", "\"p\""}, {"chosen", "\"\""}, {"rejected", "\"r\""}});
  const auto path = temp_file("skip.jsonl", std_line + empty_chosen + "{oops\n" + conv_line + std_line + "\n" +
                                                with(std_line, R"("weight": -1)"));
  const auto f = read_preference_file(path, {.policy = on_error::skip, .keep_errors = 2});
  CHECK(f.format == dataset_format::standard);
  REQUIRE(f.size() == 2);
  CHECK(f.pairs()[1].line == 5);
  CHECK(f.report.lines == 7);
  CHECK(f.report.blank == 1);
  CHECK(f.report.records == 2);
  CHECK(f.report.skipped == 4);
  REQUIRE(f.report.first_errors.size() == 2);
  CHECK(f.report.first_errors[0] == path.string() + ":2: field 'chosen': empty string; a completion needs some text");
  CHECK(f.report.first_errors[1].starts_with(path.string() + ":3: malformed JSON"));
  const auto wrong_kind = path.string() + ": expected unpaired text records, but the file is in the standard format";
  CHECK_THROWS_WITH_AS((void)f.unpaired(), wrong_kind.c_str(), prefopt::config_error);

  // The format comes from the first record that can be read.
  const auto late = temp_file("late.jsonl", "[]\n" + conv_line);
  CHECK(read_preference_file(late, {.policy = on_error::skip}).format == dataset_format::conversational);
}

TEST_CASE("tool calls, tool results and the tools column are kept as the record has them") {
  const std::string prompt =
      R"([{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": null, "tool_calls": [)"
      R"({"type": "function", "function": {"name": "get_weather", "arguments": {"unit": "c", "city": "Bern"}}}]},)"
      R"( {"role": "tool", "content": "12", "tool_call_id": "c1"}])";
  const std::string tools = R"([{"type": "function", "function": {"name": "get_weather", "parameters": {}}}])";
  const auto path = temp_file("tools.jsonl", with(conv(prompt, A, B), "\"tools\": " + tools) +
                                                 with(conv(prompt, A, B), "\"tools\": " + json(tools).dump()) +
                                                 conv(R"([{"role": "user", "content": "q", "name": null}])", A, B));
  const auto f = read_preference_file(path);
  REQUIRE(f.size() == 3);
  const auto& r = f.pairs()[0];
  const auto& ms = std::get<messages>(r.prompt);
  REQUIRE(ms.size() == 3);
  CHECK(ms[0].fields.is_null());  // role and content only
  CHECK(ms[1].content.empty());   // null content
  // The line's key order; null keys dropped, as apply_chat_template drops them.
  CHECK(ms[1].fields.dump() == R"({"role":"assistant","tool_calls":[{"type":"function","function":)"
                               R"({"name":"get_weather","arguments":{"unit":"c","city":"Bern"}}}]})");
  CHECK(std::get<messages>(f.pairs()[2].prompt)[0].fields.is_null());
  CHECK(ms[2].fields["tool_call_id"] == "c1");
  CHECK(r.tools.dump() == R"([{"type":"function","function":{"name":"get_weather","parameters":{}}}])");
  CHECK(f.pairs()[1].tools == r.tools);  // a string column is JSON text, parsed as TRL's json.loads does
  CHECK(f.pairs()[2].tools.is_null());
  // Messages compare as Python dicts: all keys, in any order.
  message a{"assistant", "x", nlohmann::ordered_json::parse(R"({"role": "assistant", "content": "x", "name": "n"})")};
  message b{"assistant", "x", nlohmann::ordered_json::parse(R"({"name": "n", "content": "x", "role": "assistant"})")};
  CHECK(a == b);
  CHECK_FALSE(a == message{"assistant", "x"});
  // Unpairing keeps the tools column on both rows.
  const auto rows = unpair(f.pairs());
  CHECK(rows[0].tools == r.tools);
  CHECK(rows[3].tools == r.tools);
}

TEST_CASE("malformed tool calls and tools name the record and the field") {
  auto call = [](const std::string& calls) {
    return conv(R"([{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": )" + calls +
                    "}, {\"role\": \"tool\", \"content\": \"1\"}]",
                A, B);
  };
  CHECK(error_reading("calls_type.jsonl", conv_line + call(R"({"name": "f"})")) ==
        "2: field 'prompt[1].tool_calls': expected a list of tool calls, got an object");
  CHECK(error_reading("call_type.jsonl", conv_line + call(R"(["f"])")) ==
        "2: field 'prompt[1].tool_calls[0]': expected a tool call {type, function: {name, arguments}}, got a string");
  CHECK(error_reading("no_name.jsonl", call(R"([{"type": "function", "function": {"arguments": {}}}])")) ==
        "1: field 'prompt[1].tool_calls[0].function.name': missing");
  CHECK(error_reading("name_type.jsonl", call(R"([{"function": {"name": 3, "arguments": {}}}])")) ==
        "1: field 'prompt[1].tool_calls[0].function.name': expected a non-empty string, got a number");
  CHECK(error_reading("no_args.jsonl", call(R"([{"name": "f"}])")) ==
        "1: field 'prompt[1].tool_calls[0].arguments': missing");
  CHECK(error_reading("bad_args.jsonl", call(R"([{"function": {"name": "f", "arguments": "{\"city\": "}}])")) ==
        "1: field 'prompt[1].tool_calls[0].function.arguments': a string that is not valid JSON; expected a JSON "
        "object or its text");
  CHECK(error_reading("list_args.jsonl", call(R"([{"function": {"name": "f", "arguments": "[1]"}}])")) ==
        "1: field 'prompt[1].tool_calls[0].function.arguments': a string holding a list; expected a JSON object");
  CHECK(error_reading("num_args.jsonl", call(R"([{"function": {"name": "f", "arguments": 5}}])")) ==
        "1: field 'prompt[1].tool_calls[0].function.arguments': expected an object or a string holding one, got a "
        "number");
  CHECK(error_reading("fn_type.jsonl", call(R"([{"type": "function", "function": "f"}])")) ==
        "1: field 'prompt[1].tool_calls[0].function': expected an object {name, arguments}, got a string");
  CHECK(error_reading("user_calls.jsonl",
                      conv(R"([{"role": "user", "content": "q", "tool_calls": []}])", A, B)) ==
        "1: field 'prompt[0].tool_calls': on a user message; only assistant messages call tools");
  CHECK(error_reading("no_calls_no_content.jsonl",
                      conv(R"([{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": []}])", A, B)) ==
        "1: field 'prompt[1].content': missing");
  CHECK(error_reading("call_id.jsonl", conv(R"([{"role": "tool", "content": "1", "tool_call_id": 7}])", A, B)) ==
        "1: field 'prompt[0].tool_call_id': expected a string, got a number");
  CHECK(error_reading("tools_type.jsonl", conv_line + with(conv_line, R"("tools": {"type": "function"})")) ==
        "2: field 'tools': expected a list of tool schemas, got an object");
  CHECK(error_reading("tools_item.jsonl", with(conv_line, R"("tools": [1])")) ==
        "1: field 'tools[0]': expected a tool schema object, got a number");
  CHECK(error_reading("tools_text.jsonl", with(conv_line, R"("tools": "[{")")) ==
        "1: field 'tools': a string that is not valid JSON; expected a list of tool schemas or its JSON text");
  // Standard (string) records ignore a tools column, as TRL's DPOTrainer does.
  CHECK(read_preference_file(temp_file("std_tools.jsonl", with(std_line, R"("tools": 5)"))).pairs()[0].tools.is_null());
}
