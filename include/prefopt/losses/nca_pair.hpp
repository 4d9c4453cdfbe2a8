// prefopt/losses/nca_pair.hpp — Noise Contrastive Alignment, pairwise (TRL loss_type "nca_pair").
//
//   ℓ = −log σ(r_w) − ½·log σ(−r_w) − ½·log σ(−r_l),   r = β·(log π_θ − log π_ref)
// Chen et al., "Noise Contrastive Alignment of Language Models with Explicit Rewards", 2024.
// dℓ/dr_w = −σ(−r_w) + ½σ(r_w),  dℓ/dr_l = ½σ(r_l). Not a function of the margin alone.
#pragma once

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

struct nca_pair {
  double beta = 0.1;

  static constexpr std::string_view name = "nca_pair";
  unsigned required_columns() const { return columns::reference; }
  void validate() const { detail::require_positive(name, "beta", beta); }

  template <class T> PREFOPT_HD pair_output<T> pair(const pair_input<T>& x) const {
    const T b = T(beta);
    const T rw = b * (x.pc - x.rc), rl = b * (x.pr - x.rr);
    const T value = -num::log_sigmoid<T>(rw) - T(0.5) * num::log_sigmoid<T>(-rw) - T(0.5) * num::log_sigmoid<T>(-rl);
    const T dw = -num::sigmoid<T>(-rw) + T(0.5) * num::sigmoid<T>(rw);
    const T dl = T(0.5) * num::sigmoid<T>(rl);
    return {value, b * dw, b * dl};
  }
};

} // namespace prefopt::losses
