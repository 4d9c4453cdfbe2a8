// The reference-free losses — sft, cpo, simpo, orpo — by hand: the token-mean NLL, the
// length-normalized margins, the odds ratio and their TRL metrics.
//
// Expected values: the formulas of TRL's CPOTrainer/ORPOTrainer and the papers (CPO eq. 3–5,
// SimPO eq. 6, ORPO eq. 6–7), evaluated here in long double. Golden values from TRL itself are
// in golden_test.cpp.
#include <doctest/doctest.h>

#include <cmath>

#include "losses/loss_cases.hpp"

namespace L = prefopt::losses;
namespace pt = prefopt::test;
using ld = long double;

namespace {
ld logsig(ld x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); }

prefopt::pair_batch<double> batch() {
  prefopt::pair_batch<double> b;
  b.policy_chosen = {-12.0, -3.0, -40.0, -0.5};
  b.policy_rejected = {-20.0, -9.0, -35.0, -6.0};
  b.chosen_tokens = {10, 2, 25, 1};
  b.rejected_tokens = {8, 6, 30, 4};
  return b;
}
constexpr double total_chosen_tokens = 38.0;
} // namespace

TEST_CASE("sft is the chosen tokens' mean NLL, not a mean of per-sequence means") {
  const auto b = batch();
  const auto r = prefopt::evaluate(L::sft{}, b);
  CHECK(r.loss == doctest::Approx(55.5 / total_chosen_tokens).epsilon(1e-15));
  for (std::size_t i = 0; i < b.size(); ++i) {
    CHECK(r.per_pair[i] == doctest::Approx(-b.policy_chosen[i] * 4.0 / total_chosen_tokens).epsilon(1e-15));
    CHECK(r.d_policy_chosen[i] == doctest::Approx(-1.0 / total_chosen_tokens).epsilon(1e-15));
    CHECK(r.d_policy_rejected[i] == 0.0);
  }
  // rewards/* of a loss without β use β = 1 (TRL uses its DPOConfig β; see golden_test.cpp).
  CHECK(r.metrics.at("rewards/chosen") == doctest::Approx(-55.5 / 4));
}

TEST_CASE("cpo: smoothed logistic of β·(log π(y_w) − log π(y_l)) plus α·NLL") {
  const auto b = batch();
  for (double eps : {0.0, 0.1}) {
    const double beta = 0.2, alpha = 0.7;
    const auto r = prefopt::evaluate(L::cpo{.beta = beta, .alpha = alpha, .label_smoothing = eps}, b);
    ld pref = 0;
    for (std::size_t i = 0; i < b.size(); ++i) {
      const ld z = beta * ((ld)b.policy_chosen[i] - b.policy_rejected[i]);
      pref += -(1 - eps) * logsig(z) - eps * logsig(-z);
    }
    const double want = double(pref / 4 + alpha * 55.5L / total_chosen_tokens);
    CHECK(r.loss == doctest::Approx(want).epsilon(1e-14));
    CHECK(r.metrics.at("nll_loss") == doctest::Approx(55.5 / total_chosen_tokens).epsilon(1e-15));
    // CPO's rewards are β·log π(y): summed log-probs (TRL's CPOTrainer for loss_type sigmoid).
    CHECK(r.metrics.at("rewards/chosen") == doctest::Approx(beta * -55.5 / 4));
  }
}

TEST_CASE("simpo: β·(length-averaged margin) − γ, and TRL's averaged metrics") {
  const auto b = batch();
  const double beta = 2.0, gamma = 0.5;
  const auto r = prefopt::evaluate(L::simpo{.beta = beta, .gamma = gamma}, b);
  ld sum = 0, rc = 0, rr = 0;
  int acc = 0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    const ld ac = (ld)b.policy_chosen[i] / b.chosen_tokens[i], ar = (ld)b.policy_rejected[i] / b.rejected_tokens[i];
    const ld v = -logsig(beta * (ac - ar) - gamma);
    CHECK(r.per_pair[i] == doctest::Approx(double(v)).epsilon(1e-14));
    sum += v;
    rc += beta * ac;
    rr += beta * ar;
    acc += ac > ar;
  }
  CHECK(r.loss == doctest::Approx(double(sum / 4)).epsilon(1e-14));
  CHECK(r.metrics.at("rewards/chosen") == doctest::Approx(double(rc / 4)).epsilon(1e-14));
  CHECK(r.metrics.at("rewards/rejected") == doctest::Approx(double(rr / 4)).epsilon(1e-14));
  CHECK(r.metrics.at("rewards/accuracies") == doctest::Approx(acc / 4.0));
  CHECK(r.metrics.at("logps/chosen") == doctest::Approx(double(rc / beta / 4)).epsilon(1e-14));
  // The reference columns, if present, change nothing.
  auto with_ref = b;
  with_ref.reference_chosen = {-1.0, -2.0, -3.0, -4.0};
  with_ref.reference_rejected = {-5.0, -6.0, -7.0, -8.0};
  CHECK(prefopt::evaluate(L::simpo{.beta = beta, .gamma = gamma}, with_ref).loss == r.loss);
}

namespace {
// ORPO's per-pair preference term −log σ(lo) and lo, from the odds P/(1 − P), P = exp(mean log-prob).
ld orpo_lo(ld aw, ld al) {
  const ld ow = std::exp(aw) / -std::expm1(aw), ol = std::exp(al) / -std::expm1(al);
  return std::log(ow / ol);
}
} // namespace

TEST_CASE("orpo: NLL − β·mean log σ(log odds ratio), and TRL's metrics") {
  const auto b = batch();
  const double beta = 0.1;
  const auto r = prefopt::evaluate(L::orpo{.beta = beta}, b);
  ld ratio = 0, odds = 0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    const ld lo = orpo_lo((ld)b.policy_chosen[i] / b.chosen_tokens[i], (ld)b.policy_rejected[i] / b.rejected_tokens[i]);
    ratio += logsig(lo);
    odds += lo;
    CHECK(r.per_pair[i] ==
          doctest::Approx(double(-b.policy_chosen[i] * 4.0L / total_chosen_tokens - beta * logsig(lo))).epsilon(1e-13));
  }
  CHECK(r.loss == doctest::Approx(double(55.5L / total_chosen_tokens - beta * ratio / 4)).epsilon(1e-13));
  CHECK(r.metrics.at("log_odds_ratio") == doctest::Approx(double(ratio / 4)).epsilon(1e-13));
  CHECK(r.metrics.at("log_odds_chosen") == doctest::Approx(double(odds / 4)).epsilon(1e-13));
  CHECK(r.metrics.at("nll_loss") == doctest::Approx(55.5 / total_chosen_tokens).epsilon(1e-15));
  CHECK(r.metrics.at("rewards/chosen") == doctest::Approx(beta * (-1.2 - 1.5 - 1.6 - 0.5) / 4).epsilon(1e-14));
  CHECK(r.metrics.at("logps/rejected") == doctest::Approx((-2.5 - 1.5 - 35.0 / 30 - 1.5) / 4).epsilon(1e-14));
}

TEST_CASE("orpo's gradient stays accurate as a completion becomes certain (mean log-prob → 0)") {
  // d(−log σ(lo))/da_w = −1/(1 − 2e^{a_w} + e^{a_w − a_l}) avoids 1 − e^{a_w} → 0 in a
  // denominator; checked against central differences of the long-double formula.
  for (double aw : {-1e-2, -1e-5, -1e-9}) {
    prefopt::pair_batch<double> b;
    b.policy_chosen = {aw * 3};
    b.chosen_tokens = {3};
    b.policy_rejected = {-0.7 * 5};
    b.rejected_tokens = {5};
    const auto r = prefopt::evaluate(L::orpo{.beta = 1.0}, b);
    auto pref = [&](ld pc, ld pr) { return -logsig(orpo_lo(pc / 3, pr / 5)); };
    const ld h = std::fabs(aw) * 1e-4L;
    const ld dw = (pref(3 * (aw + h), -3.5L) - pref(3 * (aw - h), -3.5L)) / (6 * h);
    const ld dl = (pref(3.0L * aw, -3.5L + 5 * 1e-4L) - pref(3.0L * aw, -3.5L - 5 * 1e-4L)) / (10 * 1e-4L);
    INFO("a_w = ", aw);
    CHECK(std::isfinite(r.loss));
    // prefopt's gradient includes the NLL share −1/N = −1/3 for the chosen side.
    CHECK(r.d_policy_chosen[0] + 1.0 / 3 == doctest::Approx(double(dw)).epsilon(1e-6));
    CHECK(r.d_policy_rejected[0] == doctest::Approx(double(dl)).epsilon(1e-6));
  }
}

TEST_CASE("reference-free losses need no reference columns, and ignore them when present") {
  auto b = batch();
  const auto plain = prefopt::evaluate(pt::cases::cpo_::make(), b);
  b.reference_chosen = {-1.0, -1.0, -1.0, -1.0};
  b.reference_rejected = {-1.0, -1.0, -1.0, -1.0};
  CHECK(prefopt::evaluate(pt::cases::cpo_::make(), b).loss == plain.loss);
  CHECK((L::cpo{}.required_columns() & prefopt::columns::reference) == 0);
  CHECK((L::orpo{}.required_columns() & prefopt::columns::reference) == 0);
  CHECK((L::simpo{}.required_columns() & prefopt::columns::reference) == 0);
  CHECK((L::sft{}.required_columns() & prefopt::columns::reference) == 0);
}
