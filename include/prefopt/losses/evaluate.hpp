// prefopt/losses/evaluate.hpp — the host entry point: a loss applied to a pair_batch.
//
//   prefopt::loss_result<double> r = prefopt::evaluate(prefopt::losses::sigmoid{.beta = 0.1}, b);
//
// r.loss is the mean over pairs; r.d_policy_chosen[i] = d r.loss / d b.policy_chosen[i]. With a
// batch_context, the mean is taken over ctx.pairs instead (a micro-batch of a larger batch:
// summing the micro-batches' r.loss gives the full batch's loss exactly).
#pragma once

#include <cmath>
#include <optional>
#include <span>
#include <string>
#include <type_traits>

#include "prefopt/core/error.hpp"
#include "prefopt/core/numerics.hpp"
#include "prefopt/losses/batch.hpp"
#include "prefopt/losses/concepts.hpp"

namespace prefopt {

namespace detail {

template <class T> void check_column(const std::vector<T>& c, std::size_t n, const char* name, bool required,
                                     const char* loss_name) {
  if (c.empty()) {
    if (required && n > 0)
      throw shape_error(std::string("pair_batch: column '") + name + "'",
                        std::string("loss '") + loss_name + "' needs this per-pair column, and the batch has none");
    return;
  }
  if (c.size() != n)
    throw shape_error(std::string("pair_batch: column '") + name + "'",
                      "has " + std::to_string(c.size()) + " entries for " + std::to_string(n) + " pairs");
}

template <class T> void check_probabilities(const std::vector<T>& p) {
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (!(p[i] >= T(0) && p[i] <= T(1)))
      throw data_error("pair_batch: column 'preference_prob', pair " + std::to_string(i),
                       "value must lie in [0, 1]");
  }
}

inline void check_token_counts(const std::vector<int>& counts, const char* name) {
  for (std::size_t i = 0; i < counts.size(); ++i)
    if (counts[i] < 1)
      throw data_error(std::string("pair_batch: column '") + name + "', pair " + std::to_string(i),
                       "a completion must have at least one token (empty completions are skipped at collation)");
}

} // namespace detail

// Throws shape_error / data_error when `b` cannot feed a loss that reads `required` columns.
template <class T> void validate_batch(const pair_batch<T>& b, unsigned required, const char* loss_name = "?") {
  const std::size_t n = b.size();
  detail::check_column(b.policy_rejected, n, "policy_rejected", true, loss_name);
  detail::check_column(b.reference_chosen, n, "reference_chosen", required & columns::reference, loss_name);
  detail::check_column(b.reference_rejected, n, "reference_rejected", required & columns::reference, loss_name);
  if (b.reference_chosen.empty() != b.reference_rejected.empty())
    throw shape_error("pair_batch: columns 'reference_chosen'/'reference_rejected'", "only one of the two is given");
  detail::check_column(b.chosen_tokens, n, "chosen_tokens", required & columns::token_counts, loss_name);
  detail::check_column(b.rejected_tokens, n, "rejected_tokens", required & columns::token_counts, loss_name);
  detail::check_token_counts(b.chosen_tokens, "chosen_tokens");
  detail::check_token_counts(b.rejected_tokens, "rejected_tokens");
  detail::check_column(b.preference_prob, n, "preference_prob", required & columns::preference_prob, loss_name);
  detail::check_probabilities(b.preference_prob);
  detail::check_column(b.score_chosen, n, "score_chosen", required & columns::scores, loss_name);
  detail::check_column(b.score_rejected, n, "score_rejected", required & columns::scores, loss_name);
  detail::check_column(b.cost, n, "cost", required & columns::cost, loss_name);
  detail::check_column(b.weight, n, "weight", required & columns::weight, loss_name);
}

namespace detail {
// Per-pair losses and the gradient of their *sum*, for any loss shape.
template <losses::PreferenceLoss L, class T>
void sum_gradient(const L& loss, const pair_batch<T>& b, const batch_context<T>& ctx, std::span<T> per_pair,
                  std::span<T> d_chosen, std::span<T> d_rejected) {
  if constexpr (losses::ElementwiseLoss<L>) {
    for (std::size_t i = 0; i < b.size(); ++i) {
      const pair_output<T> o = losses::detail::pair_of(loss, input_of(b, i, ctx));
      per_pair[i] = o.value;
      d_chosen[i] = o.d_chosen;
      d_rejected[i] = o.d_rejected;
    }
  } else {
    loss.batch(b, ctx, per_pair, d_chosen, d_rejected);
  }
}
} // namespace detail

// TRL's reward metrics for a batch: β·(policy − reference) per response, averaged.
template <class T> void add_reward_metrics(const pair_batch<T>& b, double beta, std::map<std::string, double>& m) {
  const std::size_t n = b.size();
  if (n == 0) return;
  double rc = 0, rr = 0, acc = 0, lc = 0, lr = 0;
  for (std::size_t i = 0; i < n; ++i) {
    using num::to_double;
    const double pc = to_double(b.policy_chosen[i]), pr = to_double(b.policy_rejected[i]);
    const double c = beta * (pc - (b.reference_chosen.empty() ? 0.0 : to_double(b.reference_chosen[i])));
    const double r = beta * (pr - (b.reference_rejected.empty() ? 0.0 : to_double(b.reference_rejected[i])));
    rc += c;
    rr += r;
    acc += c > r ? 1.0 : 0.0;
    lc += pc;
    lr += pr;
  }
  m["rewards/chosen"] = rc / double(n);
  m["rewards/rejected"] = rr / double(n);
  m["rewards/accuracies"] = acc / double(n);
  m["rewards/margins"] = (rc - rr) / double(n);
  m["logps/chosen"] = lc / double(n);
  m["logps/rejected"] = lr / double(n);
}

template <losses::PreferenceLoss L, class T>
loss_result<T> evaluate(const L& loss, const pair_batch<T>& b,
                        std::optional<batch_context<std::type_identity_t<T>>> context = std::nullopt) {
  loss.validate();
  validate_batch(b, loss.required_columns(), std::string(L::name).c_str());
  const batch_context<T> ctx = context ? *context : context_of(b);
  if (!(ctx.pairs > T(0)) && b.size() > 0)
    throw shape_error("batch_context", "pairs must be positive");

  const std::size_t n = b.size();
  loss_result<T> r;
  r.per_pair.assign(n, T(0));
  r.d_policy_chosen.assign(n, T(0));
  r.d_policy_rejected.assign(n, T(0));
  detail::sum_gradient(loss, b, ctx, std::span<T>(r.per_pair), std::span<T>(r.d_policy_chosen),
                       std::span<T>(r.d_policy_rejected));
  T sum = T(0);
  for (std::size_t i = 0; i < n; ++i) {
    sum += r.per_pair[i];
    r.d_policy_chosen[i] /= ctx.pairs;
    r.d_policy_rejected[i] /= ctx.pairs;
  }
  r.loss = n == 0 ? T(0) : sum / ctx.pairs;
  add_reward_metrics(b, losses::reward_beta(loss), r.metrics);
  if constexpr (requires { loss.add_metrics(b, r.metrics); }) loss.add_metrics(b, r.metrics);
  return r;
}

} // namespace prefopt
