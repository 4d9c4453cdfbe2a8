// prefopt/losses/bco_pair.hpp — Binary Classifier Optimization, pairwise (TRL loss_type "bco_pair").
//
//   ℓ = −log σ(r_w) − log σ(−r_l),   r = β·(log π_θ − log π_ref)
// Jung et al., "Binary Classifier Optimization for Large Language Model Alignment", 2024. The
// paper shifts rewards by a running mean δ; TRL (≥ 1.0) uses δ = 0, and so does this loss.
// dℓ/dr_w = −σ(−r_w),  dℓ/dr_l = σ(r_l).
#pragma once

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

struct bco_pair {
  double beta = 0.1;

  static constexpr std::string_view name = "bco_pair";
  unsigned required_columns() const { return columns::reference; }
  void validate() const { detail::require_positive(name, "beta", beta); }

  template <class T> PREFOPT_HD pair_output<T> pair(const pair_input<T>& x) const {
    const T b = T(beta);
    const T rw = b * (x.pc - x.rc), rl = b * (x.pr - x.rr);
    return {-num::log_sigmoid<T>(rw) - num::log_sigmoid<T>(-rl), -b * num::sigmoid<T>(-rw), b * num::sigmoid<T>(rl)};
  }
};

} // namespace prefopt::losses
