// prefopt/losses/apo_down.hpp — Anchored Preference Optimization, "down" anchor (TRL "apo_down").
//
//   ℓ = σ(r_w) + 1 − σ(r_w − r_l),   r = β·(log π_θ − log π_ref)
// D'Oosterlinck et al., 2024, eq. 8: for chosen answers worse than the model's own — push both
// down, the rejected more. With σ'(u) = σ(u)σ(−u): dℓ/dr_w = σ'(r_w) − σ'(r_w − r_l),
// dℓ/dr_l = σ'(r_w − r_l).
#pragma once

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

struct apo_down {
  double beta = 0.1;

  static constexpr std::string_view name = "apo_down";
  unsigned required_columns() const { return columns::reference; }
  void validate() const { detail::require_positive(name, "beta", beta); }

  template <class T> PREFOPT_HD pair_output<T> pair(const pair_input<T>& x) const {
    const T b = T(beta);
    const T rw = b * (x.pc - x.rc), rl = b * (x.pr - x.rr);
    const T m = rw - rl;
    const T dw = num::sigmoid<T>(rw) * num::sigmoid<T>(-rw), dm = num::sigmoid<T>(m) * num::sigmoid<T>(-m);
    return {num::sigmoid<T>(rw) + T(1) - num::sigmoid<T>(m), b * (dw - dm), b * dm};
  }
};

} // namespace prefopt::losses
