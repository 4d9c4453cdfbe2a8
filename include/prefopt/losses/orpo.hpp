// prefopt/losses/orpo.hpp — Odds Ratio Preference Optimization (TRL ORPOTrainer).
//
//   L = NLL − β·mean_i log σ(lo_i),   lo = log(odds(y_w)/odds(y_l)),  odds(y) = P/(1−P)
// with P = exp(a), a = log π_θ(y|x)/n the per-token mean log-prob, so
//   lo = (a_w − a_l) − (log(1 − e^{a_w}) − log(1 − e^{a_l})).
// Hong et al., "ORPO: Monolithic Preference Optimization without Reference Model", EMNLP 2024,
// eq. 6–7. NLL as in sft.hpp (token mean over chosen completions). Reference-free; β = 0.1 (TRL's
// ORPOConfig default; the paper's λ). TRL's ORPOTrainer counts the prompt tokens in its NLL too;
// the pair batch carries completion log-probs only, so prefopt's NLL is the response's, as in the
// paper's L_SFT (the two agree when the prompt is one token). Metrics are TRL's (add_metrics).
// Gradients, written so that a_w → 0 stays finite:
//   d(−log σ(lo))/da_w = −σ(−lo)/(1 − e^{a_w}) = −1/(1 − 2e^{a_w} + e^{a_w − a_l})
//   d(−log σ(lo))/da_l =  σ(−lo)/(1 − e^{a_l}) = exp(log σ(−lo) − log(1 − e^{a_l}))
#pragma once

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

struct orpo {
  double beta = 0.1;

  static constexpr std::string_view name = "orpo";
  static constexpr bool reference_free = true;
  unsigned required_columns() const { return columns::token_counts; }
  void validate() const { detail::require_positive(name, "beta", beta); }

  template <class T> PREFOPT_HD pair_output<T> pair(const pair_input<T>& x) const {
    const T b = T(beta);
    const T aw = x.pc / x.nc, al = x.pr / x.nr;
    const T lo = (aw - al) - (num::log1mexp<T>(aw) - num::log1mexp<T>(al));
    const T d_aw = T(-1) / (T(1) - T(2) * num::exp<T>(aw) + num::exp<T>(aw - al));
    const T d_al = num::exp<T>(num::log_sigmoid<T>(-lo) - num::log1mexp<T>(al));
    const T nll_scale = x.batch.pairs / x.batch.chosen_tokens;
    return {-x.pc * nll_scale - b * num::log_sigmoid<T>(lo), b * d_aw / x.nc - nll_scale, b * d_al / x.nr};
  }

  // Metrics as TRL's ORPOTrainer reports them: rewards/* and logps/* on length-averaged
  // log-probs, nll_loss, log_odds_ratio = mean log σ(lo), log_odds_chosen = mean lo.
  template <class T> void add_metrics(const pair_batch<T>& b, std::map<std::string, double>& m) const {
    detail::add_length_averaged_metrics(b, beta, m);
    m["nll_loss"] = detail::chosen_nll(b);
    const std::size_t n = b.size();
    if (n == 0) return;
    double ratio = 0, odds = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const double aw = num::to_double(b.policy_chosen[i]) / b.chosen_tokens[i];
      const double al = num::to_double(b.policy_rejected[i]) / b.rejected_tokens[i];
      const double lo = (aw - al) - (num::log1mexp(aw) - num::log1mexp(al));
      ratio += num::log_sigmoid(lo);
      odds += lo;
    }
    m["log_odds_ratio"] = ratio / double(n);
    m["log_odds_chosen"] = odds / double(n);
  }
};

} // namespace prefopt::losses
