// tests/losses/loss_cases.hpp — every shipped loss and combinator as a test case, plus random batches.
//
// A case is a type with make() (the loss, hyperparameters set), a label and property flags, so
// doctest's TEST_CASE_TEMPLATE_APPLY runs one generic test over all of them. Adding a loss to the
// generic suites (gradients, AutoDiff, laws, extreme margins) is one line in `all_cases` below.
#pragma once

#include <cmath>
#include <cstddef>
#include <random>
#include <tuple>
#include <vector>

#include "prefopt/losses.hpp"

namespace prefopt::test {

namespace L = prefopt::losses;

// Property flags of a case.
namespace props {
inline constexpr unsigned none = 0;
inline constexpr unsigned reference_free = 1u << 0;  // does not read the reference log-probs at all
inline constexpr unsigned margin_only = 1u << 1;     // a function of the reference-adjusted margin: d/dc = −d/dr
inline constexpr unsigned batch_shift = 1u << 2;     // shift law holds for a batch-wide constant only (aot)
} // namespace props

#define PREFOPT_LOSS_CASE(id, flags, ...)                                                                  \
  struct id {                                                                                            \
    static auto make() { return __VA_ARGS__; }                                                           \
    static constexpr const char* label = #__VA_ARGS__;                                                   \
    static constexpr unsigned flags_ = flags;                                                            \
  }

namespace cases {
using namespace prefopt::losses;
PREFOPT_LOSS_CASE(sigmoid_, props::margin_only, sigmoid{.beta = 0.1});
PREFOPT_LOSS_CASE(sigmoid_b2, props::margin_only, sigmoid{.beta = 2.0});
PREFOPT_LOSS_CASE(hinge_, props::margin_only, hinge{.beta = 0.1});
PREFOPT_LOSS_CASE(ipo_, props::none, ipo{.beta = 0.1});
PREFOPT_LOSS_CASE(ipo_sum, props::margin_only, ipo{.beta = 0.1, .normalize_by_length = false});
PREFOPT_LOSS_CASE(exo_pair_, props::margin_only, exo_pair{.beta = 0.1, .label_smoothing = 1e-3});
PREFOPT_LOSS_CASE(nca_pair_, props::none, nca_pair{.beta = 0.1});
PREFOPT_LOSS_CASE(robust_, props::margin_only, robust{.beta = 0.1, .label_smoothing = 0.1});
PREFOPT_LOSS_CASE(bco_pair_, props::none, bco_pair{.beta = 0.1});
PREFOPT_LOSS_CASE(sppo_hard_, props::none, sppo_hard{.beta = 0.1});
PREFOPT_LOSS_CASE(aot_, props::margin_only | props::batch_shift, aot{.beta = 0.1, .label_smoothing = 0.1});
PREFOPT_LOSS_CASE(aot_unpaired_, props::none, aot_unpaired{.beta = 0.1});
PREFOPT_LOSS_CASE(apo_zero_, props::none, apo_zero{.beta = 0.1});
PREFOPT_LOSS_CASE(apo_down_, props::none, apo_down{.beta = 0.1});
PREFOPT_LOSS_CASE(discopop_, props::margin_only, discopop{.beta = 0.1, .tau = 0.05});
PREFOPT_LOSS_CASE(sft_, props::reference_free, sft{});
PREFOPT_LOSS_CASE(sigmoid_norm_, props::none, sigmoid_norm{.beta = 0.1});
PREFOPT_LOSS_CASE(prob_constant, props::margin_only, probabilistic{.beta = 0.1, .label_smoothing = 0.1});
PREFOPT_LOSS_CASE(prob_column, props::margin_only, probabilistic{.beta = 0.1, .source = label_source::column});
PREFOPT_LOSS_CASE(prob_scores, props::margin_only,
                  probabilistic{.beta = 0.1, .source = label_source::scores, .score_temperature = 2.0});
PREFOPT_LOSS_CASE(cpo_, props::reference_free, cpo{.beta = 0.1, .alpha = 1.0, .label_smoothing = 0.1});
PREFOPT_LOSS_CASE(simpo_, props::reference_free, simpo{.beta = 2.0, .gamma = 0.5});
PREFOPT_LOSS_CASE(orpo_, props::reference_free, orpo{.beta = 0.1});
PREFOPT_LOSS_CASE(fkl_sigmoid, props::none, with_divergence(sigmoid{.beta = 0.1}, divergence::forward_kl));
PREFOPT_LOSS_CASE(js_sigmoid, props::none, with_divergence(sigmoid{.beta = 0.1}, divergence::js));
PREFOPT_LOSS_CASE(alpha05_sigmoid, props::none, with_divergence(sigmoid{.beta = 0.1}, divergence::alpha, 0.5));
PREFOPT_LOSS_CASE(alpha03_sigmoid, props::none, with_divergence(sigmoid{.beta = 0.1}, divergence::alpha, 0.3));
PREFOPT_LOSS_CASE(js_ipo, props::none, with_divergence(ipo{.beta = 0.1}, divergence::js));
PREFOPT_LOSS_CASE(alpha03_ipo, props::none, with_divergence(ipo{.beta = 0.1}, divergence::alpha, 0.3));
PREFOPT_LOSS_CASE(fkl_robust, props::none, with_divergence(robust{.beta = 0.1, .label_smoothing = 0.2},
                                                           divergence::forward_kl));
PREFOPT_LOSS_CASE(js_discopop, props::none, with_divergence(discopop{.beta = 0.1}, divergence::js));
PREFOPT_LOSS_CASE(alpha_prob, props::none,
                  with_divergence(probabilistic{.beta = 0.1, .source = label_source::column}, divergence::alpha, 0.7));
PREFOPT_LOSS_CASE(wpo_sigmoid, props::none, wpo(sigmoid{.beta = 0.1}));
PREFOPT_LOSS_CASE(wpo_ipo, props::none, wpo(ipo{.beta = 0.1}));
PREFOPT_LOSS_CASE(wpo_nca, props::none, wpo(nca_pair{.beta = 0.1}));
PREFOPT_LOSS_CASE(mpo, props::reference_free, 0.8 * sigmoid{.beta = 0.1} + 0.2 * bco_pair{.beta = 0.1} + 1.0 * sft{});
PREFOPT_LOSS_CASE(mix_batch, props::batch_shift, 0.5 * sigmoid{.beta = 0.1} + 0.5 * aot{.beta = 0.1});
PREFOPT_LOSS_CASE(mix_ref, props::none, 0.3 * apo_zero{.beta = 0.2} + 0.7 * with_divergence(ipo{}, divergence::js));
PREFOPT_LOSS_CASE(floor_sigmoid, props::none, constrain(sigmoid{.beta = 0.1}, chosen_floor{.lambda = 5.0}));
PREFOPT_LOSS_CASE(rdpo_ipo, props::none, constrain(ipo{.beta = 0.1}, length_difference{.lambda = 0.02}));
PREFOPT_LOSS_CASE(cost_bco, props::none, constrain(bco_pair{.beta = 0.1}, pair_cost{.lambda = 0.5, .bound = 0.1}));
PREFOPT_LOSS_CASE(multi_robust, props::none,
                  constrain(robust{.beta = 0.1, .label_smoothing = 0.1}, chosen_floor{.lambda = 2.0},
                            length_difference{.lambda = 0.01}, pair_cost{.lambda = 0.3}));
} // namespace cases

// Every case; the generic suites run over this list.
using all_cases = std::tuple<
    cases::sigmoid_, cases::sigmoid_b2, cases::hinge_, cases::ipo_, cases::ipo_sum, cases::exo_pair_,
    cases::nca_pair_, cases::robust_, cases::bco_pair_, cases::sppo_hard_, cases::aot_, cases::aot_unpaired_,
    cases::apo_zero_, cases::apo_down_, cases::discopop_, cases::sft_, cases::sigmoid_norm_, cases::prob_constant,
    cases::prob_column, cases::prob_scores, cases::cpo_, cases::simpo_, cases::orpo_, cases::fkl_sigmoid,
    cases::js_sigmoid, cases::alpha05_sigmoid, cases::alpha03_sigmoid, cases::js_ipo, cases::alpha03_ipo,
    cases::fkl_robust, cases::js_discopop, cases::alpha_prob, cases::wpo_sigmoid, cases::wpo_ipo, cases::wpo_nca,
    cases::mpo, cases::mix_batch, cases::mix_ref, cases::floor_sigmoid, cases::rdpo_ipo, cases::cost_bco,
    cases::multi_robust>;

inline constexpr std::size_t case_count = std::tuple_size_v<all_cases>;

// A batch with every column filled: ordinary log-probs (−0.05..−3 per token, 1..30 tokens), the
// reference a few nats away, soft labels, scores, costs and weights. Deterministic per seed.
template <class T> pair_batch<T> random_batch(unsigned seed, std::size_t n) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> per_token(0.05, 3.0), unit(0.0, 1.0), cost(0.0, 2.0), weight(0.2, 2.0);
  std::normal_distribution<double> offset(0.0, 3.0), score(0.0, 2.0);
  std::uniform_int_distribution<int> tokens(1, 30);
  pair_batch<T> b;
  for (std::size_t i = 0; i < n; ++i) {
    const int nc = tokens(rng), nr = tokens(rng);
    const double pc = -per_token(rng) * nc, pr = -per_token(rng) * nr;
    b.chosen_tokens.push_back(nc);
    b.rejected_tokens.push_back(nr);
    b.policy_chosen.push_back(T(pc));
    b.policy_rejected.push_back(T(pr));
    b.reference_chosen.push_back(T(pc + offset(rng)));
    b.reference_rejected.push_back(T(pr + offset(rng)));
    b.preference_prob.push_back(T(unit(rng)));
    b.score_chosen.push_back(T(score(rng)));
    b.score_rejected.push_back(T(score(rng)));
    b.cost.push_back(T(cost(rng)));
    b.weight.push_back(T(weight(rng)));
  }
  return b;
}

// The same batch in another scalar type (each value converted through double).
template <class U, class T, class F> pair_batch<U> convert(const pair_batch<T>& b, F&& to) {
  auto col = [&](const std::vector<T>& c) {
    std::vector<U> out;
    out.reserve(c.size());
    for (const T& v : c) out.push_back(to(v));
    return out;
  };
  pair_batch<U> o;
  o.policy_chosen = col(b.policy_chosen);
  o.policy_rejected = col(b.policy_rejected);
  o.reference_chosen = col(b.reference_chosen);
  o.reference_rejected = col(b.reference_rejected);
  o.chosen_tokens = b.chosen_tokens;
  o.rejected_tokens = b.rejected_tokens;
  o.preference_prob = col(b.preference_prob);
  o.score_chosen = col(b.score_chosen);
  o.score_rejected = col(b.score_rejected);
  o.cost = col(b.cost);
  o.weight = col(b.weight);
  return o;
}

// Pairs [from, to) of a batch (every column that is present).
template <class T> pair_batch<T> slice(const pair_batch<T>& b, std::size_t from, std::size_t to) {
  auto cut = [&](const auto& c) {
    using V = std::decay_t<decltype(c)>;
    return c.empty() ? V{} : V(c.begin() + static_cast<std::ptrdiff_t>(from), c.begin() + static_cast<std::ptrdiff_t>(to));
  };
  pair_batch<T> o;
  o.policy_chosen = cut(b.policy_chosen);
  o.policy_rejected = cut(b.policy_rejected);
  o.reference_chosen = cut(b.reference_chosen);
  o.reference_rejected = cut(b.reference_rejected);
  o.chosen_tokens = cut(b.chosen_tokens);
  o.rejected_tokens = cut(b.rejected_tokens);
  o.preference_prob = cut(b.preference_prob);
  o.score_chosen = cut(b.score_chosen);
  o.score_rejected = cut(b.score_rejected);
  o.cost = cut(b.cost);
  o.weight = cut(b.weight);
  return o;
}

// |a − b| ≤ rel·|b| + abs.
inline bool close(double a, double b, double rel, double abs) { return std::fabs(a - b) <= rel * std::fabs(b) + abs; }

} // namespace prefopt::test
