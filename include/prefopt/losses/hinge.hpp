// prefopt/losses/hinge.hpp — the hinge loss of SLiC (TRL loss_type "hinge").
//
//   ℓ = max(0, 1 − β·(s_w − s_l))
// Zhao et al., "SLiC-HF: Sequence Likelihood Calibration with Human Feedback", 2023, eq. 1 (with
// the reference-adjusted margin as TRL uses it). dℓ/ds_w = −β·[z < 1] = −dℓ/ds_l (0 at the kink,
// as torch.relu).
#pragma once

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

struct hinge {
  double beta = 0.1;

  static constexpr std::string_view name = "hinge";
  unsigned required_columns() const { return columns::reference; }
  void validate() const { detail::require_positive(name, "beta", beta); }

  template <class T> PREFOPT_HD pair_output<T> scores(const T& sw, const T& sl, const pair_input<T>&) const {
    const T b = T(beta);
    const T slack = T(1) - b * (sw - sl);
    if (slack > T(0)) return {slack, -b, b};
    return {T(0), T(0), T(0)};
  }
};

} // namespace prefopt::losses
