// prefopt/losses/discopop.hpp — DiscoPOP, the log-ratio modulated loss (TRL loss_type "discopop").
//
//   ℓ = −log σ(z)·(1 − m) + e^{−z}·m,   m = σ(z/τ),  z = β(s_w − s_l)
// Chan et al., "Discovering Preference Optimization Algorithms with and for Large Language
// Models", NeurIPS 2024, eq. 5; τ = 0.05 recommended. Evaluated as
//   ℓ = softplus(−z)·σ(−z/τ) + exp(−z + log σ(z/τ)),
// which is finite for every z (TRL's literal form gives inf·0 = NaN once e^{−z} overflows).
// dℓ/dz = −σ(−z)σ(−z/τ) − softplus(−z)·σ(z/τ)σ(−z/τ)/τ + E·(σ(−z/τ)/τ − 1),  E = e^{−z}·m.
#pragma once

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

struct discopop {
  double beta = 0.1;
  double tau = 0.05;

  static constexpr std::string_view name = "discopop";
  unsigned required_columns() const { return columns::reference; }
  void validate() const {
    detail::require_positive(name, "beta", beta);
    detail::require_positive(name, "tau", tau);
  }

  template <class T> PREFOPT_HD pair_output<T> scores(const T& sw, const T& sl, const pair_input<T>&) const {
    const T b = T(beta), t = T(tau);
    const T z = b * (sw - sl);
    const T m_hi = num::sigmoid<T>(z / t), m_lo = num::sigmoid<T>(-z / t);  // m and 1 − m
    const T sp = num::softplus<T>(-z);
    const T e = num::exp<T>(-z + num::log_sigmoid<T>(z / t));
    const T value = sp * m_lo + e;
    const T dz = -num::sigmoid<T>(-z) * m_lo - sp * m_hi * m_lo / t + e * (m_lo / t - T(1));
    return {value, b * dz, -b * dz};
  }
};

} // namespace prefopt::losses
