// prefopt/losses/simpo.hpp — SimPO: reference-free, length-normalized, with a target margin.
//
//   ℓ = −(1−ε)·log σ(z) − ε·log σ(−z),   z = β·(log π_θ(y_w)/n_w − log π_θ(y_l)/n_l) − γ
// Meng et al., "SimPO: Simple Preference Optimization with a Reference-Free Reward", NeurIPS
// 2024, eq. 6. TRL runs it as CPOTrainer's loss_type "simpo" (whose default also adds cpo_alpha·NLL;
// combine with sft for that). Defaults are TRL's CPOConfig ones (β = 0.1, γ = 0.5).
// dℓ/d log π_θ(y_w) = β·g/n_w,  dℓ/d log π_θ(y_l) = −β·g/n_l,  g = −(1−ε)σ(−z) + εσ(z).
#pragma once

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

struct simpo {
  double beta = 0.1;
  double gamma = 0.5;
  double label_smoothing = 0.0;

  static constexpr std::string_view name = "simpo";
  static constexpr bool reference_free = true;
  unsigned required_columns() const { return columns::token_counts; }
  void validate() const {
    detail::require_positive(name, "beta", beta);
    detail::require_range(name, "label_smoothing", label_smoothing, 0.0, 0.5, true);
  }

  template <class T> PREFOPT_HD pair_output<T> pair(const pair_input<T>& x) const {
    const T b = T(beta), e = T(label_smoothing);
    const T z = b * (x.pc / x.nc - x.pr / x.nr) - T(gamma);
    const T g = detail::smoothed_logistic_grad(z, e);
    return {detail::smoothed_logistic(z, e), b * g / x.nc, -b * g / x.nr};
  }

  // Metrics as TRL's CPOTrainer reports them for simpo: on length-averaged log-probs.
  template <class T> void add_metrics(const pair_batch<T>& b, std::map<std::string, double>& m) const {
    detail::add_length_averaged_metrics(b, beta, m);
  }
};

} // namespace prefopt::losses
