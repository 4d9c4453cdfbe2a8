// Hand-written gradients of every loss and combinator against central differences (double).
//
// Expected values: d loss / d policy log-prob estimated as (L(x+h) − L(x−h)) / 2h on the batch
// loss evaluate() returns, with h = 1e-6·max(1, |x|). Truncation error is O(h²·L''') and rounding
// error O(ε·|L|/h) ≈ 1e-10·|L|; the tolerance 1e-6·(|g| + 1) + 1e-8·|L| covers both by orders of
// magnitude and is still far below any real gradient bug. AutoDiff checks live in autodiff_test.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <cstdio>

#include "losses/loss_cases.hpp"

namespace pt = prefopt::test;

namespace {
std::size_t checks = 0;

template <class Loss> double loss_at(const Loss& l, const prefopt::pair_batch<double>& b) {
  return prefopt::evaluate(l, b).loss;
}

template <class Case> void check_case(unsigned seed, std::size_t n) {
  const auto loss = Case::make();
  const auto b = pt::random_batch<double>(seed, n);
  const auto r = prefopt::evaluate(loss, b);
  for (std::size_t i = 0; i < n; ++i) {
    for (int side = 0; side < 2; ++side) {
      auto plus = b, minus = b;
      auto& vp = side == 0 ? plus.policy_chosen[i] : plus.policy_rejected[i];
      auto& vm = side == 0 ? minus.policy_chosen[i] : minus.policy_rejected[i];
      const double x = vp, h = 1e-6 * std::max(1.0, std::fabs(x));
      vp = x + h;
      vm = x - h;
      const double lp = loss_at(loss, plus), lm = loss_at(loss, minus);
      const double fd = (lp - lm) / ((x + h) - (x - h));
      const double g = side == 0 ? r.d_policy_chosen[i] : r.d_policy_rejected[i];
      INFO(std::string(Case::label), " seed ", seed, " pair ", i, (side == 0 ? " chosen" : " rejected"), ": hand ", g, " fd ", fd);
      CHECK(std::isfinite(g));
      CHECK(std::fabs(fd - g) <= 1e-6 * (std::fabs(g) + 1.0) + 1e-8 * std::fabs(r.loss));
      ++checks;
    }
  }
}
} // namespace

TEST_CASE_TEMPLATE_DEFINE("hand gradient = central differences", Case, fd_gradient) {
  for (unsigned seed : {1u, 2u, 3u}) check_case<Case>(seed, 6);
  check_case<Case>(11u, 1);  // a batch of one pair
}
TEST_CASE_TEMPLATE_APPLY(fd_gradient, pt::all_cases);

TEST_CASE("KTO and apo_zero_unpaired: hand gradient = central differences") {
  prefopt::unpaired_batch<double> u;
  u.policy = {-12.5, -30.25, -7.75, -22.0, -15.5, -3.25};
  u.reference = {-14.0, -27.5, -9.0, -21.0, -16.25, -4.0};
  u.desirable = {1, 0, 1, 0, 0, 1};
  u.policy_kl = {-20.0, -11.0, -8.5, -31.0};
  u.reference_kl = {-22.5, -10.0, -10.0, -33.0};
  auto run = [&](const auto& loss) {
    const auto r = prefopt::evaluate(loss, u);
    for (std::size_t i = 0; i < u.size(); ++i) {
      auto p = u, m = u;
      const double h = 1e-6 * std::max(1.0, std::fabs(u.policy[i]));
      p.policy[i] += h;
      m.policy[i] -= h;
      // The KL baseline is detached: perturbing policy[i] leaves z0 alone (it comes from policy_kl).
      const double fd = (prefopt::evaluate(loss, p).loss - prefopt::evaluate(loss, m).loss) / (2 * h);
      INFO("example ", i, " hand ", r.d_policy[i], " fd ", fd);
      CHECK(std::fabs(fd - r.d_policy[i]) <= 1e-6 * (std::fabs(r.d_policy[i]) + 1.0));
      ++checks;
    }
  };
  run(prefopt::losses::kto{.beta = 0.1});
  run(prefopt::losses::kto{.beta = 0.5, .desirable_weight = 1.0, .undesirable_weight = 1.33});
  run(prefopt::losses::apo_zero_unpaired{.beta = 0.2});
}

TEST_CASE("gradient check count") {
  // Runs last (doctest orders test cases by file and line): reports how many entries were checked.
  MESSAGE("central-difference gradient checks: ", checks, " over ", pt::case_count, " loss cases + 3 unpaired");
  CHECK(checks > 0);
}
