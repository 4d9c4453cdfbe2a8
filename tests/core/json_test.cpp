// Tests of include/prefopt/core/json.hpp (the one JSON reader: depth limit, duplicate keys, NUL
// bytes, numbers beyond a double), json_integer, and the integer checks of reflect.hpp and
// train/run_limits.hpp that every config integer goes through.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "prefopt/core/json.hpp"
#include "prefopt/core/reflect.hpp"
#include "prefopt/train/config.hpp"

using prefopt::config_error;
using prefopt::json_error;
using prefopt::read_json;

namespace {

// `levels` nested arrays: [[[...]]]. 100 000 levels overflow the stack of a recursive consumer.
std::string deep_arrays(std::size_t levels) { return std::string(levels, '[') + std::string(levels, ']'); }
std::string deep_objects(std::size_t levels) {
  std::string s;
  for (std::size_t i = 0; i < levels; ++i) s += "{\"a\":";
  s += "1";
  s += std::string(levels, '}');
  return s;
}

template <class E, class F> std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "(no exception)";
}

} // namespace

TEST_CASE("read_json: 100 000 nested arrays or objects are an error naming the source, not a stack overflow") {
  for (const std::string& text : {deep_arrays(100000), deep_objects(100000), "{\"x\": " + deep_arrays(100000) + "}"}) {
    const auto msg = message_of<json_error>([&] { (void)read_json(text, "run.json"); });
    CHECK(msg.starts_with("run.json: "));
    CHECK(msg.find("deeper than 256 levels") != std::string::npos);
  }
}

TEST_CASE("read_json: the depth limit is exact and configurable") {
  CHECK(read_json(deep_arrays(256), "a.json").is_array());
  CHECK_THROWS_AS((void)read_json(deep_arrays(257), "a.json"), json_error);
  CHECK(read_json(deep_arrays(1000), "a.json", {.max_depth = 1000}).is_array());
  CHECK_THROWS_AS((void)read_json(deep_arrays(11), "a.json", {.max_depth = 10}), json_error);
  CHECK(read_json("[1, {\"a\": [2]}]", "a.json", {.max_depth = 3}).size() == 2);
}

TEST_CASE("read_json: a repeated key is an error naming the key and its object") {
  CHECK(message_of<json_error>([] { (void)read_json(R"({"a": 1, "b": {"c": 1, "c": 2}})", "f.json"); }) ==
        "f.json: key 'c' appears more than once in 'b'");
  CHECK(message_of<json_error>([] { (void)read_json(R"({"a": 1, "a": 1})", "f.json"); }) ==
        "f.json: key 'a' appears more than once in the top-level object");
  // The same key in sibling objects is fine; duplicates may be allowed explicitly.
  CHECK(read_json(R"([{"a": 1}, {"a": 2}])", "f.json").size() == 2);
  CHECK(read_json(R"({"a": 1, "a": 2})", "f.json", {.reject_duplicate_keys = false})["a"] == 2);
}

TEST_CASE("read_json: a NUL byte followed by garbage is refused, not taken for the end") {
  const std::string text("{\"a\": 1}\0garbage", 16);
  CHECK(message_of<json_error>([&] { (void)read_json(text, "f.json"); }) ==
        "f.json: not valid JSON: NUL byte at offset 8");
}

TEST_CASE("read_json: a number beyond a double and a syntax error are json_errors naming the source") {
  const auto big = message_of<prefopt::format_error>([] { (void)read_json(R"({"shape": [1e400]})", "m.safetensors"); });
  CHECK(big.starts_with("m.safetensors: holds a number out of the range of a double"));
  try {
    (void)read_json("{ not json", "c.json");
    FAIL("no exception");
  } catch (const json_error& e) {
    CHECK(e.where() == "c.json");
    CHECK(!e.parser_message().empty());
  }
}

TEST_CASE("json_integer: whole numbers within the range only") {
  using nlohmann::json;
  CHECK(prefopt::json_integer<int>(json(3.0), "f") == 3);
  CHECK(prefopt::json_integer<int>(json(-7), "f") == -7);
  CHECK(prefopt::json_integer<std::size_t>(json(std::uint64_t(1) << 40), "f") == (std::size_t(1) << 40));
  CHECK_THROWS_WITH_AS((void)prefopt::json_integer<int>(json(2.9), "config.json: field 'n_layer'"),
                       "config.json: field 'n_layer': must be an integer in [-2147483648, 2147483647], got 2.9 (not a whole number)",
                       config_error);
  CHECK_THROWS_AS((void)prefopt::json_integer<int>(json(1e30), "f"), config_error);
  CHECK_THROWS_AS((void)prefopt::json_integer<int>(json((std::uint64_t(1) << 32) + 2001), "f"), config_error);
  CHECK_THROWS_AS((void)prefopt::json_integer<unsigned>(json(-1), "f"), config_error);
  CHECK_THROWS_AS((void)prefopt::json_integer<int>(json(11), "f", 0, 10), config_error);
  CHECK_THROWS_AS((void)prefopt::json_integer<int>(json("3"), "f"), config_error);
  CHECK_THROWS_AS((void)prefopt::json_integer<std::int64_t>(json(1e300), "f"), config_error);
}

TEST_CASE("excerpts for messages never cut a UTF-8 character and never throw") {
  const std::string e3 = "\xC3\xA9\xC3\xA9\xC3\xA9";  // "ééé", 6 bytes
  CHECK(prefopt::utf8_prefix(e3, 3) == "\xC3\xA9");
  CHECK(prefopt::utf8_prefix(e3, 4) == "\xC3\xA9\xC3\xA9");
  CHECK(prefopt::text_excerpt(e3, 3) == "\"\xC3\xA9\"...");
  CHECK(prefopt::json_excerpt(nlohmann::json(std::string("a\xFF" "b"))) == "\"a\xEF\xBF\xBD" "b\"");
  CHECK(prefopt::json_excerpt(nlohmann::json(std::string(100, 'x')), 10) == "\"xxxxxxxxx...");
}

TEST_CASE("run config integers: out of range, fractional or huge values name their field") {
  auto read = [](const std::string& text) {
    auto cfg = prefopt::train::default_run_config();
    prefopt::reflect::from_json(read_json(text, "run.json"), cfg);
    return cfg;
  };
  CHECK(message_of<config_error>([&] { read(R"({"training": {"batch_size": 4294967297}})"); })
            .starts_with("training.batch_size: must be an integer in [-2147483648, 2147483647], got 4294967297"));
  CHECK(message_of<config_error>([&] { read(R"({"training": {"max_steps": 1e30}})"); }).starts_with("training.max_steps: "));
  CHECK(message_of<config_error>([&] { read(R"({"lora": {"r": 2.9}})"); }).starts_with("lora.r: "));
  CHECK(read(R"({"training": {"batch_size": 4.0}})").training.batch_size == 4);
}

TEST_CASE("--set values go through the same reader") {
  auto cfg = prefopt::train::default_run_config();
  prefopt::reflect::apply_override(cfg, "training.batch_size=16");
  CHECK(cfg.training.batch_size == 16);
  prefopt::reflect::apply_override(cfg, "output.dir=not json");
  CHECK(cfg.output.dir == "not json");
  CHECK_THROWS_WITH_AS(prefopt::reflect::apply_override(cfg, "loss.type=" + deep_arrays(100000)),
                       doctest::Contains("deeper than 256"), config_error);
  CHECK_THROWS_AS(prefopt::reflect::apply_override(cfg, "training.max_steps=1e30"), config_error);
}

TEST_CASE("run limits: sizes above their documented bound are config errors naming the field") {
  auto cfg = prefopt::train::default_run_config();
  cfg.model = "m";
  cfg.data.train = "t.jsonl";
  prefopt::train::validate(cfg);
  auto with = [&](auto edit) {
    auto c = cfg;
    edit(c);
    return message_of<config_error>([&] { prefopt::train::validate(c); });
  };
  CHECK(with([](auto& c) { c.data.pad_to_multiple_of = 1 << 30; }).starts_with("config: field 'data.pad_to_multiple_of': is 1073741824, above the limit"));
  CHECK(with([](auto& c) { c.lora = prefopt::train::lora_settings{1000000, 16.0, {}, false, 0.0}; }).starts_with("config: field 'lora.r'"));
  CHECK(with([](auto& c) { c.training.batch_size = 1 << 30; }).starts_with("config: field 'training.batch_size'"));
  CHECK(with([](auto& c) { c.data.max_length = 1 << 30; }).starts_with("config: field 'data.max_length'"));
  CHECK(with([](auto& c) { c.training.threads = -1; }).starts_with("config: field 'training.threads'"));
  CHECK(with([](auto& c) { c.training.threads = 100000; }) == "(no exception)");  // clamped, not refused
}

TEST_CASE("thread counts are clamped to the cores, with a warning") {
  std::string warning;
  CHECK(prefopt::train::clamp_threads(100000, &warning, 8) == 8);
  CHECK(warning == "training.threads 100000 is more than the 8 cores of this machine; using 8");
  warning.clear();
  CHECK(prefopt::train::clamp_threads(4, &warning, 8) == 4);
  CHECK(warning.empty());
  CHECK(prefopt::train::clamp_threads(0, &warning, 8) == 0);
  CHECK(prefopt::train::clamp_threads(3, &warning, 0) == 1);
}
