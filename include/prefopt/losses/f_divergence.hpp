// prefopt/losses/f_divergence.hpp — f-DPO: an f-divergence in place of the reverse KL.
//
// Wang et al., "Beyond Reverse KL: Generalizing Direct Preference Optimization with Diverse
// Divergence Constraints", ICLR 2024. With u = π_θ/π_ref (log u = the log-ratio), a score loss
// is evaluated on s = f'(u) instead of s = log u (TRL's f_divergence_type):
//   reverse_kl  s = log u                                  (standard DPO)
//   forward_kl  s = 1 − u^{-1}                             ds/dlog u = u^{-1}
//   js          s = log 2 + log σ(log u)                    ds/dlog u = σ(−log u)
//   alpha       s = (u^{α−1} − 1)/(α − 1)  (α = 1 → log u)  ds/dlog u = u^{α−1}
// As TRL does for alpha, the exponent is capped at 80 so the score stays finite (its gradient is
// zero past the cap); prefopt applies the same cap to forward_kl. In float, e^80 is finite but its
// square is not, so IPO on such scores overflowed (TRL gives inf there too, and NaN gradients);
// prefopt also holds an exponential score within ±2^60 in float (±2^500 in double, which the
// capped exponent never reaches), again with zero gradient past the limit, so every score loss
// stays finite in value and gradient. Where TRL is finite, prefopt differs from it only once the
// exponent passes 41.6 + ln|α−1| in float (forward_kl: −log u past 41.6 in float, 80 in double).
// Applies to ScoreLoss types only (sigmoid, sigmoid_norm, hinge, ipo, exo_pair, robust, discopop,
// probabilistic); TRL rejects the others too.
#pragma once

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

enum class divergence { reverse_kl, forward_kl, js, alpha };

template <class Loss> struct f_divergence {
  static_assert(ScoreLoss<Loss>,
                "prefopt: f_divergence<Loss> needs a loss written on the chosen/rejected scores (a ScoreLoss: "
                "sigmoid, sigmoid_norm, hinge, ipo, exo_pair, robust, discopop, probabilistic). This loss uses "
                "the log-ratios directly and has no f-divergence generalization.");
  Loss base{};
  divergence kind = divergence::reverse_kl;
  double alpha = 0.5;  // TRL: f_alpha_divergence_coef

  static constexpr std::string_view name = Loss::name;
  static constexpr bool reference_free = reference_free_v<Loss>;
  unsigned required_columns() const { return base.required_columns(); }
  void validate() const {
    base.validate();
    if (kind == divergence::alpha && !(alpha == alpha && alpha > -1e300 && alpha < 1e300))
      detail::bad_hyperparameter(name, "alpha", alpha, "must be finite");
  }
  double reward_beta() const { return losses::reward_beta(base); }

  // The largest |s| an exponential score may take in T (see above).
  template <class T> PREFOPT_HD static constexpr double score_limit() {
    return num::detail::is_float<T> ? 0x1p60 : 0x1p500;
  }
  template <class T> PREFOPT_HD static void hold(T& s, T& ds) {
    const T lim = T(score_limit<T>());
    if (s > lim || s < T(-score_limit<T>())) {
      s = s > lim ? lim : T(-score_limit<T>());
      ds = T(0);
    }
  }

  // s = f'(u) and ds/d log u for log-ratio r = log u.
  template <class T> PREFOPT_HD void score(const T& r, T& s, T& ds) const {
    constexpr double cap = 80.0;
    switch (kind) {
    case divergence::forward_kl: {
      const T t = -r;
      const T e = num::exp<T>(t < T(cap) ? t : T(cap));
      s = T(1) - e;
      ds = t < T(cap) ? e : T(0);
      hold(s, ds);
      return;
    }
    case divergence::js:
      s = T(0.693147180559945309417232121458176568) + num::log_sigmoid<T>(r);
      ds = num::sigmoid<T>(-r);
      return;
    case divergence::alpha:
      if (!(alpha - 1.0 < 1e-6 && alpha - 1.0 > -1e-6)) {
        const T a1 = T(alpha - 1.0);
        const T t = a1 * r;
        const T e = num::exp<T>(t < T(cap) ? t : T(cap));
        s = (e - T(1)) / a1;
        ds = t < T(cap) ? e : T(0);
        hold(s, ds);
        return;
      }
      [[fallthrough]];
    default:
      s = r;
      ds = T(1);
    }
  }

  template <class T> PREFOPT_HD pair_output<T> pair(const pair_input<T>& x) const {
    T sw, dw, sl, dl;
    score(T(x.pc - x.rc), sw, dw);
    score(T(x.pr - x.rr), sl, dl);
    const pair_output<T> o = base.scores(sw, sl, x);
    return {o.value, o.d_chosen * dw, o.d_rejected * dl};
  }
};

// with_divergence(sigmoid{.beta = 0.1}, divergence::js) — the same as f_divergence<sigmoid>{...}.
template <ScoreLoss Loss> f_divergence<Loss> with_divergence(Loss base, divergence kind, double alpha = 0.5) {
  return {base, kind, alpha};
}

} // namespace prefopt::losses
