// prefopt/losses/robust.hpp — Robust DPO, unbiased under label noise (TRL loss_type "robust").
//
//   ℓ = [−(1−ε)·log σ(z) + ε·log σ(−z)] / (1 − 2ε),   z = β(s_w − s_l)
// Chowdhury et al., "Provably Robust DPO: Aligning Language Models with Noisy Feedback", ICML
// 2024, eq. 8; ε is the label flip rate, in [0, 0.5). ε = 0 is DPO.
// dℓ/dz = [−(1−ε)·σ(−z) − ε·σ(z)] / (1 − 2ε).
#pragma once

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

struct robust {
  double beta = 0.1;
  double label_smoothing = 0.0;

  static constexpr std::string_view name = "robust";
  unsigned required_columns() const { return columns::reference; }
  void validate() const {
    detail::require_positive(name, "beta", beta);
    detail::require_range(name, "label_smoothing", label_smoothing, 0.0, 0.5, true);
  }

  template <class T> PREFOPT_HD pair_output<T> scores(const T& sw, const T& sl, const pair_input<T>&) const {
    const T b = T(beta), e = T(label_smoothing), d = T(1) - T(2) * e;
    const T z = b * (sw - sl);
    const T value = (-(T(1) - e) * num::log_sigmoid<T>(z) + e * num::log_sigmoid<T>(-z)) / d;
    const T dz = (-(T(1) - e) * num::sigmoid<T>(-z) - e * num::sigmoid<T>(z)) / d;
    return {value, b * dz, -b * dz};
  }
};

} // namespace prefopt::losses
