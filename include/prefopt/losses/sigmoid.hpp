// prefopt/losses/sigmoid.hpp — DPO's logistic loss (TRL loss_type "sigmoid").
//
//   ℓ = −log σ(β·(s_w − s_l)),   s = log π_θ(y|x) − log π_ref(y|x)
// Rafailov et al., "Direct Preference Optimization: Your Language Model is Secretly a Reward
// Model", NeurIPS 2023, eq. 7.   dℓ/ds_w = −β·σ(−z) = −dℓ/ds_l,  z = β·(s_w − s_l).
#pragma once

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

struct sigmoid {
  double beta = 0.1;

  static constexpr std::string_view name = "sigmoid";
  unsigned required_columns() const { return columns::reference; }
  void validate() const { detail::require_positive(name, "beta", beta); }

  template <class T> PREFOPT_HD pair_output<T> scores(const T& sw, const T& sl, const pair_input<T>&) const {
    const T b = T(beta);
    const T z = b * (sw - sl);
    const T g = -b * num::sigmoid<T>(-z);
    return {-num::log_sigmoid<T>(z), g, -g};
  }
};

} // namespace prefopt::losses
