// prefopt/losses/sft.hpp — negative log-likelihood of the chosen completions (TRL loss_type "sft").
//
//   L = −Σ_i log π_θ(y_w,i | x_i) / Σ_i n_w,i      (mean over all chosen tokens of the batch)
// As TRL computes it: a token mean, not a mean of per-sequence means. Pair i contributes
// ℓ_i = −log π_θ(y_w,i)·P/N (P pairs, N chosen tokens in the whole batch, from batch_context),
// so the mean over pairs is L exactly, also across gradient-accumulation micro-batches.
// TRL reports the batch scalar L for every pair; prefopt reports each pair's share.
// dℓ_i/d log π_θ(y_w,i) = −P/N; the rejected completion does not enter. sft has no β, so its
// rewards/* metrics use β = 1 (TRL scales them by DPOConfig.beta; in a mixture, the first term
// with a β sets it).
#pragma once

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

struct sft {
  static constexpr std::string_view name = "sft";
  static constexpr bool reference_free = true;
  unsigned required_columns() const { return columns::token_counts; }
  void validate() const {}

  template <class T> PREFOPT_HD pair_output<T> pair(const pair_input<T>& x) const {
    const T scale = x.batch.pairs / x.batch.chosen_tokens;
    return {-x.pc * scale, -scale, T(0)};
  }
};

} // namespace prefopt::losses
