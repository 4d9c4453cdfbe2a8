// prefopt/loop/pairwise.hpp — pairwise judges and the bridges between the two kinds.
//
//   round_robin<P>(pairwise)       a scoring judge from a pairwise one: each of a request's K
//                                  completions meets every other once (K(K−1)/2 comparisons, all
//                                  requests in one batch); its score is its wins, a tie counting ½
//                                  to each (scores lie in [0, K−1] and sum to K(K−1)/2).
//   pairwise_from_scores<S>(s)     a pairwise judge from a scoring one: the completion with the
//                                  higher score wins; equal scores are a tie (−1).
// A pairwise request holds exactly two completions; an answer is 0, 1 or −1.
#pragma once

#include <span>
#include <string>
#include <utility>
#include <vector>

#include "prefopt/loop/judge.hpp"

namespace prefopt::loop {

// Throws judge_error unless every request holds exactly two completions.
inline void check_pairwise_requests(const std::string& judge, std::span<const judge_request> batch) {
  for (std::size_t i = 0; i < batch.size(); ++i)
    if (batch[i].completions.size() != 2)
      throw judge_error("judge '" + judge + "'", "request " + std::to_string(i) + " has " +
                                                     std::to_string(batch[i].completions.size()) +
                                                     " completions; a pairwise judge compares exactly 2");
}

// Checks a pairwise judge's answer: one per request, each 0, 1 or −1.
inline void check_choices(const std::string& judge, std::span<const judge_request> batch, const std::vector<int>& choices) {
  if (choices.size() != batch.size())
    throw judge_error("judge '" + judge + "'", std::to_string(choices.size()) + " answers for " +
                                                   std::to_string(batch.size()) + " requests");
  for (std::size_t i = 0; i < choices.size(); ++i)
    if (choices[i] != 0 && choices[i] != 1 && choices[i] != -1)
      throw judge_error("judge '" + judge + "'", "request " + std::to_string(i) + ": answer " +
                                                     std::to_string(choices[i]) + " is not 0, 1 or -1");
}

template <pairwise_judge P> class round_robin {
public:
  explicit round_robin(P judge) : judge_(std::move(judge)) {}

  std::vector<std::vector<double>> score(std::span<const judge_request> batch) {
    struct match {
      std::size_t request, a, b;
    };
    std::vector<judge_request> games;
    std::vector<match> who;
    for (std::size_t i = 0; i < batch.size(); ++i)
      for (std::size_t a = 0; a < batch[i].completions.size(); ++a)
        for (std::size_t b = a + 1; b < batch[i].completions.size(); ++b) {
          games.push_back({batch[i].prompt, {batch[i].completions[a], batch[i].completions[b]}});
          who.push_back({i, a, b});
        }
    std::vector<std::vector<double>> scores(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) scores[i].assign(batch[i].completions.size(), 0.0);
    if (!games.empty()) {
      const std::vector<int> result = judge_.compare(std::span<const judge_request>(games));
      check_choices(judge_.name(), games, result);
      for (std::size_t g = 0; g < games.size(); ++g) {
        auto& s = scores[who[g].request];
        if (result[g] == 0) s[who[g].a] += 1.0;
        else if (result[g] == 1) s[who[g].b] += 1.0;
        else s[who[g].a] += 0.5, s[who[g].b] += 0.5;
      }
    }
    check_scores(name(), batch, scores);
    return scores;
  }
  std::string name() const { return "round robin of " + std::string(judge_.name()); }
  P& inner() { return judge_; }

private:
  P judge_;
};

template <scoring_judge S> class pairwise_from_scores {
public:
  explicit pairwise_from_scores(S judge) : judge_(std::move(judge)) {}

  std::vector<int> compare(std::span<const judge_request> batch) {
    check_pairwise_requests(name(), batch);
    const auto s = judge_.score(batch);
    check_scores(judge_.name(), batch, s);
    std::vector<int> out;
    out.reserve(batch.size());
    for (const auto& x : s) out.push_back(x[0] > x[1] ? 0 : x[1] > x[0] ? 1 : -1);
    return out;
  }
  std::string name() const { return "pairwise by " + std::string(judge_.name()); }
  S& inner() { return judge_; }

private:
  S judge_;
};

static_assert(scoring_judge<round_robin<pairwise_from_scores<callable_judge>>>);
static_assert(pairwise_judge<pairwise_from_scores<callable_judge>>);

} // namespace prefopt::loop
