// prefopt/loop/active_selection.hpp — choose the prompts or pairs worth a judge's or a trainer's time.
//
// Each rule turns an item into a priority (higher: chosen first); select_top() keeps the top n or a
// fraction of them. The rules:
//   policy_priority(h, β)        pairs the policy is least sure of: −|σ(β·h) − ½|, h the implicit
//                                reward margin (log π_θ − log π_ref)(chosen) − (…)(rejected), so
//                                σ(β·h) is the policy's own probability that chosen is preferred
//                                (implicit_margins computes h with a policy and a reference model)
//   reward_priority(r_c, r_r)    pairs a reward model (or any scoring judge) barely separates:
//                                −|r_c − r_r|
//   spread_priority(scores)      prompts whose K sampled completions the judge scores most
//                                differently: max − min of the K scores (the pairs they give are
//                                the most informative, as in best-vs-worst pair building)
// Selection is deterministic: priorities sorted high to low, equal priorities in index order (a
// stable sort), so the same inputs always keep the same items. A NaN priority is an error naming
// the item. Written out here: a dozen lines over std::stable_sort, nothing a library would add.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/models/concepts.hpp"
#include "prefopt/train/batch.hpp"

namespace prefopt::loop {

// How many to keep: exactly one of top_n (> 0; all when there are fewer) or fraction (in (0, 1];
// ⌈fraction·n⌉ items).
struct selection {
  std::optional<std::size_t> top_n{};
  std::optional<double> fraction{};

  void validate() const {
    if (top_n.has_value() == fraction.has_value())
      throw config_error("selection", "give exactly one of 'top_n' and 'fraction'");
    if (top_n && *top_n == 0) throw config_error("selection: field 'top_n'", "must be > 0");
    if (fraction && !(*fraction > 0.0 && *fraction <= 1.0))
      throw config_error("selection: field 'fraction'", "must lie in (0, 1]");
  }
  std::size_t count(std::size_t n) const {
    validate();
    if (top_n) return std::min(*top_n, n);
    return std::min(n, std::size_t(std::ceil(*fraction * double(n) - 1e-9)));
  }
};

// Indices of the kept items, highest priority first (ties: lower index first).
inline std::vector<std::size_t> select_top(std::span<const double> priority, const selection& how) {
  const std::size_t keep = how.count(priority.size());
  for (std::size_t i = 0; i < priority.size(); ++i)
    if (std::isnan(priority[i])) throw data_error("active selection: item " + std::to_string(i), "priority is NaN");
  std::vector<std::size_t> idx(priority.size());
  std::iota(idx.begin(), idx.end(), std::size_t(0));
  std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return priority[a] > priority[b]; });
  idx.resize(keep);
  return idx;
}

inline double policy_priority(double margin, double beta) {
  if (!(beta > 0.0)) throw config_error("active selection: field 'beta'", "must be > 0");
  return -std::abs(1.0 / (1.0 + std::exp(-beta * margin)) - 0.5);
}
inline double reward_priority(double score_chosen, double score_rejected) { return -std::abs(score_chosen - score_rejected); }
inline double spread_priority(std::span<const double> scores) {
  if (scores.empty()) return 0.0;
  const auto [lo, hi] = std::minmax_element(scores.begin(), scores.end());
  return *hi - *lo;
}

// The rules over whole lists.
inline std::vector<double> policy_priorities(std::span<const double> margins, double beta) {
  std::vector<double> p;
  for (const double h : margins) p.push_back(policy_priority(h, beta));
  return p;
}
inline std::vector<double> reward_priorities(std::span<const double> chosen, std::span<const double> rejected) {
  if (chosen.size() != rejected.size())
    throw shape_error("active selection: scores", "one chosen and one rejected score per pair expected");
  std::vector<double> p;
  for (std::size_t i = 0; i < chosen.size(); ++i) p.push_back(reward_priority(chosen[i], rejected[i]));
  return p;
}
// scores: a scoring judge's answer (one list of K scores per prompt).
inline std::vector<double> spread_priorities(const std::vector<std::vector<double>>& scores) {
  std::vector<double> p;
  for (const auto& s : scores) p.push_back(spread_priority(s));
  return p;
}

// h per pair of a batch: (log π_θ − log π_ref)(chosen) − (log π_θ − log π_ref)(rejected), both
// models run forward without keeping activations.
template <models::PolicyModel M>
std::vector<double> implicit_margins(M& policy, M& reference, const train::preference_batch<typename M::input_type>& b) {
  models::forward_options opt;
  opt.keep_activations = false;
  models::sequence_logps p, r;
  policy.forward(b.sequences, p, opt);
  reference.forward(b.sequences, r, opt);
  const std::size_t n = b.pairs;
  if (p.size() != 2 * n || r.size() != 2 * n)
    throw shape_error("active selection: batch", "the models returned " + std::to_string(p.size()) + " and " +
                                                     std::to_string(r.size()) + " sequences for " + std::to_string(n) +
                                                     " pairs (expected chosen then rejected)");
  std::vector<double> h(n);
  for (std::size_t i = 0; i < n; ++i) h[i] = (p.logp[i] - r.logp[i]) - (p.logp[n + i] - r.logp[n + i]);
  return h;
}

} // namespace prefopt::loop
