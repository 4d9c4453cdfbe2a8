// Tests for prefopt::data::tokenizer against the Hugging Face `tokenizers` library.
//
// Expected values: tests/data/tokenizer/, written by tools/reference/tokenizer_make_reference.py
// with tokenizers 0.23 (ids, decodes, added-token ids and Oniguruma regex matches for tokenizers
// configured as GPT-2, Llama-3 and Qwen2, plus two files exercising the remaining options). The
// NFC and UTF-8 unit tests use values from Python's unicodedata / bytes.decode(errors="replace");
// the error tests check that messages name the file and the JSON field.
#include <prefopt/data/tokenizer.hpp>

#include "support/data.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

using nlohmann::json;
using prefopt::data::tokenizer;
namespace detail = prefopt::data::detail;

namespace {

std::vector<std::string> read_lines(const std::string& relative) {
  std::ifstream in(prefopt::test::data_path(relative));
  REQUIRE_MESSAGE(in.good(), "missing golden file " << relative);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

json read_json(const std::string& relative) {
  std::ifstream in(prefopt::test::data_path(relative));
  REQUIRE(in.good());
  return json::parse(in);
}

const std::vector<std::string>& strings() {
  static const std::vector<std::string> all = [] {
    std::vector<std::string> out;
    for (const auto& line : read_lines("tokenizer/strings.jsonl")) out.push_back(json::parse(line).get<std::string>());
    return out;
  }();
  return all;
}

std::string show(const std::vector<std::int32_t>& ids) {
  std::string s = "[";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) s += ',';
    s += std::to_string(ids[i]);
  }
  s += ']';
  return s;
}

std::vector<std::int32_t> ids_of(const json& j) { return j.get<std::vector<std::int32_t>>(); }

tokenizer load(const std::string& family) {
  return tokenizer::from_file(prefopt::test::data_path("tokenizer/" + family + "/tokenizer.json"));
}

// Encodes every golden string and compares ids, ids with special tokens and both decodes.
void check_family(const std::string& family) {
  const tokenizer tok = load(family);
  const json meta = read_json("tokenizer/" + family + "/meta.json");
  const auto prefix = ids_of(meta["special_prefix"]), suffix = ids_of(meta["special_suffix"]);
  const auto expected = read_lines("tokenizer/" + family + "/expected.jsonl");
  REQUIRE(expected.size() <= strings().size());
  std::size_t mismatches = 0, special_mismatches = 0, decode_mismatches = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const std::string& text = strings()[i];
    const json e = json::parse(expected[i]);
    const auto want = ids_of(e["ids"]);
    const auto got = tok.encode(text);
    if (got != want && ++mismatches <= 5)
      MESSAGE(family << " string " << i << " " << json(text).dump() << "\n  expected " << show(want) << "\n  got      "
                     << show(got));
    auto want_special = e.contains("special") ? ids_of(e["special"]) : prefix;
    if (!e.contains("special")) {
      want_special.insert(want_special.end(), want.begin(), want.end());
      want_special.insert(want_special.end(), suffix.begin(), suffix.end());
    }
    const auto got_special = tok.encode(text, true);
    if (got_special != want_special && ++special_mismatches <= 5)
      MESSAGE(family << " string " << i << " with special tokens: expected " << show(want_special) << " got "
                     << show(got_special));
    const std::string decoded = e.value("decoded", text);
    const std::string skipped = e.value("decoded_skip", decoded);
    const std::string got_decoded = tok.decode(want), got_skipped = tok.decode(want, true);
    if ((got_decoded != decoded || got_skipped != skipped) && ++decode_mismatches <= 5)
      MESSAGE(family << " string " << i << " decode: expected " << json(decoded).dump() << " / " << json(skipped).dump()
                     << " got " << json(got_decoded).dump() << " / " << json(got_skipped).dump());
  }
  MESSAGE(family << ": " << expected.size() << " strings, " << mismatches << " id mismatches, " << special_mismatches
                 << " with-special mismatches, " << decode_mismatches << " decode mismatches");
  CHECK(mismatches == 0);
  CHECK(special_mismatches == 0);
  CHECK(decode_mismatches == 0);

  // Random id sequences (invalid UTF-8 included) decode as the library does.
  std::size_t bad = 0;
  for (const auto& line : read_lines("tokenizer/" + family + "/decode.jsonl")) {
    const json e = json::parse(line);
    const auto got = tok.decode(ids_of(e["ids"]), e["skip"].get<bool>());
    if (got != e["text"].get<std::string>() && ++bad <= 5)
      MESSAGE(family << " decode " << e["ids"].dump() << ": expected " << e["text"].dump() << " got " << json(got).dump());
  }
  CHECK(bad == 0);

  // Vocabulary queries.
  CHECK(tok.vocab_size() == meta["vocab_size"].get<std::size_t>());
  for (const auto& a : meta["added"]) {
    const auto id = a["id"].get<std::int32_t>();
    CHECK(tok.token_to_id(a["content"].get<std::string>()) == std::optional<std::int32_t>(id));
    CHECK(tok.id_to_token(id) == a["token"].get<std::string>());
    CHECK(tok.is_special(id) == a["special"].get<bool>());
  }
  for (const auto& [id, token] : meta["id_to_token"].items()) CHECK(tok.id_to_token(std::stoi(id)) == token.get<std::string>());
}

// Non-empty matches of `pattern` in `text`, in code points (what the golden file records).
std::vector<std::pair<std::size_t, std::size_t>> matches(const std::string& pattern, const std::string& text) {
  const auto re = detail::regex::compile(pattern, "test");
  std::vector<detail::regex::match> all;
  re.find_all(text, all);
  std::vector<std::uint32_t> offsets;  // code point -> byte offset
  std::vector<char32_t> cps;
  detail::unicode::decode_utf8(text, cps, &offsets);
  auto index = [&](std::size_t byte) {
    return static_cast<std::size_t>(std::lower_bound(offsets.begin(), offsets.end(), byte) - offsets.begin());
  };
  std::vector<std::pair<std::size_t, std::size_t>> out;
  for (const auto& [a, b] : all)
    if (b > a) out.emplace_back(index(a), index(b));
  return out;
}

// The message of the format_error thrown while loading j (empty if none is thrown).
std::string load_error(const json& j, const std::string& name = "broken.json") {
  try {
    (void)tokenizer::from_json(j, name);
  } catch (const prefopt::format_error& e) {
    return e.what();
  }
  return {};
}

json minimal() {
  return json::parse(R"({"added_tokens": [], "normalizer": null, "pre_tokenizer": {"type": "ByteLevel",
    "add_prefix_space": false, "trim_offsets": true, "use_regex": true}, "post_processor": null,
    "decoder": {"type": "ByteLevel"}, "model": {"type": "BPE", "dropout": null, "unk_token": null,
    "ignore_merges": false, "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3}, "merges": ["a b"]}})");
}

} // namespace

TEST_CASE("gpt2 family equals the tokenizers library") { check_family("gpt2"); }
TEST_CASE("llama3 family equals the tokenizers library") { check_family("llama3"); }
TEST_CASE("qwen2 family equals the tokenizers library") { check_family("qwen2"); }
TEST_CASE("split behaviors, added-token flags and add_prefix_space equal the library") { check_family("variants"); }
TEST_CASE("unknown tokens without ByteLevel equal the library") {
  check_family("charlevel");
  json j = read_json("tokenizer/charlevel/tokenizer.json");
  j["model"]["fuse_unk"] = false;
  const tokenizer tok = tokenizer::from_json(j, "charlevel (fuse_unk false)");
  const auto expected = read_lines("tokenizer/charlevel/expected_nofuse.jsonl");
  std::size_t bad = 0;
  for (std::size_t i = 0; i < expected.size(); ++i)
    bad += tok.encode(strings()[i]) != ids_of(json::parse(expected[i])["ids"]);
  CHECK(bad == 0);
}

TEST_CASE("patterns find what the tokenizers library's Oniguruma finds") {
  const auto lines = read_lines("tokenizer/regex_cases.jsonl");
  std::size_t bad = 0;
  for (const auto& line : lines) {
    const json e = json::parse(line);
    const auto want = e["matches"].get<std::vector<std::pair<std::size_t, std::size_t>>>();
    const auto got = matches(e["pattern"].get<std::string>(), e["text"].get<std::string>());
    if (got != want && ++bad <= 5) MESSAGE("pattern " << e["pattern"] << " text " << e["text"] << " expected " << e["matches"]);
  }
  MESSAGE(lines.size() << " regex cases, " << bad << " mismatches");
  CHECK(bad == 0);
}

TEST_CASE("patterns: tricky cases, limits and errors") {
  using m = std::vector<std::pair<std::size_t, std::size_t>>;
  CHECK(matches(R"(a{2}+)", "aaaaa") == m{{0, 4}});                // Ruby reads {n}+ as ({n})+
  CHECK(matches(R"((?i:[^k]))", "kK\u212Ax") == m{{3, 4}});       // case closure before negation
  CHECK(matches(R"((?i:'s|'t))", "'\u017F 'T") == m{{0, 2}, {3, 5}}); // long s folds to s
  CHECK(matches(R"(\s+(?!\S)|\s+)", "a   b") == m{{1, 3}, {3, 4}});  // the last space stays with the word
  CHECK(matches(R"(\p{N}{1,3})", "1234567") == m{{0, 3}, {3, 6}, {6, 7}});
  CHECK(matches(R"((a|ab)(c|bcd))", "abcd") == m{{0, 4}});           // leftmost-first, backtracking into alternatives
  CHECK(matches(R"((?>a|ab)c)", "abc ac") == m{{4, 6}});             // no backtracking into an atomic group
  CHECK(matches(R"(a+?)", "aaa") == m{{0, 1}, {1, 2}, {2, 3}});
  CHECK(matches(R"(\s*[\r\n]+)", "  \n  \n x") == m{{0, 6}});
  CHECK(matches(R"(x*)", "ab").empty());                             // empty matches only
  CHECK(matches(R"([\w&&[^aeiou]]+)", "queue") == m{{0, 1}});
  CHECK(matches(R"(\x{1F600}+)", "\U0001F600\U0001F600a") == m{{0, 2}});
  CHECK(matches(R"(\n?^x?)", "a\nx\n") == m{{1, 3}}); // ^ holds after a newline, but not after the final one
  CHECK(matches(R"(a$)", "a\na") == m{{0, 1}, {2, 3}});
  // Catastrophic backtracking stops at the retry limit, with an error naming the place and pattern.
  CHECK_THROWS_WITH_AS(matches("(a|a)+b", std::string(40, 'a')),
                       doctest::Contains("test: pattern \"(a|a)+b\" failed on a text of 40 bytes: retry-limit-in-match over"),
                       prefopt::data_error);
  // Scanning a long text without a match is not backtracking: 12 MB without a digit.
  CHECK(matches(R"(\p{N})", std::string(12'000'000, 'x') + "7") == m{{12'000'000, 12'000'001}});
  // A long whitespace run is linear work, not quadratic: 200k spaces then a word.
  const std::string spaces(200000, ' ');
  CHECK(matches(R"(\s+(?!\S)|\s+)", spaces + "x") == m{{0, 199999}, {199999, 200000}});

  auto error_of = [](const std::string& pattern) {
    try {
      (void)detail::regex::compile(pattern, "p.json: field 'pattern'");
    } catch (const prefopt::format_error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error_of("[abc") == "p.json: field 'pattern': pattern \"[abc\" does not compile: premature end of char-class");
  CHECK(error_of("a)").find("unmatched close parenthesis") != std::string::npos);
  CHECK(error_of("*a").find("target of repeat operator is not specified") != std::string::npos);
  CHECK(error_of(R"(\p{NoSuchProperty})").find("invalid character property name") != std::string::npos);
  CHECK(error_of(std::string(20000, 'a')) ==
        "p.json: field 'pattern': pattern of 20000 bytes is longer than the limit of 16384 bytes: \"" +
            std::string(200, 'a') + "\"...");
  // What the old engine refused, Oniguruma runs as the library does.
  CHECK(matches("(?<=a)b", "abcb") == m{{1, 2}});
  CHECK(matches(R"((a)\1)", "aab") == m{{0, 2}});
  CHECK(matches(R"(\p{Greek}+)", "xκόσμος") == m{{1, 7}});
}

TEST_CASE("stacked quantifiers compile in bounded time and memory") {
  // 'a' followed by 52 '+' (each '+' after the first makes the one before possessive, then
  // repeats it): once a doubling compile cost per two '+' until bad_alloc, now microseconds.
  const auto start = std::clock();
  const auto re = detail::regex::compile("a" + std::string(52, '+'), "p.json: field 'pattern'");
  std::vector<detail::regex::match> all;
  re.find_all("aaa b aa", all);
  CHECK(all == std::vector<detail::regex::match>{{0, 3}, {6, 8}});
  // Deeper stacks hit Oniguruma's parse depth limit: an error, not a hang.
  std::string error;
  try {
    (void)detail::regex::compile("a" + std::string(12000, '+'), "p.json: field 'pattern'");
  } catch (const prefopt::format_error& e) {
    error = e.what();
  }
  CHECK(error.find("p.json: field 'pattern': pattern \"a++++") == 0);
  CHECK(error.find("parse depth limit over") != std::string::npos);
  const double seconds = static_cast<double>(std::clock() - start) / CLOCKS_PER_SEC;
  MESSAGE("stacked quantifiers: " << seconds << " s of CPU");
  CHECK(seconds < 5.0);  // generous for a shared machine; the old engine never finished
  // Through a tokenizer.json: the error names the file and the JSON field.
  json j = minimal();
  j["pre_tokenizer"] = json{{"type", "Split"}, {"pattern", {{"Regex", "a" + std::string(12000, '+')}}},
                            {"behavior", "Isolated"}, {"invert", false}};
  CHECK(load_error(j).find("broken.json: field 'pre_tokenizer.pattern': pattern \"a+++") == 0);
}

TEST_CASE("NFC normalization") {
  struct {
    std::string normalize(const std::string& s) const { return detail::unicode::nfc(s); }
  } nfc;
  CHECK(nfc.normalize("plain ascii") == "plain ascii");
  CHECK(nfc.normalize("e\u0301") == "\u00e9");
  CHECK(nfc.normalize("\u00e9") == "\u00e9");
  CHECK(nfc.normalize("\u1e0b\u0323") == "\u1e0d\u0307");                 // reordered, then composed
  CHECK(nfc.normalize("a\u0323\u0301 a\u0301\u0323") == "\u1ea1\u0301 \u1ea1\u0301");
  CHECK(nfc.normalize("\u1100\u1161\u11a8") == "\uac01");                  // Hangul L V T
  CHECK(nfc.normalize("\u2126 \u212b \uf900") == "\u03a9 \u00c5 \u8c48"); // singletons
  CHECK(nfc.normalize("\u0344") == "\u0308\u0301");                       // excluded from composition
  CHECK(nfc.normalize("\u0301e") == "\u0301e");                           // leading combining mark
  CHECK(nfc.normalize("\ufb01") == "\ufb01");                             // compatibility only: unchanged
  CHECK(nfc.normalize("caf\u00e9 e\u0301") == "caf\u00e9 \u00e9");         // Latin-1 then the slow path

  // The quick path's claim: text of code points below U+0300 is already NFC — every pair of them
  // (which covers composition with a neighbour) is left unchanged by utf8proc itself.
  std::size_t changed = 0;
  for (char32_t a = 1; a < 0x300; ++a)
    for (char32_t b = 1; b < 0x300; ++b) {
      std::string s;
      detail::unicode::append_utf8(s, a);
      detail::unicode::append_utf8(s, b);
      utf8proc_uint8_t* out = nullptr;
      const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
                                  &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
      changed += n < 0 || std::string(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n)) != s;
      std::free(out);
    }
  CHECK(changed == 0);
}

TEST_CASE("UTF-8 helpers") {
  using detail::unicode::utf8_lossy;
  CHECK(utf8_lossy("ok \xc3\xa9") == "ok \xc3\xa9");
  CHECK(utf8_lossy("a\xff" "b") == "a\xef\xbf\xbd" "b");
  CHECK(utf8_lossy("\xf0\x9f\x98") == "\xef\xbf\xbd");          // truncated 4-byte sequence: one replacement
  CHECK(utf8_lossy("\xe0\x80\x80") == "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  CHECK(utf8_lossy("\xed\xa0\x80") == "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  CHECK(detail::unicode::find_invalid_utf8("abc\xc3") == 3);
  CHECK(detail::unicode::find_invalid_utf8("\xf4\x8f\xbf\xbf") == std::string_view::npos);
  CHECK(detail::unicode::find_invalid_utf8("\xf4\x90\x80\x80") == 0);
}

TEST_CASE("add_special_tokens applies the post-processor template") {
  const tokenizer llama = load("llama3"), gpt2 = load("gpt2"), qwen2 = load("qwen2"), variants = load("variants");
  const auto bos = llama.token_to_id("<|begin_of_text|>");
  REQUIRE(bos);
  const auto plain = llama.encode("Hello world");
  const auto with = llama.encode("Hello world", true);
  REQUIRE(with.size() == plain.size() + 1);
  CHECK(with.front() == *bos);
  CHECK(std::equal(plain.begin(), plain.end(), with.begin() + 1));
  CHECK(llama.encode("", true) == std::vector<std::int32_t>{*bos});
  CHECK(llama.decode(with) == "<|begin_of_text|>Hello world");
  CHECK(llama.decode(with, true) == "Hello world");
  CHECK(gpt2.encode("Hello world", true) == gpt2.encode("Hello world")); // ByteLevel post-processor adds nothing
  CHECK(qwen2.encode("<|im_start|>user\nHi<|im_end|>", true) == qwen2.encode("<|im_start|>user\nHi<|im_end|>"));
  const auto v = variants.encode("abc", true);
  CHECK(v.front() == *variants.token_to_id("[CLS]"));
  CHECK(v.back() == *variants.token_to_id("[SEP]"));
  // Special tokens in the text are found whatever add_special_tokens says.
  const auto eot = gpt2.token_to_id("<|endoftext|>");
  REQUIRE(eot);
  CHECK(gpt2.encode("a<|endoftext|>b").at(1) == *eot);
  CHECK(gpt2.is_special(*eot));
  CHECK_FALSE(qwen2.is_special(*qwen2.token_to_id("<tool_call>")));
  CHECK(qwen2.decode(qwen2.encode("<tool_call>x</tool_call><|im_end|>"), true) == "<tool_call>x</tool_call>");
}

TEST_CASE("encode round-trips through decode for byte-level families without a normalizer") {
  for (const std::string family : {"gpt2", "llama3"}) {
    const tokenizer tok = load(family);
    std::size_t bad = 0;
    for (const auto& s : strings()) bad += tok.decode(tok.encode(s)) != s;
    CHECK_MESSAGE(bad == 0, family);
  }
}

TEST_CASE("long whitespace runs and long words round-trip without quadratic work") {
  // Each text is one long pre-token or a long run of them; a quadratic step would not finish.
  std::string mixed;
  for (int i = 0; i < 50000; ++i) mixed += i % 7 == 0 ? "\r\n" : (i % 3 == 0 ? "\t" : " ");
  const std::vector<std::string> texts{std::string(300000, ' ') + "x", mixed + "end", std::string(200000, 'a'),
                                       std::string(100000, '!') + "\n\n", std::string(150000, '7')};
  for (const std::string family : {"gpt2", "llama3", "qwen2"}) {
    const tokenizer tok = load(family);
    for (const auto& text : texts) CHECK_MESSAGE(tok.decode(tok.encode(text)) == text, family);
  }
}

TEST_CASE("invalid UTF-8 and unknown ids are data errors") {
  const tokenizer tok = load("gpt2");
  CHECK_THROWS_AS((void)tok.encode("abc\xff"), prefopt::data_error);
  CHECK_THROWS_AS((void)tok.encode("\xc0\x80"), prefopt::data_error);     // overlong
  CHECK_THROWS_AS((void)tok.encode("\xed\xa0\x80"), prefopt::data_error); // surrogate
  CHECK_THROWS_AS((void)tok.encode("\xe4\xb8"), prefopt::data_error);     // truncated
  const std::vector<std::int32_t> ids{1, static_cast<std::int32_t>(tok.vocab_size())};
  CHECK_THROWS_AS((void)tok.decode(ids), prefopt::data_error);
  CHECK_THROWS_AS((void)tok.id_to_token(-1), prefopt::data_error);
  CHECK_THROWS_AS((void)tok.id_to_token(static_cast<std::int32_t>(tok.vocab_size())), prefopt::data_error);
  CHECK_FALSE(tok.is_special(-5));
  CHECK_FALSE(tok.token_to_id("not a token at all").has_value());
}

TEST_CASE("malformed or unsupported tokenizer.json is a format_error naming file and field") {
  CHECK(load_error(minimal()).empty());
  CHECK(tokenizer::from_json(minimal()).encode("ab a") == std::vector<std::int32_t>{2, 3, 0});

  auto expect = [](const json& j, const std::string& where, const std::string& why) {
    const std::string msg = load_error(j);
    CHECK_MESSAGE(msg.find("broken.json: field '" + where + "'") == 0, msg);
    CHECK_MESSAGE(msg.find(why) != std::string::npos, msg);
  };
  json j = minimal();
  j.erase("model");
  expect(j, "model", "missing");
  j = minimal();
  j["model"]["type"] = "WordPiece";
  expect(j, "model.type", "WordPiece");
  j = minimal();
  j["model"]["type"] = "Unigram";
  expect(j, "model.type", "Unigram");
  j = minimal();
  j["model"]["merges"] = json::array({"a b", "a  b"});
  expect(j, "model.merges[1]", "two tokens");
  j = minimal();
  j["model"]["merges"] = json::array({json::array({"a", "b", "c"})});
  expect(j, "model.merges[0]", "expected");
  j = minimal();
  j["model"]["merges"] = json::array({"a z"});
  expect(j, "model.merges[0]", "'z' is not in the vocabulary");
  j = minimal();
  j["model"]["merges"] = json::array({"b a"});
  expect(j, "model.merges[0]", "'ba' is not in the vocabulary");
  j = minimal();
  j["model"]["byte_fallback"] = true;
  expect(j, "model.byte_fallback", "byte_fallback");
  j = minimal();
  j["model"]["dropout"] = 0.1;
  expect(j, "model.dropout", "dropout");
  j = minimal();
  j["model"]["continuing_subword_prefix"] = "##";
  expect(j, "model.continuing_subword_prefix", "null");
  j = minimal();
  j["model"]["vocab"]["x"] = -3;
  expect(j, "model.vocab[\"x\"]", "token id");
  j = minimal();
  j["pre_tokenizer"] = json{{"type", "Whitespace"}};
  expect(j, "pre_tokenizer.type", "unsupported pre_tokenizer 'Whitespace'");
  j = minimal();
  j["pre_tokenizer"] = json{{"type", "Sequence"}, {"pretokenizers", json::array({json{{"type", "Metaspace"}}})}};
  expect(j, "pre_tokenizer.pretokenizers[0].type", "Metaspace");
  j = minimal();
  j["pre_tokenizer"] = json::parse(R"({"type": "Split", "pattern": {"Regex": "[b-a]"}, "behavior": "Isolated", "invert": false})");
  expect(j, "pre_tokenizer.pattern", "pattern \"[b-a]\" does not compile: empty range in char class");
  j = minimal();
  j["pre_tokenizer"] = json::parse(R"({"type": "Split", "pattern": {"Regex": "x"}, "behavior": "Sideways", "invert": false})");
  expect(j, "pre_tokenizer.behavior", "Sideways");
  j = minimal();
  j["normalizer"] = json{{"type", "NFKC"}};
  expect(j, "normalizer.type", "unsupported normalizer 'NFKC'");
  j = minimal();
  j["post_processor"] = json{{"type", "RobertaProcessing"}};
  expect(j, "post_processor.type", "RobertaProcessing");
  j = minimal();
  j["decoder"] = json{{"type", "WordPiece"}};
  expect(j, "decoder.type", "unsupported decoder");
  j = minimal();
  j["added_tokens"] = json::array({json{{"id", 4}, {"special", true}}});
  expect(j, "added_tokens[0].content", "missing");
  j = minimal();
  j["model"]["unk_token"] = "<unk>";
  expect(j, "model.unk_token", "not in the vocabulary");
  CHECK(load_error(json::array()).find("expected a JSON object") != std::string::npos);

  // Files: unreadable is an io_error, bad JSON a format_error naming the file.
  const auto dir = std::filesystem::temp_directory_path() / "prefopt_tokenizer_test";
  std::filesystem::create_directories(dir);
  const auto bad = dir / "bad_tokenizer.json";
  std::ofstream(bad) << "{\"model\": ";
  try {
    (void)tokenizer::from_file(bad);
    FAIL("no exception");
  } catch (const prefopt::format_error& e) {
    CHECK(std::string(e.what()).find(bad.string()) == 0);
  }
  // A number too large for a double: nlohmann-json's out_of_range, not a parse_error (found by fuzzing).
  std::ofstream(bad) << R"({"version": 1e400})";
  CHECK_THROWS_WITH_AS((void)tokenizer::from_file(bad), doctest::Contains("out of the range of a double"), prefopt::format_error);
  CHECK_THROWS_AS((void)tokenizer::from_file(dir / "missing.json"), prefopt::io_error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("encode is safe from several threads and copies share the tables") {
  const tokenizer tok = load("llama3");
  const tokenizer copy = tok;
  std::vector<std::vector<std::int32_t>> reference;
  for (std::size_t i = 0; i < 400; ++i) reference.push_back(tok.encode(strings()[i]));
  std::vector<int> bad(2, 0);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      const tokenizer& mine = t == 0 ? tok : copy;
      for (int round = 0; round < 3; ++round)
        for (std::size_t i = 0; i < reference.size(); ++i) bad[t] += mine.encode(strings()[i]) != reference[i];
    });
  for (auto& th : threads) th.join();
  CHECK(bad[0] == 0);
  CHECK(bad[1] == 0);
}

TEST_CASE("encode throughput (informational)") {
  // Process CPU time, so that other work on the machine does not count.
  std::string big;
  for (const auto& s : strings()) big += s;
  for (const std::string family : {"gpt2", "llama3", "qwen2"}) {
    const tokenizer tok = load(family);
    std::size_t bytes = 0, n = 0;
    const std::clock_t t0 = std::clock();
    for (int round = 0; round < 3; ++round)
      for (const auto& s : strings()) {
        n += tok.encode(s).size();
        bytes += s.size();
      }
    const double per_string = static_cast<double>(std::clock() - t0) / CLOCKS_PER_SEC;
    const std::clock_t t1 = std::clock();
    n += tok.encode(big).size();
    const double one_call = static_cast<double>(std::clock() - t1) / CLOCKS_PER_SEC;
    MESSAGE(family << ": " << static_cast<double>(bytes) / per_string / 1e6 << " MB/s string by string, "
                   << static_cast<double>(big.size()) / one_call / 1e6 << " MB/s as one " << big.size() << "-byte text");
    CHECK(n > 0);
  }
}
