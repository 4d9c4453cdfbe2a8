// Hand-written gradients of every loss and combinator against Eigen's forward-mode AutoDiff.
//
// Expected values: evaluate(loss, pair_batch<AutoDiffScalar<VectorXd>>) with policy_chosen[i] the
// i-th variable and policy_rejected[i] the (n+i)-th; the derivative vector of the batch loss is
// the exact gradient of the same scalar code, so hand and AutoDiff gradients agree to rounding
// (tolerance 1e-10 relative + 1e-13). The value must equal the double evaluation exactly.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "losses/autodiff.hpp"
#include "losses/loss_cases.hpp"

namespace pt = prefopt::test;

namespace {
std::size_t checks = 0;

template <class Case> void check_case(unsigned seed, std::size_t n) {
  const auto loss = Case::make();
  const auto b = pt::random_batch<double>(seed, n);
  const auto r = prefopt::evaluate(loss, b);
  const auto m = static_cast<Eigen::Index>(2 * n);
  auto ab = pt::convert<pt::ad>(b, [m](double v) { return pt::ad_constant(v, m); });
  for (std::size_t i = 0; i < n; ++i) {
    ab.policy_chosen[i] = pt::ad_variable(b.policy_chosen[i], m, static_cast<Eigen::Index>(i));
    ab.policy_rejected[i] = pt::ad_variable(b.policy_rejected[i], m, static_cast<Eigen::Index>(n + i));
  }
  const auto ar = prefopt::evaluate(loss, ab);
  INFO(std::string(Case::label), " seed ", seed);
  CHECK(ar.loss.value() == doctest::Approx(r.loss).epsilon(1e-14));
  REQUIRE(ar.loss.derivatives().size() == m);
  for (std::size_t i = 0; i < n; ++i) {
    const double gc = ar.loss.derivatives()(static_cast<Eigen::Index>(i));
    const double gr = ar.loss.derivatives()(static_cast<Eigen::Index>(n + i));
    INFO("pair ", i, ": hand ", r.d_policy_chosen[i], " / ", r.d_policy_rejected[i], ", autodiff ", gc, " / ", gr);
    CHECK(pt::close(r.d_policy_chosen[i], gc, 1e-10, 1e-13));
    CHECK(pt::close(r.d_policy_rejected[i], gr, 1e-10, 1e-13));
    // The AutoDiff evaluation carries the hand gradients too: they must agree with its own value's derivative.
    CHECK(pt::close(ar.d_policy_chosen[i].value(), gc, 1e-10, 1e-13));
    checks += 2;
  }
}
} // namespace

TEST_CASE_TEMPLATE_DEFINE("hand gradient = Eigen AutoDiff", Case, ad_gradient) {
  for (unsigned seed : {4u, 5u, 6u}) check_case<Case>(seed, 6);
  check_case<Case>(12u, 1);
}
TEST_CASE_TEMPLATE_APPLY(ad_gradient, pt::all_cases);

TEST_CASE("KTO and apo_zero_unpaired: hand gradient = Eigen AutoDiff") {
  const std::vector<double> pol = {-12.5, -30.25, -7.75, -22.0, -15.5, -3.25};
  const std::vector<double> ref = {-14.0, -27.5, -9.0, -21.0, -16.25, -4.0};
  const Eigen::Index n = static_cast<Eigen::Index>(pol.size());
  prefopt::unpaired_batch<double> u;
  prefopt::unpaired_batch<pt::ad> au;
  u.policy = pol;
  u.reference = ref;
  u.desirable = {1, 0, 1, 0, 0, 1};
  u.policy_kl = {-20.0, -11.0, -8.5, -31.0};
  u.reference_kl = {-22.5, -10.0, -10.0, -33.0};
  au.desirable = u.desirable;
  for (Eigen::Index i = 0; i < n; ++i) {
    au.policy.push_back(pt::ad_variable(pol[static_cast<std::size_t>(i)], n, i));
    au.reference.push_back(pt::ad_constant(ref[static_cast<std::size_t>(i)], n));
  }
  for (std::size_t j = 0; j < u.policy_kl.size(); ++j) {
    au.policy_kl.push_back(pt::ad_constant(u.policy_kl[j], n));
    au.reference_kl.push_back(pt::ad_constant(u.reference_kl[j], n));
  }
  auto run = [&](const auto& loss) {
    const auto r = prefopt::evaluate(loss, u);
    const auto ar = prefopt::evaluate(loss, au);
    CHECK(ar.loss.value() == doctest::Approx(r.loss).epsilon(1e-14));
    for (Eigen::Index i = 0; i < n; ++i) {
      CHECK(pt::close(r.d_policy[static_cast<std::size_t>(i)], ar.loss.derivatives()(i), 1e-10, 1e-13));
      ++checks;
    }
  };
  run(prefopt::losses::kto{.beta = 0.1});
  run(prefopt::losses::kto{.beta = 0.5, .desirable_weight = 1.0, .undesirable_weight = 1.33});
  run(prefopt::losses::apo_zero_unpaired{.beta = 0.2});
}

TEST_CASE("AutoDiff gradient check count") {
  MESSAGE("AutoDiff gradient checks: ", checks, " over ", pt::case_count, " loss cases + 3 unpaired");
  CHECK(checks > 0);
}
