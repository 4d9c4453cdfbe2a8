// prefopt/losses/common.hpp — what every loss header includes: the batch types, the concepts,
// stable scalar functions and the hyperparameter checks that raise config_error.
#pragma once

#include <boost/hana/at.hpp>
#include <boost/hana/length.hpp>
#include <cstddef>
#include <utility>
#include <map>
#include <string>
#include <string_view>

#include "prefopt/core/error.hpp"
#include "prefopt/core/numerics.hpp"
#include "prefopt/losses/batch.hpp"
#include "prefopt/losses/concepts.hpp"

namespace prefopt::losses::detail {

[[noreturn]] inline void bad_hyperparameter(std::string_view loss, std::string_view field, double value,
                                            std::string_view rule) {
  throw config_error("loss '" + std::string(loss) + "': field '" + std::string(field) + "'",
                     "value " + std::to_string(value) + " " + std::string(rule));
}

inline void require_positive(std::string_view loss, std::string_view field, double v) {
  if (!(v > 0.0)) bad_hyperparameter(loss, field, v, "must be > 0");
}
inline void require_nonnegative(std::string_view loss, std::string_view field, double v) {
  if (!(v >= 0.0)) bad_hyperparameter(loss, field, v, "must be >= 0");
}
// lo <= v < hi (hi_open) or lo <= v <= hi.
inline void require_range(std::string_view loss, std::string_view field, double v, double lo, double hi,
                          bool hi_open) {
  const bool ok = v >= lo && (hi_open ? v < hi : v <= hi);
  if (!ok)
    bad_hyperparameter(loss, field, v,
                       "must lie in [" + std::to_string(lo) + ", " + std::to_string(hi) + (hi_open ? ")" : "]"));
}

// d/dz of −(1−ε)·log σ(z) − ε·log σ(−z): the label-smoothed logistic loss shared by several losses.
template <class T> PREFOPT_HD T smoothed_logistic(const T& z, const T& eps) {
  return -(T(1) - eps) * num::log_sigmoid<T>(z) - eps * num::log_sigmoid<T>(-z);
}
template <class T> PREFOPT_HD T smoothed_logistic_grad(const T& z, const T& eps) {
  return -(T(1) - eps) * num::sigmoid<T>(-z) + eps * num::sigmoid<T>(z);
}

// rewards/* and logps/* on length-averaged log-probs, as TRL's CPOTrainer (loss_type "simpo") and
// ORPOTrainer report them: rewards/chosen = mean β·log π_θ(y_w)/n_w, logps/chosen = mean
// log π_θ(y_w)/n_w, and likewise for the rejected side; accuracies compare the averaged rewards.
template <class T>
void add_length_averaged_metrics(const pair_batch<T>& b, double beta, std::map<std::string, double>& m) {
  const std::size_t n = b.size();
  if (n == 0) return;
  double lc = 0, lr = 0, acc = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double ac = num::to_double(b.policy_chosen[i]) / (b.chosen_tokens.empty() ? 1.0 : b.chosen_tokens[i]);
    const double ar = num::to_double(b.policy_rejected[i]) / (b.rejected_tokens.empty() ? 1.0 : b.rejected_tokens[i]);
    lc += ac;
    lr += ar;
    acc += beta * ac > beta * ar ? 1.0 : 0.0;
  }
  m["rewards/chosen"] = beta * lc / double(n);
  m["rewards/rejected"] = beta * lr / double(n);
  m["rewards/accuracies"] = acc / double(n);
  m["rewards/margins"] = beta * (lc - lr) / double(n);
  m["logps/chosen"] = lc / double(n);
  m["logps/rejected"] = lr / double(n);
}

// TRL's nll_loss metric: the chosen tokens' mean negative log-likelihood, −Σ log π_θ(y_w) / Σ n_w.
template <class T> double chosen_nll(const pair_batch<T>& b) {
  double s = 0, tokens = 0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    s -= num::to_double(b.policy_chosen[i]);
    tokens += b.chosen_tokens.empty() ? 1.0 : b.chosen_tokens[i];
  }
  return tokens > 0 ? s / tokens : 0.0;
}

// Calls f on every element of a boost::hana::tuple in order; unlike hana::for_each it may run in
// device code (hana::at_c is constexpr), so combinators stay __host__ __device__.
template <class Tuple, class F, std::size_t... I>
PREFOPT_HD void for_each_term(Tuple& t, F& f, std::index_sequence<I...>) {
  (f(boost::hana::at_c<I>(t)), ...);
}
template <class Tuple, class F> PREFOPT_HD void for_each_term(Tuple& t, F&& f) {
  for_each_term(t, f, std::make_index_sequence<decltype(boost::hana::length(t))::value>{});
}

} // namespace prefopt::losses::detail
