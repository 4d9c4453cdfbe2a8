// prefopt/losses/probabilistic.hpp — DPO with soft preference labels.
//
//   ℓ = −(p·log σ(z) + (1−p)·log σ(−z)),   z = β(s_w − s_l),  s = log π_θ − log π_ref
// p = P(y_w ≻ y_l) comes from `source`:
//   constant:  p = 1 − label_smoothing — conservative DPO (cDPO; Mitchell, "A note on DPO with
//              noisy preferences", 2023; TRL's sigmoid with label_smoothing);
//   column:    p = the batch's per-pair preference_prob (e.g. an annotator agreement rate);
//   scores:    p = σ((score_w − score_l)/score_temperature), the Bradley–Terry probability of
//              per-pair reward scores (distilled / soft-label DPO).
// p = 1 is DPO. dℓ/dz = −p·σ(−z) + (1−p)·σ(z).
#pragma once

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

enum class label_source { constant, column, scores };

struct probabilistic {
  double beta = 0.1;
  double label_smoothing = 0.0;
  label_source source = label_source::constant;
  double score_temperature = 1.0;

  static constexpr std::string_view name = "probabilistic";
  unsigned required_columns() const {
    return columns::reference | (source == label_source::column   ? columns::preference_prob
                                 : source == label_source::scores ? columns::scores
                                                                  : columns::none);
  }
  void validate() const {
    detail::require_positive(name, "beta", beta);
    detail::require_range(name, "label_smoothing", label_smoothing, 0.0, 1.0, false);
    detail::require_positive(name, "score_temperature", score_temperature);
  }

  template <class T> PREFOPT_HD T probability(const pair_input<T>& x) const {
    switch (source) {
    case label_source::column: return x.preference_prob;
    case label_source::scores: return num::sigmoid<T>((x.score_chosen - x.score_rejected) / T(score_temperature));
    default: return T(1) - T(label_smoothing);
    }
  }

  template <class T> PREFOPT_HD pair_output<T> scores(const T& sw, const T& sl, const pair_input<T>& x) const {
    const T b = T(beta), p = probability(x);
    const T z = b * (sw - sl);
    const T value = -(p * num::log_sigmoid<T>(z) + (T(1) - p) * num::log_sigmoid<T>(-z));
    const T dz = -p * num::sigmoid<T>(-z) + (T(1) - p) * num::sigmoid<T>(z);
    return {value, b * dz, -b * dz};
  }
};

} // namespace prefopt::losses
