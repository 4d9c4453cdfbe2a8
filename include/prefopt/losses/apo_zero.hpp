// prefopt/losses/apo_zero.hpp — Anchored Preference Optimization, "zero" anchor (TRL "apo_zero").
//
//   ℓ = 1 − σ(r_w) + σ(r_l),   r = β·(log π_θ − log π_ref)
// D'Oosterlinck et al., "Anchored Preference Optimization and Contrastive Revisions", 2024, eq. 7:
// for chosen answers better than the model's own. dℓ/dr_w = −σ'(r_w), dℓ/dr_l = σ'(r_l),
// σ'(r) = σ(r)σ(−r).
#pragma once

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

struct apo_zero {
  double beta = 0.1;

  static constexpr std::string_view name = "apo_zero";
  unsigned required_columns() const { return columns::reference; }
  void validate() const { detail::require_positive(name, "beta", beta); }

  template <class T> PREFOPT_HD pair_output<T> pair(const pair_input<T>& x) const {
    const T b = T(beta);
    const T rw = b * (x.pc - x.rc), rl = b * (x.pr - x.rr);
    const T sw = num::sigmoid<T>(rw), sl = num::sigmoid<T>(rl);
    return {T(1) - sw + sl, -b * sw * num::sigmoid<T>(-rw), b * sl * num::sigmoid<T>(-rl)};
  }
};

} // namespace prefopt::losses
