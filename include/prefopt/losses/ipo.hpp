// prefopt/losses/ipo.hpp — Identity Preference Optimisation (TRL loss_type "ipo").
//
//   ℓ = (h − 1/(2β))²,   h = s_w/n_w − s_l/n_l  (normalize_by_length, TRL's default)
//                        h = s_w − s_l          (normalize_by_length = false: the paper's form)
// Azar et al., "A General Theoretical Paradigm to Understand Learning from Human Preferences",
// AISTATS 2024, eq. 17 (β is the paper's τ). The minimum is at h = 1/(2β).
// dℓ/ds_w = 2(h − 1/(2β))/n_w,  dℓ/ds_l = −2(h − 1/(2β))/n_l.
#pragma once

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

struct ipo {
  double beta = 0.1;
  bool normalize_by_length = true;

  static constexpr std::string_view name = "ipo";
  unsigned required_columns() const {
    return columns::reference | (normalize_by_length ? columns::token_counts : columns::none);
  }
  void validate() const { detail::require_positive(name, "beta", beta); }

  template <class T> PREFOPT_HD pair_output<T> scores(const T& sw, const T& sl, const pair_input<T>& x) const {
    const T nw = normalize_by_length ? x.nc : T(1);
    const T nl = normalize_by_length ? x.nr : T(1);
    const T target = T(0.5 / beta);  // 1/(2β), formed in double as TRL does
    const T r = sw / nw - sl / nl - target;
    return {r * r, T(2) * r / nw, -T(2) * r / nl};
  }
};

} // namespace prefopt::losses
