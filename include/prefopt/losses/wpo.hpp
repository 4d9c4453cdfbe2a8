// prefopt/losses/wpo.hpp — Weighted Preference Optimization (TRL use_weighting=True).
//
//   L = mean_i w_i·ℓ_i,   w_i = exp(ā_w,i + ā_l,i)  (detached)
// ā = (1/n)·Σ_t [log p_t − log Σ_v p_v²], the sequence's mean token log-prob "aligned" by the
// model's own sharpness. Zhou et al., "WPO: Enhancing RLHF with Weighted Preference
// Optimization", EMNLP 2024, eq. 2–3. The weights are data to the loss (TRL computes them under
// no_grad): the model produces ā per sequence, the trainer fills pair_batch::weight, and this
// wrapper multiplies each pair's loss and gradient by it. Pointwise losses only.
#pragma once

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

template <class Loss> struct weighted {
  static_assert(ElementwiseLoss<Loss>,
                "prefopt: weighted<Loss> (WPO) multiplies each pair's loss by its weight, which needs a loss "
                "whose pairs are independent (pointwise or score form); batch-coupled losses such as aot are "
                "not supported.");
  Loss base{};

  static constexpr std::string_view name = Loss::name;
  static constexpr bool reference_free = reference_free_v<Loss>;
  unsigned required_columns() const { return base.required_columns() | columns::weight; }
  void validate() const { base.validate(); }
  double reward_beta() const { return losses::reward_beta(base); }

  template <class T> PREFOPT_HD pair_output<T> pair(const pair_input<T>& x) const {
    const pair_output<T> o = detail::pair_of(base, x);
    return {o.value * x.weight, o.d_chosen * x.weight, o.d_rejected * x.weight};
  }
};

template <ElementwiseLoss Loss> weighted<Loss> wpo(Loss base) { return {base}; }

// The WPO weight of a pair from its two aligned mean log-probs (what the model reports).
template <class T> PREFOPT_HD T wpo_weight(const T& aligned_chosen, const T& aligned_rejected) {
  return num::exp<T>(aligned_chosen + aligned_rejected);
}

} // namespace prefopt::losses
