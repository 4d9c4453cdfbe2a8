// prefopt/losses/exo_pair.hpp — EXO, pairwise form (TRL loss_type "exo_pair").
//
//   ℓ = q_w·(log q_w − log(1−ε)) + q_l·(log q_l − log ε),  q_w = σ(z), q_l = σ(−z), z = β(s_w − s_l)
// i.e. KL(p_θ ‖ p_ε) between the model's and the ε-smoothed label distribution over {w, l}.
// Ji et al., "Towards Efficient Exact Optimization of Language Model Alignment", ICML 2024,
// eq. 16. dℓ/dz = q_w·q_l·(z − log((1−ε)/ε)). ε must lie in (0, 1); the paper recommends 1e-3
// (TRL's label_smoothing = 0 would make the loss infinite).
#pragma once

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

struct exo_pair {
  double beta = 0.1;
  double label_smoothing = 1e-3;

  static constexpr std::string_view name = "exo_pair";
  unsigned required_columns() const { return columns::reference; }
  void validate() const {
    detail::require_positive(name, "beta", beta);
    if (!(label_smoothing > 0.0 && label_smoothing < 1.0))
      detail::bad_hyperparameter(name, "label_smoothing", label_smoothing, "must lie in (0, 1)");
  }

  template <class T> PREFOPT_HD pair_output<T> scores(const T& sw, const T& sl, const pair_input<T>&) const {
    const T b = T(beta);
    const T z = b * (sw - sl);
    const T log_qw = num::log_sigmoid<T>(z), log_ql = num::log_sigmoid<T>(-z);
    const T qw = num::sigmoid<T>(z), ql = num::sigmoid<T>(-z);
    const T log_pw = num::log1p<T>(T(-label_smoothing)), log_pl = num::log<T>(T(label_smoothing));
    const T value = qw * (log_qw - log_pw) + ql * (log_ql - log_pl);
    const T dz = qw * ql * (z - (log_pw - log_pl));
    return {value, b * dz, -b * dz};
  }
};

} // namespace prefopt::losses
