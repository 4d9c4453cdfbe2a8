// prefopt/losses/aot_unpaired.hpp — Alignment via Optimal Transport, unpaired (TRL "aot_unpaired").
//
// Sort, across the batch, the chosen log-ratios a_i = log π_θ(y_w,i)/π_ref(y_w,i) and, separately,
// the rejected ones b_i; pair them by rank: δ_k = a_(k) − b_(k). Then
//   ℓ_k = −(1−ε)·log σ(βδ_k) − ε·log σ(−βδ_k)
// Melnyk et al., NeurIPS 2024 (unpaired form: the chosen and rejected reward distributions are
// compared, not the pairs). ℓ_k's gradient goes to the chosen response of rank k and the rejected
// response of rank k; prefopt reports ℓ_k under the pair of that chosen response. Ties are broken
// by pair index.
#pragma once

#include "prefopt/losses/aot.hpp"

namespace prefopt::losses {

struct aot_unpaired {
  double beta = 0.1;
  double label_smoothing = 0.0;

  static constexpr std::string_view name = "aot_unpaired";
  unsigned required_columns() const { return columns::reference; }
  void validate() const {
    detail::require_positive(name, "beta", beta);
    detail::require_range(name, "label_smoothing", label_smoothing, 0.0, 0.5, true);
  }

  template <class T>
  void batch(const pair_batch<T>& b, const batch_context<T>&, std::span<T> per_pair, std::span<T> d_chosen,
             std::span<T> d_rejected) const {
    const std::size_t n = b.size();
    const auto cw = detail::ranks(n, [&](std::size_t i) { return b.policy_chosen[i] - b.reference_chosen[i]; });
    const auto cl = detail::ranks(n, [&](std::size_t i) { return b.policy_rejected[i] - b.reference_rejected[i]; });
    const T be = T(beta), e = T(label_smoothing);
    for (std::size_t k = 0; k < n; ++k) {
      const std::size_t i = cw[k], j = cl[k];
      const T z = be * ((b.policy_chosen[i] - b.reference_chosen[i]) - (b.policy_rejected[j] - b.reference_rejected[j]));
      const T g = be * detail::smoothed_logistic_grad(z, e);
      per_pair[i] = detail::smoothed_logistic(z, e);
      d_chosen[i] = g;
      d_rejected[j] = -g;
    }
  }
};

} // namespace prefopt::losses
