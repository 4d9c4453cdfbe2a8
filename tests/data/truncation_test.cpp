// The truncation modes of prefopt/data/collate.hpp. keep_start and keep_end are checked against
// TRL 1.16's own rows (tools/reference/data_make_truncation_reference.py: DPOTrainer._prepare_dataset
// and DataCollatorForPreference on tests/data/collate/truncation_pairs.jsonl with the GPT-2 and Qwen2
// tokenizers): the pairs TRL drops, and each kept row's tokens and completion tokens, for every pair
// (keep_end pairs whose rows keep different prompt parts carry the rejected row's own prompt).
// keep_prompt_end, max_prompt_length and max_completion_length are checked by hand.
#include <doctest/doctest.h>

#include <prefopt/data/collate.hpp>
#include <support/data.hpp>

#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace {
using namespace prefopt::data;
using nlohmann::json;
using ids = std::vector<std::int32_t>;
using prefopt::models::tokenized_pair;

struct row {
  ids tokens;
  std::size_t scored = 0;  // completion tokens with a log-prob (the first token of a row has none)
  bool operator==(const row&) const = default;
};

// TRL's row: input_ids and the completion mask shifted by one, as its log-probs are taken.
row trl_row(const json& tokens, const json& mask) {
  row r{tokens.get<ids>(), 0};
  const auto m = mask.get<std::vector<int>>();
  for (std::size_t i = 1; i < m.size(); ++i) r.scored += std::size_t(m[i]);
  return r;
}
// prefopt's row: prompt + completion; every completion token is scored when the prompt is not empty.
row prefopt_row(const ids& prompt, const ids& completion) {
  row r{prompt, completion.size() - (prompt.empty() ? 1 : 0)};
  r.tokens.insert(r.tokens.end(), completion.begin(), completion.end());
  return r;
}

ids range(std::int32_t from, std::int32_t to) {
  ids v;
  for (auto i = from; i < to; ++i) v.push_back(i);
  return v;
}
} // namespace

TEST_CASE("keep_start and keep_end give TRL 1.16's rows and drop the pairs TRL drops") {
  std::ifstream in(prefopt::test::data_path("collate/truncation_trl.json"));
  REQUIRE(in);
  const json golden = json::parse(in);
  const auto file = read_preference_file(prefopt::test::data_path("collate/" + golden["input"].get<std::string>()));
  const auto& records = file.pairs();
  std::size_t split_seen = 0, dropped_seen = 0, compared = 0;
  for (const auto& c : golden["cases"]) {
    const std::string tok_name = c["tokenizer"], mode = c["truncation_mode"];
    CAPTURE(tok_name);
    CAPTURE(mode);
    const auto tok = tokenizer::from_file(prefopt::test::data_path("tokenizer/" + tok_name + "/tokenizer.json"));
    collate_options o;
    o.eos_token = golden["eos_token"];
    o.max_length = c["max_length"].get<std::size_t>();
    o.truncation = truncation_mode_from_name(mode);
    REQUIRE(c["pairs"].size() == records.size());
    for (std::size_t i = 0; i < records.size(); ++i) {
      const json& want = c["pairs"][i];
      CAPTURE(i);
      tokenized_pair p = tokenize_pair(records[i], tok, nullptr, o);
      const auto t = truncate_pair(p, o);
      CHECK(t.dropped == !want["kept"].get<bool>());
      if (t.dropped) {
        ++dropped_seen;
        continue;
      }
      const row chosen = prefopt_row(p.prompt, p.chosen), rejected = prefopt_row(p.rejected_row_prompt(), p.rejected);
      const row trl_chosen = trl_row(want["chosen_row"], want["chosen_mask"]);
      const row trl_rejected = trl_row(want["rejected_row"], want["rejected_mask"]);
      CHECK(t.split == p.split_prompt());
      if (t.split) {
        ++split_seen;
        CHECK(mode == "keep_end");
        CHECK(p.prompt != p.rejected_prompt);  // split only where the rows' prompts differ
      }
      ++compared;
      CHECK(chosen.tokens == trl_chosen.tokens);
      CHECK(chosen.scored == trl_chosen.scored);
      CHECK(rejected.tokens == trl_rejected.tokens);
      CHECK(rejected.scored == trl_rejected.scored);
    }
    // The whole file through tokenize_preferences: the report counts what TRL drops.
    const auto d = tokenize_preferences(file, tok, nullptr, o);
    std::size_t trl_kept = 0;
    for (const auto& p : c["pairs"]) trl_kept += p["kept"].get<bool>();
    CHECK(d.size() == trl_kept);
    CHECK(d.report.dropped_prompt_fills == records.size() - trl_kept);
    if (d.report.dropped_prompt_fills) CHECK(d.report.summary().find("dropped as TRL drops them") != std::string::npos);
    std::size_t splits = 0;
    for (const auto& p : d.pairs) splits += p.split_prompt();
    CHECK(d.report.keep_end_split == splits);
  }
  CHECK(dropped_seen >= 2);   // the golden data exercises the drop (gpt2 and qwen2, keep_start)
  CHECK(compared >= 12);      // and compares the rest exactly
  CHECK(split_seen >= 1);     // and holds a keep_end pair whose rows TRL cuts differently
}

TEST_CASE("keep_start and keep_end by hand; max_prompt_length and max_completion_length") {
  collate_options o;
  o.max_length = 10;
  o.truncation = truncation_mode::keep_start;
  tokenized_pair p{range(0, 6), range(100, 108), range(200, 202)};
  auto t = truncate_pair(p, o);
  CHECK(p.prompt == range(0, 6));
  CHECK(p.chosen == range(100, 104));
  CHECK(p.rejected == range(200, 202));
  CHECK(t.completion);
  CHECK_FALSE(t.prompt);
  tokenized_pair fills{range(0, 10), range(100, 102), range(200, 202)};
  CHECK(truncate_pair(fills, o).dropped);
  o.max_prompt_length = 3;  // TRL 0.x: keep_start keeps the prompt's first tokens
  p = {range(0, 6), range(100, 108), range(200, 202)};
  truncate_pair(p, o);
  CHECK(p.prompt == range(0, 3));
  CHECK(p.chosen == range(100, 107));

  o = {};
  o.max_length = 10;
  o.truncation = truncation_mode::keep_end;
  p = {range(0, 6), range(100, 106), range(200, 206)};  // equal completions: exact
  t = truncate_pair(p, o);
  CHECK(p.prompt == range(2, 6));
  CHECK(p.chosen == range(100, 106));
  CHECK_FALSE(t.split);
  CHECK_FALSE(p.split_prompt());
  p = {range(0, 6), range(100, 106), range(200, 202)};  // the rejected row keeps all 6 prompt tokens
  t = truncate_pair(p, o);
  CHECK(p.prompt == range(2, 6));
  CHECK(p.rejected_prompt == range(0, 6));
  CHECK(p.rejected == range(200, 202));
  CHECK(t.split);
  CHECK(t.prompt);
  CHECK_THROWS_AS(truncate_pair(p, o), std::invalid_argument);  // already split
  p = {range(0, 6), range(100, 112), range(200, 202)};  // a completion longer than max_length
  t = truncate_pair(p, o);
  CHECK(p.prompt == ids{102});  // TRL's row is the completion's last 10 tokens: the first predicts the rest
  CHECK(p.chosen == range(103, 112));
  CHECK(p.rejected_prompt == range(0, 6));
  CHECK(t.split);
  CHECK(t.completion);
  p = {range(0, 3), range(100, 104), range(200, 203)};  // fits: untouched
  t = truncate_pair(p, o);
  CHECK_FALSE((t.prompt || t.completion || t.split));

  o = {};
  o.max_length = std::nullopt;
  o.max_completion_length = 3;
  for (auto mode : {truncation_mode::keep_prompt_end, truncation_mode::keep_start, truncation_mode::keep_end}) {
    o.truncation = mode;
    p = {range(0, 6), range(100, 108), range(200, 202)};
    t = truncate_pair(p, o);
    CHECK(p.chosen == range(100, 103));
    CHECK(p.rejected == range(200, 202));
    CHECK(t.completion);
  }
  // keep_prompt_end is unchanged: the prompt keeps its end, completions their start
  o = {};
  o.max_length = 10;
  p = {range(0, 8), range(100, 108), range(200, 202)};
  truncate_pair(p, o);
  CHECK(p.prompt == range(3, 8));
  CHECK(p.chosen == range(100, 105));
  CHECK(truncation_mode_from_name("keep_end") == truncation_mode::keep_end);
  CHECK_THROWS_AS((void)truncation_mode_from_name("keep_middle"), prefopt::config_error);
}
