// Fuzz target: pre-tokenizer patterns (a Split pre-tokenizer's regex: compile, then match), through
// the public loader, so it checks whichever regex engine data::tokenizer uses. Input: one byte of
// options (bits 0-2 the split behavior, bit 3 invert, bit 4 a String instead of a Regex pattern),
// the pattern up to the first NUL byte, then the text. The tokenizer is byte-level (the 256 byte
// tokens of the committed GPT-2 test tokenizer, no merges, ByteLevel decoder), so every behavior
// but Removed must give the text back exactly: decode(encode(text)) == text.
// Building a tokenizer costs ~40 ms under the sanitizers (most of it the word cache's table), so
// the last few tokenizers are kept by (options, pattern): most mutations change only the text.
// A crash that needs a warm word cache then shows only with its predecessors; rerun the saved
// input alone to see whether it needs them.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz_support.hpp"
#include "prefopt/data/tokenizer.hpp"

namespace {
const nlohmann::json& base() {
  static const nlohmann::json j = [] {
    std::ifstream in(prefopt::fuzz::test_data("tokenizer/gpt2/tokenizer.json"));
    auto t = nlohmann::json::parse(in);
    nlohmann::json vocab = nlohmann::json::object();
    for (const auto& [token, id] : t["model"]["vocab"].items())
      if (id.get<int>() < 256) vocab[token] = id;
    t["model"]["vocab"] = vocab;
    t["model"]["merges"] = nlohmann::json::array();
    t["added_tokens"] = nlohmann::json::array();
    t["post_processor"] = nullptr;
    t["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
    return t;
  }();
  return j;
}

struct built {
  unsigned options;
  std::string pattern;
  std::optional<prefopt::data::tokenizer> tok;  // nullopt: the loader rejected the pattern
};

std::optional<prefopt::data::tokenizer> load(const std::string& pattern, unsigned options, const char* behavior) {
  using namespace prefopt;
  nlohmann::json j = base();
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern", {{(options & 16u) ? "String" : "Regex", pattern}}},
         {"behavior", behavior},
         {"invert", (options & 8u) != 0}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
  std::optional<data::tokenizer> tok;
  // A pattern outside the supported syntax is a format_error (invalid UTF-8 in it too).
  fuzz::reject_cleanly([&] { tok = data::tokenizer::from_json(j, "fuzz tokenizer.json"); });
  return tok;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace prefopt;
  if (size == 0) return 0;
  static const char* behaviors[] = {"Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
  const unsigned options = data[0];
  const std::string_view rest = fuzz::as_text(data + 1, size - 1);
  const auto nul = rest.find('\0');
  const std::string pattern(rest.substr(0, nul));
  const std::string text(nul == std::string_view::npos ? std::string_view{} : rest.substr(nul + 1));
  const char* behavior = behaviors[(options & 7u) % 5];

  static std::deque<built> recent;
  auto it = std::find_if(recent.begin(), recent.end(),
                         [&](const built& b) { return b.options == (options & 31u) && b.pattern == pattern; });
  if (it == recent.end()) {
    if (recent.size() == 16) recent.pop_back();
    recent.push_front({options & 31u, pattern, load(pattern, options, behavior)});
    it = recent.begin();
  }
  if (!it->tok) return 0;
  const data::tokenizer& tok = *it->tok;
  std::vector<std::int32_t> ids;
  // Invalid UTF-8 text, or a match that exceeds the backtracking limit, is a data_error.
  if (!fuzz::reject_cleanly([&] { ids = tok.encode(text); })) return 0;
  const auto back = tok.decode(ids);
  if (std::string_view(behavior) != "Removed") fuzz::check(back == text, "decode(encode(text)) == text");
  else fuzz::check(back.size() <= text.size(), "Removed only removes");
  return 0;
}
