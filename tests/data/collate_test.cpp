// Tests for prefopt/data/collate.hpp. Token ids come from TRL 1.16 itself, through
// tools/reference/data_make_collate_reference.py: DPOTrainer._prepare_dataset and
// KTOTrainer._prepare_dataset run on the inputs of tests/data/collate/ with the GPT-2, Llama-3 and
// Qwen2 tokenizers of tests/data/tokenizer/ (wrapped as PreTrainedTokenizerFast) and the chat
// templates of tests/data/chat/; cases.json lists the cases. Truncation, skipping, batch plans,
// padding and batch layouts are checked against values worked out by hand from the rules in
// collate.hpp and token_batch.hpp.
#include <doctest/doctest.h>

#include <prefopt/data/collate.hpp>
#include <support/data.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace prefopt::data;
using nlohmann::json;
using ids = std::vector<std::int32_t>;
using prefopt::models::tokenized_pair;

json load_json(const std::string& name) {
  std::ifstream in(prefopt::test::data_path("collate/" + name));
  return json::parse(in);
}

std::vector<json> load_jsonl(const std::string& name) {
  std::ifstream in(prefopt::test::data_path("collate/" + name));
  std::vector<json> rows;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

const tokenizer& tokenizer_named(const std::string& name) {
  static std::map<std::string, tokenizer> cache;
  if (auto it = cache.find(name); it != cache.end()) return it->second;
  return cache.emplace(name, tokenizer::from_file(prefopt::test::data_path("tokenizer/" + name + "/tokenizer.json")))
      .first->second;
}

ids range(std::int32_t from, std::int32_t to) {  // [from, to)
  ids v(std::size_t(to - from));
  std::iota(v.begin(), v.end(), from);
  return v;
}

// An in-memory file of pre-tokenized pairs (no format checks: tests what collation does with anything).
preference_file tokenized_file(std::vector<tokenized_pair_record> records) {
  for (std::size_t i = 0; i < records.size(); ++i) records[i].line = i + 1;
  preference_file f;
  f.file = "mem.jsonl";
  f.format = dataset_format::tokenized;
  f.records = std::move(records);
  return f;
}

tokenized_preferences random_dataset(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto len = [&](std::size_t lo, std::size_t hi) { return std::int32_t(lo + rng() % (hi - lo + 1)); };
  std::vector<tokenized_pair_record> records;
  for (std::size_t i = 0; i < n; ++i) {
    tokenized_pair_record r;
    r.prompt = range(0, len(4, 300));
    r.chosen = range(1, 1 + len(1, 400));
    r.rejected = range(2, 2 + len(1, 400));
    records.push_back(std::move(r));
  }
  return tokenize_preferences(tokenized_file(std::move(records)), tokenizer_named("gpt2"), nullptr,
                              {.max_length = std::nullopt});
}

} // namespace

TEST_CASE("token ids equal TRL 1.16's _prepare_dataset for every record") {
  const auto meta = load_json("cases.json");
  REQUIRE(meta["trl"] == "1.16.0");
  std::size_t total = 0, mismatches = 0, cuts = 0;
  for (const auto& c : meta["cases"]) {
    const std::string name = c["name"];
    CAPTURE(name);
    const auto file = read_preference_file(prefopt::test::data_path("collate/" + c["input"].get<std::string>()));
    const auto& tok = tokenizer_named(c["tokenizer"]);
    std::optional<chat_template> chat;
    if (!c["chat"].is_null())
      chat = select_chat_template(prefopt::test::data_path("chat/" + c["chat"].get<std::string>() + "/tokenizer_config.json"));
    const collate_options options{.eos_token = c["eos_token"]};
    const auto expected = load_jsonl(c["expected"]);
    const chat_template* t = chat ? &*chat : nullptr;
    std::size_t case_mismatches = 0;
    if (c["trainer"] == "dpo") {
      const auto& records = file.pairs();
      REQUIRE(records.size() == expected.size());
      for (std::size_t i = 0; i < records.size(); ++i) {
        const auto p = tokenize_pair(records[i], tok, t, options);
        const auto& e = expected[i];
        CHECK(records[i].line == e["line"].get<std::size_t>());
        const bool same = p.prompt == e["prompt_ids"].get<ids>() && p.chosen == e["chosen_ids"].get<ids>() &&
                          p.rejected == e["rejected_ids"].get<ids>();
        CHECK_MESSAGE(same, "line " << records[i].line);
        case_mismatches += !same;
      }
      // The whole file, without truncation: the same ids, pairs with an empty prompt skipped and counted.
      const auto all = tokenize_preferences(file, tok, t, {.eos_token = c["eos_token"], .max_length = std::nullopt});
      std::size_t k = 0, empty = 0;
      for (const auto& e : expected) {
        if (e["prompt_ids"].empty()) {
          ++empty;
          continue;
        }
        REQUIRE(k < all.size());
        CHECK(all.lines[k] == e["line"].get<std::size_t>());
        CHECK(all.pairs[k].chosen == e["chosen_ids"].get<ids>());
        ++k;
      }
      CHECK(all.size() == k);
      CHECK(all.report.skipped_empty_prompt == empty);
      CHECK(all.report.skipped() == empty);
      cuts += all.report.prompt_cuts;
    } else {
      const auto records = file.records.index() == 0 ? unpair(file.pairs()) : file.unpaired();
      REQUIRE(records.size() == expected.size());
      for (std::size_t i = 0; i < records.size(); ++i) {
        const auto x = tokenize_example(records[i], tok, t, options);
        const auto& e = expected[i];
        CHECK(records[i].line == e["line"].get<std::size_t>());
        const bool same = x.prompt == e["prompt_ids"].get<ids>() && x.completion == e["completion_ids"].get<ids>() &&
                          x.label == e["label"].get<bool>();
        CHECK_MESSAGE(same, "line " << records[i].line);
        case_mismatches += !same;
      }
      const auto all = tokenize_unpaired(file, tok, t, {.eos_token = c["eos_token"], .max_length = std::nullopt});
      cuts += all.report.prompt_cuts;
    }
    MESSAGE(name << ": " << expected.size() << " records, " << case_mismatches << " mismatches");
    total += expected.size();
    mismatches += case_mismatches;
  }
  MESSAGE("all cases: " << total << " records compared with TRL, " << mismatches << " mismatches; " << cuts
                        << " splits inside the tokenized prompt");
  CHECK(mismatches == 0);
  CHECK(cuts > 0);  // the data does exercise merges across the boundary
}

TEST_CASE("per-pair columns are carried; absent columns are empty; partial columns are an error") {
  const auto file = read_preference_file(prefopt::test::data_path("collate/text_pairs.jsonl"));
  const auto d = tokenize_preferences(file, tokenizer_named("gpt2"), nullptr, {.eos_token = "<|endoftext|>"});
  REQUIRE(d.size() + d.report.skipped() == file.size());
  REQUIRE(d.cost.size() == d.size());
  std::map<std::size_t, const preference_record*> by_line;
  for (const auto& r : file.pairs()) by_line[r.line] = &r;
  for (std::size_t i = 0; i < d.size(); ++i) {
    const auto& r = *by_line.at(d.lines[i]);
    CHECK(d.preference_prob[i] == *r.preference_prob);
    CHECK(d.score_chosen[i] == *r.score_chosen);
    CHECK(d.score_rejected[i] == *r.score_rejected);
    CHECK(d.cost[i] == *r.cost);
    CHECK(d.weight[i] == *r.weight);
  }
  const auto conv = read_preference_file(prefopt::test::data_path("collate/conversations.jsonl"));
  const auto chat = qwen2_template();
  const auto c = tokenize_preferences(conv, tokenizer_named("qwen2"), &chat, {});
  CHECK(c.size() == conv.size());
  CHECK(c.preference_prob.empty());
  CHECK(c.cost.empty());
  CHECK(c.weight.empty());
  CHECK(c.pad_token_id == 0);  // no eos_token given, no pad_token_id: 0

  tokenized_pair_record a{.prompt = {1}, .chosen = {2}, .rejected = {3}, .cost = 0.5};
  tokenized_pair_record b{.prompt = {1}, .chosen = {2}, .rejected = {3}};
  try {
    (void)tokenize_preferences(tokenized_file({a, b}), tokenizer_named("gpt2"), nullptr, {});
    FAIL("no data_error");
  } catch (const prefopt::data_error& e) {
    CHECK(std::string(e.what()) == "mem.jsonl:2: field 'cost': missing, but line 1 has it; give the column on every "
                                   "record or on none");
  }
  // A skipped record does not count: its columns do not matter.
  b.chosen.clear();
  CHECK(tokenize_preferences(tokenized_file({a, b}), tokenizer_named("gpt2"), nullptr, {}).cost == std::vector{0.5});
}

TEST_CASE("truncation keeps the prompt's end and the completions' start") {
  SUBCASE("fits: unchanged") {
    tokenized_pair p{range(0, 6), range(10, 12), range(20, 21)};
    const auto t = truncate_pair(p, 8);
    CHECK(!t.prompt);
    CHECK(!t.completion);
    CHECK(p.prompt == range(0, 6));
  }
  SUBCASE("the prompt gives way to the longest completion") {
    tokenized_pair p{range(0, 10), range(10, 12), range(20, 21)};  // 10 + 2 > 8: prompt keeps 8 − 2
    const auto t = truncate_pair(p, 8);
    CHECK(t.prompt);
    CHECK(!t.completion);
    CHECK(p.prompt == range(4, 10));
    CHECK(p.chosen == range(10, 12));
  }
  SUBCASE("the max_length / 2 floor, then completions cut at their end") {
    tokenized_pair p{range(0, 10), range(100, 120), range(200, 203)};  // L − longest < 0: prompt keeps L/2 = 6
    const auto t = truncate_pair(p, 12);
    CHECK(t.prompt);
    CHECK(t.completion);
    CHECK(p.prompt == range(4, 10));
    CHECK(p.chosen == range(100, 106));
    CHECK(p.rejected == range(200, 203));
  }
  SUBCASE("a prompt under the floor stays whole") {
    tokenized_pair p{range(0, 3), range(100, 120), range(200, 230)};
    const auto t = truncate_pair(p, 12);
    CHECK(!t.prompt);
    CHECK(p.prompt == range(0, 3));
    CHECK(p.chosen == range(100, 109));
    CHECK(p.rejected == range(200, 209));
  }
  SUBCASE("odd max_length: floor rounds down") {
    tokenized_pair p{range(0, 10), range(100, 120), range(200, 201)};
    truncate_pair(p, 7);
    CHECK(p.prompt == range(7, 10));
    CHECK(p.chosen == range(100, 104));
  }
  SUBCASE("max_prompt_length first, then the rest") {
    tokenized_pair p{range(0, 10), range(100, 103), range(200, 201)};
    auto t = truncate_pair(p, std::nullopt, 4);
    CHECK(t.prompt);
    CHECK(p.prompt == range(6, 10));
    tokenized_pair q{range(0, 10), range(100, 110), range(200, 201)};
    t = truncate_pair(q, 12, 8);  // 8 + 10 > 12: max(2, min(8, 6)) = 6
    CHECK(q.prompt == range(4, 10));
    CHECK(q.chosen == range(100, 106));
  }
  SUBCASE("unpaired examples follow the same rule") {
    tokenized_example e{range(0, 10), range(100, 120), true};
    const auto t = truncate_example(e, 12);
    CHECK(t.prompt);
    CHECK(t.completion);
    CHECK(e.prompt == range(4, 10));
    CHECK(e.completion == range(100, 106));
  }
}

TEST_CASE("empty prompts and completions are skipped and counted, never passed on") {
  std::vector<tokenized_pair_record> records{
      {.prompt = range(0, 5), .chosen = range(10, 13), .rejected = range(20, 22)},     // 1 kept
      {.prompt = {}, .chosen = range(10, 13), .rejected = range(20, 22)},              // 2 empty prompt
      {.prompt = range(0, 5), .chosen = {}, .rejected = range(20, 22)},                // 3 empty chosen
      {.prompt = range(0, 5), .chosen = range(10, 13), .rejected = {}},                // 4 empty rejected
      {.prompt = range(0, 30), .chosen = range(10, 13), .rejected = range(20, 22)},    // 5 prompt truncated
      {.prompt = range(0, 4), .chosen = range(10, 40), .rejected = range(20, 22)},     // 6 completion truncated
      {.prompt = range(0, 20), .chosen = range(10, 40), .rejected = range(20, 60)},    // 7 both
  };
  auto d = tokenize_preferences(tokenized_file(records), tokenizer_named("gpt2"), nullptr,
                                {.max_length = 16, .max_prompt_length = 12});
  const auto& r = d.report;
  CHECK(r.records == 7);
  CHECK(r.kept == 4);
  CHECK(r.skipped_empty_prompt == 1);
  CHECK(r.skipped_empty_completion == 2);
  CHECK(r.skipped_by_truncation == 0);
  CHECK(r.skipped_lines == std::vector<std::size_t>{2, 3, 4});
  CHECK(r.truncated_prompt == 2);
  CHECK(r.truncated_completion == 2);
  CHECK(r.truncated_lines == std::vector<std::size_t>{5, 6, 7});
  CHECK(d.lines == std::vector<std::size_t>{1, 5, 6, 7});
  CHECK(d.pairs[1].prompt == range(18, 30));   // max_prompt_length 12; 12 + 3 ≤ 16
  CHECK(d.pairs[2].chosen == range(10, 22));   // 16 − 4
  CHECK(d.pairs[3].prompt == range(12, 20));   // 12, then max(16 − 40, min(12, 8)) = 8
  CHECK(d.pairs[3].rejected == range(20, 28));
  for (const auto& p : d.pairs) CHECK(p.prompt.size() + std::max(p.chosen.size(), p.rejected.size()) <= 16);
  CHECK(r.summary() == "7 records: 4 kept, 3 skipped (1 empty prompt, 2 empty completion, 0 truncated to nothing; "
                       "lines 2, 3, 4); truncated: 2 prompts, 2 completions (lines 5, 6, 7); 0 prompt cuts");
  MESSAGE(r.summary());

  // max_length 1: every prompt is truncated to nothing; nothing is left, which is an error naming the counts.
  try {
    (void)tokenize_preferences(tokenized_file(records), tokenizer_named("gpt2"), nullptr, {.max_length = 1});
    FAIL("no data_error");
  } catch (const prefopt::data_error& e) {
    CHECK(std::string(e.what()).find("mem.jsonl: no example left") == 0);
    CHECK(std::string(e.what()).find("4 truncated to nothing") != std::string::npos);
  }
  // keep_lines bounds the line lists.
  d = tokenize_preferences(tokenized_file(records), tokenizer_named("gpt2"), nullptr,
                           {.max_length = 16, .max_prompt_length = 12, .keep_lines = 2});
  CHECK(d.report.skipped_lines == std::vector<std::size_t>{2, 3});

  // A text pair with an empty prompt (GPT-2 adds no BOS): skipped, as line 13 of text_pairs.jsonl.
  const auto file = read_preference_file(prefopt::test::data_path("collate/text_pairs.jsonl"));
  const auto t = tokenize_preferences(file, tokenizer_named("gpt2"), nullptr, {.eos_token = "<|endoftext|>"});
  CHECK(t.report.skipped_empty_prompt == 1);
  CHECK(t.report.skipped_lines == std::vector<std::size_t>{13});
  MESSAGE("gpt2 text_pairs: " << t.report.summary());
  // Llama-3's BOS makes the same prompt non-empty.
  const auto l = tokenize_preferences(file, tokenizer_named("llama3"), nullptr, {.eos_token = "<|end_of_text|>"});
  CHECK(l.report.skipped() == 0);
}

TEST_CASE("tokenization errors") {
  const auto conv = read_preference_file(prefopt::test::data_path("collate/conversations.jsonl"));
  const auto text = read_preference_file(prefopt::test::data_path("collate/text_pairs.jsonl"));
  const auto unpaired = read_preference_file(prefopt::test::data_path("collate/unpaired_text.jsonl"));
  const auto& tok = tokenizer_named("qwen2");
  CHECK_THROWS_WITH_AS((void)tokenize_preferences(conv, tok, nullptr, {}),
                       doctest::Contains("conversational records need a chat template"), prefopt::config_error);
  CHECK_THROWS_WITH_AS((void)tokenize_preferences(text, tok, nullptr, {}),
                       doctest::Contains("collate_options.eos_token is empty"), prefopt::config_error);
  const auto plain = gpt2_plain_template();
  CHECK_THROWS_AS((void)tokenize_preferences(conv, tok, &plain, {}), prefopt::config_error);
  CHECK_THROWS_WITH_AS((void)tokenize_preferences(unpaired, tok, nullptr, {.eos_token = "<|endoftext|>"}),
                       doctest::Contains("use tokenize_unpaired"), prefopt::config_error);
  CHECK_THROWS_AS((void)tokenize_preferences(text, tok, nullptr, {.eos_token = "x", .max_length = 0}),
                  prefopt::config_error);
  CHECK_THROWS_AS((void)tokenize_preferences(text, tok, nullptr, {.eos_token = "x", .max_prompt_length = 0}),
                  prefopt::config_error);
}

TEST_CASE("gpt2-plain renders message lists and ends completions with EOS") {
  const auto conv = read_preference_file(prefopt::test::data_path("collate/conversations.jsonl"));
  const auto& tok = tokenizer_named("gpt2");
  const auto plain = gpt2_plain_template();
  const auto d = tokenize_preferences(conv, tok, &plain, {.eos_token = "<|endoftext|>"});
  const auto eos = *tok.token_to_id("<|endoftext|>");
  CHECK(d.pad_token_id == eos);
  for (const auto& p : d.pairs) {
    CHECK(p.chosen.back() == eos);
    CHECK(p.rejected.back() == eos);
  }
  // The first conversation: "What is 2 + 2?" + "\n\n" + "4" + EOS, split where TRL would split it.
  const auto& first = conv.pairs()[0];
  const auto p = tokenize_pair(first, tok, &plain, {.eos_token = "<|endoftext|>"});
  CHECK(tok.decode(p.prompt) + tok.decode(p.chosen) == "What is 2 + 2?\n\n4<|endoftext|>");
}

TEST_CASE("pre-tokenized records pass through; unpaired data from pairs is unpaired as TRL does") {
  const auto f = tokenized_file({{.prompt = {1, 2}, .chosen = {3}, .rejected = {4, 5}, .weight = 2.0},
                                 {.prompt = {6}, .chosen = {7, 8}, .rejected = {9}, .weight = 0.5}});
  const auto d = tokenize_preferences(f, tokenizer_named("gpt2"), nullptr, {});
  REQUIRE(d.size() == 2);
  CHECK(d.pairs[0].prompt == ids{1, 2});
  CHECK(d.pairs[1].chosen == ids{7, 8});
  const auto u = tokenize_unpaired(f, tokenizer_named("gpt2"), nullptr, {});
  REQUIRE(u.size() == 4);  // chosen rows, then rejected rows
  CHECK(u.examples[0].completion == ids{3});
  CHECK(u.examples[0].label);
  CHECK(u.examples[1].completion == ids{7, 8});
  CHECK(u.examples[2].completion == ids{4, 5});
  CHECK(!u.examples[2].label);
  CHECK(u.lines == std::vector<std::size_t>{1, 2, 1, 2});
  CHECK(u.weight == std::vector{2.0, 0.5, 2.0, 0.5});
}

TEST_CASE("batch plans: deterministic for a seed, every index once per epoch") {
  std::vector<std::size_t> lengths(1037);
  std::mt19937_64 g(3);
  for (auto& l : lengths) l = 1 + g() % 500;
  for (const bool bucketing : {false, true})
    for (const std::size_t batch_size : {1, 7, 8, 64, 2000}) {
      CAPTURE(bucketing);
      CAPTURE(batch_size);
      const batch_plan_options o{.batch_size = batch_size, .length_bucketing = bucketing, .mega_batch_factor = 5};
      const auto a = make_batch_plan(lengths, o, 42, 0);
      CHECK(make_batch_plan(lengths, o, 42, 0).batches == a.batches);
      CHECK(make_batch_plan(lengths, o, 42, 1).batches != a.batches);
      CHECK(make_batch_plan(lengths, o, 43, 0).batches != a.batches);
      std::mt19937_64 r1(9), r2(9);
      CHECK(make_batch_plan(lengths, o, r1).batches == make_batch_plan(lengths, o, r2).batches);
      std::vector<std::size_t> all;
      for (const auto& b : a.batches) {
        CHECK(!b.empty());
        CHECK(b.size() <= batch_size);
        all.insert(all.end(), b.begin(), b.end());
      }
      std::sort(all.begin(), all.end());
      std::vector<std::size_t> expect(lengths.size());
      std::iota(expect.begin(), expect.end(), std::size_t(0));
      CHECK(all == expect);
      CHECK(a.examples() == lengths.size());
      CHECK(a.size() == (lengths.size() + batch_size - 1) / batch_size);
      // drop_last: only full batches, all but the remainder covered once.
      auto d = o;
      d.drop_last = true;
      const auto dp = make_batch_plan(lengths, d, 42, 0);
      for (const auto& b : dp.batches) CHECK(b.size() == batch_size);
      CHECK(dp.examples() == lengths.size() / batch_size * batch_size);
    }
  // Without shuffling: file order.
  const auto ordered = make_batch_plan(lengths, {.batch_size = 500, .shuffle = false}, 1, 0);
  REQUIRE(ordered.size() == 3);
  CHECK(ordered.batches[0].front() == 0);
  CHECK(ordered.batches[2].back() == 1036);
  // The same plan on every standard library: a pinned draw of this implementation.
  const std::vector<std::size_t> ten(10, 1);
  const auto pinned = make_batch_plan(ten, {.batch_size = 10}, 1, 0);
  CHECK(pinned.batches[0] == std::vector<std::size_t>{2, 1, 8, 9, 6, 7, 3, 5, 0, 4});
}

TEST_CASE("length bucketing reduces padding waste") {
  for (const bool prefix_sharing : {false, true}) {
    const auto d = random_dataset(4000, 11);
    const auto lengths = row_lengths(d, prefix_sharing);
    const batch_plan_options plain{.batch_size = 8}, bucketed{.batch_size = 8, .length_bucketing = true};
    const double w0 = padding_waste(d, make_batch_plan(lengths, plain, 5, 0), prefix_sharing);
    const double w1 = padding_waste(d, make_batch_plan(lengths, bucketed, 5, 0), prefix_sharing);
    MESSAGE("4000 random pairs, batch 8, " << std::string(prefix_sharing ? "prefix-shared rows" : "two-row layout")
                                           << ": padding waste " << w0 << " shuffled, " << w1 << " bucketed (x50)");
    // Bucketing cannot remove the difference between a pair's chosen and rejected rows (two-row layout).
    CHECK(w1 < (prefix_sharing ? 0.1 : 0.5) * w0);
  }
  const auto file = read_preference_file(prefopt::test::data_path("collate/text_pairs.jsonl"));
  const auto d = tokenize_preferences(file, tokenizer_named("llama3"), nullptr, {.eos_token = "<|end_of_text|>"});
  const auto lengths = row_lengths(d, false);
  const double w0 = padding_waste(d, make_batch_plan(lengths, {.batch_size = 4}, 5, 0), false);
  const double w1 = padding_waste(d, make_batch_plan(lengths, {.batch_size = 4, .length_bucketing = true}, 5, 0), false);
  MESSAGE("text_pairs.jsonl (Llama-3, " << d.size() << " pairs), batch 4: padding waste " << w0 << " shuffled, " << w1
                                        << " bucketed");
  CHECK(w1 < w0);
  // By hand: rows 3+2, 3+1 and 1+4, 1+1 in one batch: width 5, waste (0 + 1 + 0 + 3) / 20.
  tokenized_preferences h;
  h.pairs = {{range(0, 3), range(0, 2), range(0, 1)}, {range(0, 1), range(0, 4), range(0, 1)}};
  CHECK(padding_waste(h, batch_plan{.batches = {{0, 1}}}, false) == doctest::Approx(4.0 / 20));
  CHECK(padding_waste(h, batch_plan{.batches = {{0, 1}}}, true) == doctest::Approx(0.0));  // 3+2+1 = 6 and 1+4+1 = 6
}

TEST_CASE("pad_to_multiple_of pads each packed row with segment -1 tokens that predict nothing") {
  const std::vector<tokenized_pair> pairs{{range(1, 4), range(10, 12), range(20, 25)},
                                          {range(1, 9), range(10, 11), range(20, 22)}};
  for (const bool shared : {false, true}) {
    CAPTURE(shared);
    const auto plain = prefopt::models::pack_pairs(pairs, shared);
    const auto padded = prefopt::models::pack_pairs(pairs, shared, 8, 77);
    REQUIRE(padded.rows() == plain.rows());
    std::size_t pads = 0;
    for (int r = 0; r < padded.rows(); ++r) {
      const auto b = std::size_t(padded.row_offsets[std::size_t(r)]), e = std::size_t(padded.row_offsets[std::size_t(r) + 1]);
      const auto pb = std::size_t(plain.row_offsets[std::size_t(r)]), pe = std::size_t(plain.row_offsets[std::size_t(r) + 1]);
      CHECK((e - b) % 8 == 0);
      CHECK(e - b - (pe - pb) < 8);
      for (std::size_t k = 0; k < pe - pb; ++k) {  // the row's own tokens, unchanged
        CHECK(padded.tokens[b + k] == plain.tokens[pb + k]);
        CHECK(padded.positions[b + k] == plain.positions[pb + k]);
        CHECK(padded.segment[b + k] == plain.segment[pb + k]);
      }
      for (std::size_t k = b + (pe - pb); k < e; ++k, ++pads) {
        CHECK(padded.tokens[k] == 77);
        CHECK(padded.positions[k] == 0);
        CHECK(padded.segment[k] == -1);
      }
    }
    CHECK(pads == padded.size() - plain.size());
    CHECK(pads > 0);
    // The same predictions: same targets and sequences, sources at the same tokens, never a pad.
    REQUIRE(padded.predict_from.size() == plain.predict_from.size());
    for (std::size_t h = 0; h < plain.predict_from.size(); ++h) {
      CHECK(padded.predict_token[h] == plain.predict_token[h]);
      CHECK(padded.predict_sequence[h] == plain.predict_sequence[h]);
      CHECK(padded.segment[std::size_t(padded.predict_from[h])] != -1);
      CHECK(padded.tokens[std::size_t(padded.predict_from[h])] == plain.tokens[std::size_t(plain.predict_from[h])]);
    }
    CHECK(padded.completion_tokens() == plain.completion_tokens());
    CHECK(padded.sequences == plain.sequences);
  }
  // 1 or 0: no padding.
  CHECK(prefopt::models::pack_pairs(pairs, false, 1, 77).tokens == prefopt::models::pack_pairs(pairs, false).tokens);
}

TEST_CASE("make_batch: chosen rows first then rejected, prefix-shared rows, columns carried") {
  const auto f = tokenized_file({{.prompt = {1, 2}, .chosen = {3}, .rejected = {4, 5}, .preference_prob = 0.9, .cost = 1},
                                 {.prompt = {6}, .chosen = {7, 8}, .rejected = {9}, .preference_prob = 0.8, .cost = 2},
                                 {.prompt = {10, 11, 12}, .chosen = {13}, .rejected = {14}, .preference_prob = 0.7, .cost = 3}});
  const auto d = tokenize_preferences(f, tokenizer_named("gpt2"), nullptr, {.pad_token_id = 50});
  const std::vector<std::size_t> idx{2, 0};
  SUBCASE("two rows per pair") {
    const auto b = make_batch(d, idx, false);
    CHECK(b.pairs == 2);
    CHECK(b.sequences.sequences == 4);
    CHECK(b.sequences.rows() == 4);
    CHECK(b.sequences.tokens == ids{10, 11, 12, 13, 1, 2, 3, 10, 11, 12, 14, 1, 2, 4, 5});
    CHECK(b.sequences.row_offsets == ids{0, 4, 7, 11, 15});
    CHECK(b.sequences.positions == ids{0, 1, 2, 3, 0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3});
    CHECK(b.sequences.predict_from == ids{2, 5, 9, 12, 13});
    CHECK(b.sequences.predict_token == ids{13, 3, 14, 4, 5});
    CHECK(b.sequences.predict_sequence == ids{0, 1, 2, 3, 3});
    CHECK(b.preference_prob == std::vector{0.7, 0.9});
    CHECK(b.cost == std::vector{3.0, 1.0});
    CHECK(b.score_chosen.empty());
    CHECK(b.score_rejected.empty());
    CHECK(b.reference_chosen.empty());
  }
  SUBCASE("prefix sharing: one row [p c r] per pair") {
    const auto b = make_batch(d, idx, true);
    CHECK(b.sequences.rows() == 2);
    CHECK(b.sequences.tokens == ids{10, 11, 12, 13, 14, 1, 2, 3, 4, 5});
    CHECK(b.sequences.segment == ids{0, 0, 0, 1, 2, 0, 0, 1, 2, 2});
    CHECK(b.sequences.positions == ids{0, 1, 2, 3, 3, 0, 1, 2, 2, 3});
    CHECK(b.sequences.predict_from == ids{2, 2, 6, 6, 8});
    CHECK(b.sequences.predict_token == ids{13, 14, 3, 4, 5});
    CHECK(b.sequences.predict_sequence == ids{0, 2, 1, 3, 3});
  }
  SUBCASE("padded rows carry the pad id") {
    const auto b = make_batch(d, idx, true, 4);
    CHECK(b.sequences.tokens == ids{10, 11, 12, 13, 14, 50, 50, 50, 1, 2, 3, 4, 5, 50, 50, 50});
    CHECK(b.sequences.row_offsets == ids{0, 8, 16});
  }
  SUBCASE("bad index lists") {
    CHECK_THROWS_AS((void)make_batch(d, std::vector<std::size_t>{}, false), prefopt::shape_error);
    CHECK_THROWS_WITH_AS((void)make_batch(d, std::vector<std::size_t>{0, 3}, false),
                         "make_batch: index 3 outside the 3 examples", prefopt::shape_error);
  }
}

TEST_CASE("make_unpaired_batch: one row per example, optional KL rows rotated within the batch") {
  const auto f = read_preference_file(prefopt::test::data_path("collate/unpaired_text.jsonl"));
  const auto d = tokenize_unpaired(f, tokenizer_named("gpt2"), nullptr, {.eos_token = "<|endoftext|>", .max_length = 24});
  REQUIRE(d.size() == f.size());
  REQUIRE(d.weight.size() == d.size());
  const std::vector<std::size_t> idx{3, 1, 4};
  const auto b = make_unpaired_batch(d, idx, true);
  CHECK(b.examples == 3);
  CHECK(b.sequences.sequences == 6);
  CHECK(b.sequences.rows() == 6);
  for (std::size_t k = 0; k < 3; ++k) {
    const auto& e = d.examples[idx[k]];
    CHECK(b.desirable[k] == char(e.label));
    CHECK(b.weight[k] == d.weight[idx[k]]);
    ids row(b.sequences.tokens.begin() + b.sequences.row_offsets[k], b.sequences.tokens.begin() + b.sequences.row_offsets[k + 1]);
    ids expect = e.prompt;
    expect.insert(expect.end(), e.completion.begin(), e.completion.end());
    CHECK(row == expect);
    // KL row: this prompt, the previous example's completion (cut to fit max_length).
    ids kl(b.sequences.tokens.begin() + b.sequences.row_offsets[3 + k],
           b.sequences.tokens.begin() + b.sequences.row_offsets[4 + k]);
    const auto& prev = d.examples[idx[(k + 2) % 3]].completion;
    ids kl_expect = e.prompt;
    kl_expect.insert(kl_expect.end(), prev.begin(), prev.begin() + std::ptrdiff_t(std::min(prev.size(), 24 - e.prompt.size())));
    CHECK(kl == kl_expect);
  }
  const auto counts = b.sequences.completion_tokens();
  CHECK(counts[0] == int(d.examples[3].completion.size()));
  CHECK(make_unpaired_batch(d, idx, false).sequences.sequences == 3);
}
