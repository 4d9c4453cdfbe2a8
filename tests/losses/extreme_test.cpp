// Extreme margins: every loss and combinator stays finite, in value and gradient, in float and
// double, for |β·h| up to 1e4, log-ratios of ±6e4 nats, token counts 1..50, a completion of
// log-prob exactly 0 (probability 1 in float) and zero margins.
//
// Expected values: finiteness (no inf, no NaN) everywhere; and, where the exact answer is known
// in closed form at saturation, that answer (sigmoid's loss → −β·h for β·h → −∞, its gradient
// → 0 for β·h → +∞).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>

#include "losses/loss_cases.hpp"

namespace L = prefopt::losses;
namespace pt = prefopt::test;

namespace {

struct row {
  double pc, rc, pr, rr;
  int nc, nr;
};

// β·h at β = 0.1: +1e4, −1e4, +500, −100, ~0, +5.9e3, −3.5e3, 0, and a zero-margin pair.
constexpr row extreme_rows[] = {
    {-1e-3, -4.0e4, -6.0e4, -0.5, 1, 50},   {-6.0e4, -0.5, -1e-3, -4.0e4, 50, 1},
    {-10.0, -2010.0, -3010.0, -10.0, 7, 13}, {-30.0, -25.0, -1030.0, -25.0, 12, 40},
    {0.0, -2e-6, -1e-5, -3e-5, 1, 1},       {-400.0, -30400.0, -30000.0, -100.0, 50, 50},
    {-35000.0, -5000.0, -100.0, -100.0, 33, 2}, {-20.0, -21.0, -19.0, -18.0, 2, 5},
    {-5.0, -5.0, -7.0, -7.0, 3, 3},
};

template <class T> prefopt::pair_batch<T> extreme_batch() {
  prefopt::pair_batch<T> b;
  std::size_t i = 0;
  for (const row& r : extreme_rows) {
    b.policy_chosen.push_back(T(r.pc));
    b.reference_chosen.push_back(T(r.rc));
    b.policy_rejected.push_back(T(r.pr));
    b.reference_rejected.push_back(T(r.rr));
    b.chosen_tokens.push_back(r.nc);
    b.rejected_tokens.push_back(r.nr);
    b.preference_prob.push_back(T(i % 3 == 0 ? 1.0 : i % 3 == 1 ? 0.0 : 0.37));
    b.score_chosen.push_back(T(i % 2 == 0 ? 1e4 : -1e4));
    b.score_rejected.push_back(T(0.5));
    b.cost.push_back(T(i % 2 == 0 ? 0.0 : 50.0));
    b.weight.push_back(T(i % 4 == 0 ? 0.0 : i % 4 == 1 ? 1e3 : 0.7));
    ++i;
  }
  return b;
}

template <class T, class Case> void all_finite() {
  const auto loss = Case::make();
  const auto b = extreme_batch<T>();
  const auto r = prefopt::evaluate(loss, b);
  INFO(std::string(Case::label), (std::is_same_v<T, float> ? " (float)" : " (double)"));
  CHECK(std::isfinite(double(r.loss)));
  for (std::size_t i = 0; i < b.size(); ++i) {
    INFO("pair ", i, ": loss ", r.per_pair[i], " d/dc ", r.d_policy_chosen[i], " d/dr ", r.d_policy_rejected[i]);
    CHECK(std::isfinite(double(r.per_pair[i])));
    CHECK(std::isfinite(double(r.d_policy_chosen[i])));
    CHECK(std::isfinite(double(r.d_policy_rejected[i])));
  }
  for (const auto& kv : r.metrics) {  // (no structured binding: INFO captures the names)
    const std::string& k = kv.first;
    const double v = kv.second;
    // orpo's log_odds_chosen (TRL's metric) is the mean log odds ratio: +inf, truly, when a chosen
    // completion has probability 1, as in pair 4. The loss and gradients stay finite.
    if (k == "log_odds_chosen") continue;
    INFO("metric ", std::string(k), " = ", v);
    CHECK(std::isfinite(v));
  }
  // Micro-batches of one pair each, with the whole batch's context, too.
  const auto ctx = prefopt::context_of(b);
  if constexpr (L::ElementwiseLoss<decltype(loss)>) {
    for (std::size_t i = 0; i < b.size(); ++i) {
      const auto ri = prefopt::evaluate(loss, pt::slice(b, i, i + 1), ctx);
      CHECK(std::isfinite(double(ri.loss)));
      CHECK(std::isfinite(double(ri.d_policy_chosen[0])));
    }
  }
}

} // namespace

TEST_CASE_TEMPLATE_DEFINE("extreme margins: finite loss and gradient in double and float", Case, extreme) {
  all_finite<double, Case>();
  all_finite<float, Case>();
}
TEST_CASE_TEMPLATE_APPLY(extreme, pt::all_cases);

TEST_CASE("sigmoid at saturation: loss → −β·h, gradient → 0, in float and double") {
  auto check = [](auto zero) {
    using T = decltype(zero);
    prefopt::pair_batch<T> b;
    b.policy_chosen = {T(-6e4), T(-1e-3)};
    b.reference_chosen = {T(-0.5), T(-4e4)};
    b.policy_rejected = {T(-1e-3), T(-6e4)};
    b.reference_rejected = {T(-4e4), T(-0.5)};
    const auto r = prefopt::evaluate(L::sigmoid{.beta = 0.1}, b);
    // Pair 0: β·h = 0.1·(−59999.5 − 39999.999) ≈ −1e4, loss = −log σ(β·h) = −β·h exactly in T.
    const double z = 0.1 * ((-6e4 + 0.5) - (-1e-3 + 4e4));
    CHECK(double(r.per_pair[0]) == doctest::Approx(-z).epsilon(std::is_same_v<T, float> ? 1e-6 : 1e-12));
    CHECK(double(r.d_policy_chosen[0]) == doctest::Approx(-0.1 / 2.0).epsilon(1e-6));
    CHECK(double(r.per_pair[1]) == 0.0);
    CHECK(std::fabs(double(r.d_policy_chosen[1])) < 1e-30);
  };
  check(0.0);
  check(0.0f);
}

TEST_CASE("discopop: finite where TRL's e^{-z}·m gives inf·0 = NaN") {
  // TRL's form −log σ(z)(1 − m) + e^{−z} m overflows e^{−z} for z < −88.7 (float) / −709.8
  // (double) while m = σ(z/τ) underflows to 0. prefopt evaluates e^{−z + log σ(z/τ)}: at z = −1e3
  // it is e^{1e3 − 2e4} = 0, and the loss is the logistic part, softplus(−z) = 1e3.
  auto check = [](auto zero) {
    using T = decltype(zero);
    prefopt::pair_batch<T> b;
    b.policy_chosen = {T(-1e4)};
    b.reference_chosen = {T(0)};
    b.policy_rejected = {T(0)};
    b.reference_rejected = {T(0)};
    const auto r = prefopt::evaluate(L::discopop{.beta = 0.1, .tau = 0.05}, b);
    CHECK(double(r.loss) == doctest::Approx(1e3).epsilon(1e-6));
    CHECK(double(r.d_policy_chosen[0]) == doctest::Approx(-0.1).epsilon(1e-6));
  };
  check(0.0);
  check(0.0f);
}

TEST_CASE("orpo: a chosen completion of probability 1 (log-prob 0), a near-certain rejected one") {
  // A *rejected* completion of log-prob exactly 0 makes the odds ratio genuinely 0 and the loss
  // +inf (TRL: inf too); a chosen one makes it +inf and the preference term 0.
  prefopt::pair_batch<float> b;
  b.policy_chosen = {0.0f, -3.0f};
  b.policy_rejected = {-5.0f, -1e-6f};
  b.chosen_tokens = {4, 2};
  b.rejected_tokens = {2, 6};
  const auto r = prefopt::evaluate(L::orpo{.beta = 0.1}, b);
  CHECK(std::isfinite(r.loss));
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(std::isfinite(r.d_policy_chosen[i]));
    CHECK(std::isfinite(r.d_policy_rejected[i]));
  }
  // Pair 0: odds(y_w) = ∞, so log σ(lo) = 0 and only the NLL share (0) is left.
  CHECK(r.per_pair[0] == 0.0f);
}
