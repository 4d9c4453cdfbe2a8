// prefopt/losses/sigmoid_norm.hpp — DPO on length-normalized scores (TRL loss_type "sigmoid_norm").
//
//   ℓ = −log σ(β·(s_w/n_w − s_l/n_l)),   n = completion token count
// The per-token log-ratio variant of DPO (cf. length-normalized DPO in Meng et al., "SimPO", 2024,
// sec. 2). dℓ/ds_w = −β·σ(−z)/n_w,  dℓ/ds_l = β·σ(−z)/n_l.
#pragma once

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

struct sigmoid_norm {
  double beta = 0.1;

  static constexpr std::string_view name = "sigmoid_norm";
  unsigned required_columns() const { return columns::reference | columns::token_counts; }
  void validate() const { detail::require_positive(name, "beta", beta); }

  template <class T> PREFOPT_HD pair_output<T> scores(const T& sw, const T& sl, const pair_input<T>& x) const {
    const T b = T(beta);
    const T z = b * (sw / x.nc - sl / x.nr);
    const T g = -b * num::sigmoid<T>(-z);
    return {-num::log_sigmoid<T>(z), g / x.nc, -g / x.nr};
  }
};

} // namespace prefopt::losses
