// prefopt/models/sampling.hpp — next-token logits processors with Hugging Face's semantics.
//
// Each function rewrites one row of next-token scores z [V] in place (double; a removed token
// gets −∞), as transformers' logits processors do; generate() applies them in transformers'
// order: repetition penalty (a processor, also when greedy), then — when sampling — temperature,
// top-k, top-p, min-p (the warpers), then draws from softmax(z) (or takes argmax z when greedy).
//   repetition_penalty(z, ids, θ)  RepetitionPenaltyLogitsProcessor: for every distinct id seen
//                                  (prompt and continuation so far), z < 0 → z·θ, else z/θ
//   temperature(z, τ)              z / τ
//   top_k(z, k)                    TopKLogitsWarper: keep z ≥ the k-th largest (ties kept)
//   top_p(z, p)                    TopPLogitsWarper: sort ascending, remove the tokens whose
//                                  cumulative probability is ≤ 1 − p; the most likely always stays
//   min_p(z, p)                    MinPLogitsWarper: remove tokens with prob < p · max prob
// Written out here because the library has no tensor framework of its own to borrow them from;
// the tests check each against hand-computed values from transformers' definitions.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <vector>

#include "prefopt/models/detail/random.hpp"

namespace prefopt::models::sampling {

inline constexpr double removed = -std::numeric_limits<double>::infinity();

// softmax(z) in double, −∞ entries getting probability 0.
inline std::vector<double> softmax(std::span<const double> z) {
  const double top = *std::max_element(z.begin(), z.end());
  std::vector<double> p(z.size());
  double sum = 0.0;
  for (std::size_t v = 0; v < z.size(); ++v) sum += (p[v] = z[v] == removed ? 0.0 : std::exp(z[v] - top));
  for (auto& x : p) x /= sum;
  return p;
}

inline void repetition_penalty(std::span<double> z, std::span<const std::int32_t> ids, double penalty) {
  if (penalty == 1.0) return;
  std::vector<char> seen(z.size(), 0);
  for (auto id : ids) {
    if (id < 0 || std::size_t(id) >= z.size() || seen[std::size_t(id)]) continue;
    seen[std::size_t(id)] = 1;
    double& s = z[std::size_t(id)];
    s = s < 0.0 ? s * penalty : s / penalty;
  }
}

inline void temperature(std::span<double> z, double tau) {
  for (auto& x : z) x /= tau;
}

inline void top_k(std::span<double> z, int k) {
  if (k <= 0 || std::size_t(k) >= z.size()) return;
  std::vector<double> sorted(z.begin(), z.end());
  std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<>());
  const double kth = sorted[std::size_t(k - 1)];
  for (auto& x : z)
    if (x < kth) x = removed;
}

inline void top_p(std::span<double> z, double p) {
  if (p >= 1.0) return;
  std::vector<std::size_t> order(z.size());
  std::iota(order.begin(), order.end(), std::size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return z[a] < z[b]; });  // ascending
  const std::vector<double> prob = softmax(z);
  double cum = 0.0;
  for (std::size_t r = 0; r + 1 < order.size(); ++r) {  // the last (most likely) always stays
    cum += prob[order[r]];
    if (cum <= 1.0 - p) z[order[r]] = removed;
  }
}

inline void min_p(std::span<double> z, double p) {
  if (p <= 0.0) return;
  const std::vector<double> prob = softmax(z);
  const std::size_t best = std::size_t(std::max_element(z.begin(), z.end()) - z.begin());
  const double floor = p * prob[best];
  for (std::size_t v = 0; v < z.size(); ++v)
    if (v != best && prob[v] < floor) z[v] = removed;
}

// The argmax (lowest id on ties).
inline int argmax(std::span<const double> z) { return int(std::max_element(z.begin(), z.end()) - z.begin()); }

// A draw from softmax(z) with one uniform01 of the engine: the first v whose cumulative weight
// exceeds u·Σ (the last positive one if rounding leaves u·Σ past the total).
inline int draw(std::span<const double> z, std::mt19937_64& rng) {
  const double top = *std::max_element(z.begin(), z.end());
  std::vector<double> w(z.size());
  double total = 0.0;
  for (std::size_t v = 0; v < z.size(); ++v) total += (w[v] = z[v] == removed ? 0.0 : std::exp(z[v] - top));
  const double u = detail::uniform01(rng) * total;
  double acc = 0.0;
  int last_positive = argmax(z);
  for (std::size_t v = 0; v < w.size(); ++v) {
    if (w[v] <= 0.0) continue;
    acc += w[v];
    last_positive = int(v);
    if (u < acc) return int(v);
  }
  return last_positive;
}

} // namespace prefopt::models::sampling
