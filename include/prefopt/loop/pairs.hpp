// prefopt/loop/pairs.hpp — preference pairs from scored samples.
//
// Given the scores of each prompt's K completions (a scoring judge's answer):
//   best_vs_worst     one pair per prompt: the highest score chosen, the lowest rejected (the first
//                     such completion in sampling order on equal scores), as in Snorkel's and
//                     RLHFlow's iterative DPO recipes;
//   all_pairs         every two completions a < b whose scores differ by at least `margin`, the
//                     higher one chosen (K(K−1)/2 at most per prompt), in order of (a, b).
// Two completions with equal scores are a tie: never a pair, counted in report.ties. A gap that is
// positive but below `margin` is counted in report.below_margin (best_vs_worst applies the margin
// to its one gap). A prompt with fewer than two completions gives no pair (report.too_few).
// Records are TRL's preference format — prompt, chosen, rejected (text) — plus score_chosen and
// score_rejected, and, when given, the sampled token ids (prompt_input_ids, chosen_input_ids,
// rejected_input_ids), which prefopt's reader then trains on instead of re-tokenizing the text.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "prefopt/core/error.hpp"

namespace prefopt::loop {

enum class pair_strategy { best_vs_worst, all_pairs };

inline pair_strategy parse_pair_strategy(const std::string& s, const std::string& where) {
  if (s == "best_vs_worst") return pair_strategy::best_vs_worst;
  if (s == "all_pairs") return pair_strategy::all_pairs;
  throw config_error(where, "'" + s + "' is not one of best_vs_worst, all_pairs");
}

struct pair_options {
  pair_strategy strategy = pair_strategy::best_vs_worst;
  double margin = 0.0;  // the least score gap of a pair (>= 0)
};

struct scored_pair {
  std::size_t prompt = 0;             // index of the prompt (request)
  std::size_t chosen = 0, rejected = 0;  // completion indices within it
  double score_chosen = 0.0, score_rejected = 0.0;
};

struct pair_report {
  std::size_t prompts = 0, pairs = 0, ties = 0, below_margin = 0, too_few = 0;
};

inline std::vector<scored_pair> make_pairs(const std::vector<std::vector<double>>& scores, const pair_options& o,
                                           pair_report* report = nullptr) {
  if (!(o.margin >= 0.0)) throw config_error("pairs: field 'margin'", "must be >= 0");
  pair_report r;
  std::vector<scored_pair> out;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    const auto& s = scores[i];
    ++r.prompts;
    if (s.size() < 2) {
      ++r.too_few;
      continue;
    }
    auto consider = [&](std::size_t a, std::size_t b) {  // a, b: a candidate pair, either order
      if (s[a] == s[b]) return void(++r.ties);
      const std::size_t hi = s[a] > s[b] ? a : b, lo = hi == a ? b : a;
      if (s[hi] - s[lo] < o.margin) return void(++r.below_margin);
      out.push_back({i, hi, lo, s[hi], s[lo]});
    };
    if (o.strategy == pair_strategy::best_vs_worst) {
      std::size_t best = 0, worst = 0;
      for (std::size_t k = 1; k < s.size(); ++k) {
        if (s[k] > s[best]) best = k;
        if (s[k] < s[worst]) worst = k;
      }
      consider(best, worst);
    } else {
      for (std::size_t a = 0; a < s.size(); ++a)
        for (std::size_t b = a + 1; b < s.size(); ++b) consider(a, b);
    }
  }
  r.pairs = out.size();
  if (report) *report = r;
  return out;
}

// One record in TRL's standard preference format with the scores (and the token ids when given).
inline nlohmann::json preference_record_json(const std::string& prompt, const std::string& chosen, const std::string& rejected,
                                             double score_chosen, double score_rejected,
                                             const std::vector<std::int32_t>* prompt_ids = nullptr,
                                             const std::vector<std::int32_t>* chosen_ids = nullptr,
                                             const std::vector<std::int32_t>* rejected_ids = nullptr) {
  nlohmann::json j = {{"prompt", prompt}, {"chosen", chosen}, {"rejected", rejected},
                      {"score_chosen", score_chosen}, {"score_rejected", score_rejected}};
  if (prompt_ids && chosen_ids && rejected_ids) {
    j["prompt_input_ids"] = *prompt_ids;
    j["chosen_input_ids"] = *chosen_ids;
    j["rejected_input_ids"] = *rejected_ids;
  }
  return j;
}

} // namespace prefopt::loop
