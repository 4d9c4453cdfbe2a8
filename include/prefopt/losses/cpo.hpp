// prefopt/losses/cpo.hpp — Contrastive Preference Optimization (TRL CPOTrainer, loss_type "sigmoid").
//
//   L = mean_i [−(1−ε)·log σ(z_i) − ε·log σ(−z_i)] + α·NLL,   z = β·(log π_θ(y_w) − log π_θ(y_l))
// NLL = −Σ log π_θ(y_w) / Σ n_w, the chosen tokens' mean negative log-likelihood (see sft.hpp for
// how a pair's share is defined). Xu et al., "Contrastive Preference Optimization: Pushing the
// Boundaries of LLM Performance in Machine Translation", ICML 2024, eq. 3–5. Reference-free.
// Defaults are TRL's CPOConfig ones (β = 0.1, cpo_alpha = 1).
#pragma once

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

struct cpo {
  double beta = 0.1;
  double alpha = 1.0;          // weight of the NLL term (TRL: cpo_alpha)
  double label_smoothing = 0.0;

  static constexpr std::string_view name = "cpo";
  static constexpr bool reference_free = true;
  unsigned required_columns() const { return columns::token_counts; }
  void validate() const {
    detail::require_positive(name, "beta", beta);
    detail::require_nonnegative(name, "alpha", alpha);
    detail::require_range(name, "label_smoothing", label_smoothing, 0.0, 0.5, true);
  }

  template <class T> PREFOPT_HD pair_output<T> pair(const pair_input<T>& x) const {
    const T b = T(beta), e = T(label_smoothing);
    const T z = b * (x.pc - x.pr);
    const T g = b * detail::smoothed_logistic_grad(z, e);
    const T nll_scale = T(alpha) * x.batch.pairs / x.batch.chosen_tokens;
    return {detail::smoothed_logistic(z, e) - x.pc * nll_scale, g - nll_scale, -g};
  }

  // TRL's CPOTrainer also reports nll_loss, the NLL term before the cpo_alpha weight.
  template <class T> void add_metrics(const pair_batch<T>& b, std::map<std::string, double>& m) const {
    m["nll_loss"] = detail::chosen_nll(b);
  }
};

} // namespace prefopt::losses
