// prefopt/losses/sppo_hard.hpp — Self-Play Preference Optimization, hard labels (TRL "sppo_hard").
//
//   ℓ = (a − 1/(2β))² + (b + 1/(2β))²,   a = log π_θ(y_w)/π_ref(y_w),  b = log π_θ(y_l)/π_ref(y_l)
// Wu et al., "Self-Play Preference Optimization for Language Model Alignment", 2024, eq. 4.7 with
// P(y_w ≻ π) = 1 and P(y_l ≻ π) = 0. dℓ/da = 2(a − 1/(2β)),  dℓ/db = 2(b + 1/(2β)).
#pragma once

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

struct sppo_hard {
  double beta = 0.1;

  static constexpr std::string_view name = "sppo_hard";
  unsigned required_columns() const { return columns::reference; }
  void validate() const { detail::require_positive(name, "beta", beta); }

  template <class T> PREFOPT_HD pair_output<T> pair(const pair_input<T>& x) const {
    const T half = T(0.5) / T(beta);
    const T a = x.pc - x.rc - half, b = x.pr - x.rr + half;
    return {a * a + b * b, T(2) * a, T(2) * b};
  }
};

} // namespace prefopt::losses
