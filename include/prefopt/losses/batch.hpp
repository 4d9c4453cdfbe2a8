// prefopt/losses/batch.hpp — what a preference loss consumes and produces.
//
// A pair_batch holds, per pair i, the policy and reference log-probs of the chosen and rejected
// completions (summed over completion tokens), the completion token counts, and optional per-pair
// columns. evaluate() (losses/evaluate.hpp) turns it into a loss_result: the batch loss (mean over
// pairs), each pair's loss, and d loss / d policy log-prob for every pair.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "prefopt/core/config.hpp"

namespace prefopt {

template <class T> struct pair_batch {
  std::vector<T> policy_chosen{};       // log π_θ(y_w | x), summed over completion tokens
  std::vector<T> policy_rejected{};     // log π_θ(y_l | x)
  std::vector<T> reference_chosen{};    // log π_ref(y_w | x); may be empty for reference-free losses
  std::vector<T> reference_rejected{};  // log π_ref(y_l | x)
  std::vector<int> chosen_tokens{};     // completion token counts (≥ 1); may be empty when no loss needs them
  std::vector<int> rejected_tokens{};

  // Optional per-pair columns: empty when absent.
  std::vector<T> preference_prob{};     // P(y_w ≻ y_l) in [0, 1] (probabilistic losses)
  std::vector<T> score_chosen{};        // scores from which a preference probability is derived
  std::vector<T> score_rejected{};
  std::vector<T> cost{};                // per-pair cost (constrained losses)
  std::vector<T> weight{};              // per-pair weight, e.g. WPO's detached sequence weights

  [[nodiscard]] std::size_t size() const noexcept { return policy_chosen.size(); }
};

// Whole-batch facts that some losses need and that gradient accumulation must keep equal to the
// full batch's: the number of pairs the loss is averaged over and the total chosen tokens (the
// token-mean NLL of sft/cpo/orpo divides by it). evaluate() fills them from the batch itself
// unless the caller passes the full batch's values.
template <class T> struct batch_context {
  T pairs = T(0);
  T chosen_tokens = T(0);
};

// One pair as a pointwise loss sees it. Absent optional columns hold neutral values
// (preference_prob 1, cost 0, weight 1, scores 0) and the loss's required_columns() says which
// ones it reads, so evaluate() can reject a batch that lacks them.
template <class T> struct pair_input {
  T pc, pr;            // policy log-probs, chosen and rejected
  T rc, rr;            // reference log-probs
  T nc, nr;            // completion token counts
  T preference_prob;
  T score_chosen, score_rejected;
  T cost;
  T weight;
  batch_context<T> batch;
};

// A pointwise loss's answer for one pair: its loss and the derivatives with respect to the
// policy log-probs of the chosen and rejected completion.
template <class T> struct pair_output {
  T value;
  T d_chosen;
  T d_rejected;
};

// Named per-pair columns a loss may require (bit flags).
namespace columns {
inline constexpr unsigned none = 0;
inline constexpr unsigned reference = 1u << 0;
inline constexpr unsigned token_counts = 1u << 1;
inline constexpr unsigned preference_prob = 1u << 2;
inline constexpr unsigned scores = 1u << 3;
inline constexpr unsigned cost = 1u << 4;
inline constexpr unsigned weight = 1u << 5;
} // namespace columns

template <class T> struct loss_result {
  T loss = T(0);                       // mean over pairs of per_pair (the value to minimize)
  std::vector<T> per_pair{};             // each pair's loss
  std::vector<T> d_policy_chosen{};      // d loss / d policy_chosen[i]
  std::vector<T> d_policy_rejected{};    // d loss / d policy_rejected[i]
  std::map<std::string, double> metrics;  // TRL's names: rewards/chosen, rewards/margins, ...
};

// The context a batch implies on its own: all its pairs, all its chosen tokens.
template <class T> batch_context<T> context_of(const pair_batch<T>& b) {
  batch_context<T> ctx{T(b.size()), T(0)};
  if (b.chosen_tokens.empty()) ctx.chosen_tokens = T(b.size());
  else
    for (int n : b.chosen_tokens) ctx.chosen_tokens += T(n);
  return ctx;
}

// Pair i of `b` as a pointwise loss sees it; absent columns take neutral values.
template <class T> pair_input<T> input_of(const pair_batch<T>& b, std::size_t i, const batch_context<T>& ctx) {
  auto at = [i](const std::vector<T>& c, T fallback) { return c.empty() ? fallback : c[i]; };
  pair_input<T> x{};
  x.pc = b.policy_chosen[i];
  x.pr = b.policy_rejected[i];
  x.rc = at(b.reference_chosen, T(0));
  x.rr = at(b.reference_rejected, T(0));
  x.nc = b.chosen_tokens.empty() ? T(1) : T(b.chosen_tokens[i]);
  x.nr = b.rejected_tokens.empty() ? T(1) : T(b.rejected_tokens[i]);
  x.preference_prob = at(b.preference_prob, T(1));
  x.score_chosen = at(b.score_chosen, T(0));
  x.score_rejected = at(b.score_rejected, T(0));
  x.cost = at(b.cost, T(0));
  x.weight = at(b.weight, T(1));
  x.batch = ctx;
  return x;
}

} // namespace prefopt
