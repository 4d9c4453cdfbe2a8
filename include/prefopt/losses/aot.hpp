// prefopt/losses/aot.hpp — Alignment via Optimal Transport, paired (TRL loss_type "aot").
//
// Sort, across the batch, the policy log-ratios ρ_i = log π_θ(y_w,i) − log π_θ(y_l,i) and,
// separately, the reference ones ρ^ref_i; pair them by rank: δ_k = ρ_(k) − ρ^ref_(k). Then
//   ℓ_k = −(1−ε)·log σ(βδ_k) − ε·log σ(−βδ_k)
// Melnyk et al., "Distributional Preference Alignment of LLMs via Optimal Transport", NeurIPS 2024
// (the sorted, one-dimensional optimal-transport form of first-order stochastic dominance).
// The loss couples the batch: ℓ_k's gradient goes to the pair whose policy log-ratio has rank k,
// which is also the pair prefopt reports ℓ_k under. Ties are broken by pair index.
#pragma once

#include <algorithm>
#include <numeric>
#include <span>
#include <vector>

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

namespace detail {
// Indices of v in ascending order (stable: ties keep pair order).
template <class Get> std::vector<std::size_t> ranks(std::size_t n, Get value) {
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return value(a) < value(b); });
  return order;
}
} // namespace detail

struct aot {
  double beta = 0.1;
  double label_smoothing = 0.0;

  static constexpr std::string_view name = "aot";
  unsigned required_columns() const { return columns::reference; }
  void validate() const {
    detail::require_positive(name, "beta", beta);
    detail::require_range(name, "label_smoothing", label_smoothing, 0.0, 0.5, true);
  }

  template <class T>
  void batch(const pair_batch<T>& b, const batch_context<T>&, std::span<T> per_pair, std::span<T> d_chosen,
             std::span<T> d_rejected) const {
    const std::size_t n = b.size();
    const auto pol = detail::ranks(n, [&](std::size_t i) { return b.policy_chosen[i] - b.policy_rejected[i]; });
    const auto ref = detail::ranks(n, [&](std::size_t i) { return b.reference_chosen[i] - b.reference_rejected[i]; });
    const T be = T(beta), e = T(label_smoothing);
    for (std::size_t k = 0; k < n; ++k) {
      const std::size_t i = pol[k], j = ref[k];
      const T z = be * ((b.policy_chosen[i] - b.policy_rejected[i]) - (b.reference_chosen[j] - b.reference_rejected[j]));
      const T g = be * detail::smoothed_logistic_grad(z, e);
      per_pair[i] = detail::smoothed_logistic(z, e);
      d_chosen[i] = g;
      d_rejected[i] = -g;
    }
  }
};

} // namespace prefopt::losses
