// aot and aot_unpaired: the sorted (optimal-transport) pairing across the batch, by hand.
//
// Expected values: TRL's definition (DPOTrainer._compute_loss, loss_type "aot"/"aot_unpaired"):
// sort the policy and reference log-ratio margins (aot) or the chosen and rejected log-ratios
// (aot_unpaired) separately, subtract rank by rank, apply the smoothed logistic loss; worked out
// by hand on three pairs. Golden values from TRL itself are in golden_test.cpp.
#include <doctest/doctest.h>

#include <cmath>

#include "losses/loss_cases.hpp"

namespace L = prefopt::losses;
namespace pt = prefopt::test;

namespace {
double ell(double z, double eps) {  // −(1−ε) log σ(z) − ε log σ(−z)
  auto ls = [](double x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); };
  return -(1 - eps) * ls(z) - eps * ls(-z);
}
double dell(double z, double eps) {  // its derivative
  auto s = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  return -(1 - eps) * s(-z) + eps * s(z);
}
} // namespace

TEST_CASE("aot pairs the k-th smallest policy margin with the k-th smallest reference margin") {
  prefopt::pair_batch<double> b;
  // policy margins pc − pr = 2, −1, 0.5; reference margins rc − rr = 0, 3, −2
  b.policy_chosen = {-10.0, -12.0, -9.5};
  b.policy_rejected = {-12.0, -11.0, -10.0};
  b.reference_chosen = {-20.0, -15.0, -14.0};
  b.reference_rejected = {-20.0, -18.0, -12.0};
  for (double eps : {0.0, 0.1}) {
    const double beta = 0.5;
    const auto r = prefopt::evaluate(L::aot{.beta = beta, .label_smoothing = eps}, b);
    // ranks: policy −1 (pair 1), 0.5 (pair 2), 2 (pair 0); reference −2, 0, 3
    // δ: pair 1: −1 − (−2) = 1; pair 2: 0.5 − 0 = 0.5; pair 0: 2 − 3 = −1
    const double delta[3] = {-1.0, 1.0, 0.5};
    double sum = 0;
    for (int i = 0; i < 3; ++i) {
      INFO("ε ", eps, " pair ", i);
      CHECK(r.per_pair[i] == doctest::Approx(ell(beta * delta[i], eps)).epsilon(1e-14));
      CHECK(r.d_policy_chosen[i] == doctest::Approx(beta * dell(beta * delta[i], eps) / 3).epsilon(1e-14));
      CHECK(r.d_policy_rejected[i] == -r.d_policy_chosen[i]);
      sum += ell(beta * delta[i], eps);
    }
    CHECK(r.loss == doctest::Approx(sum / 3).epsilon(1e-14));
  }
}

TEST_CASE("aot_unpaired pairs the k-th smallest chosen log-ratio with the k-th smallest rejected one") {
  prefopt::pair_batch<double> b;
  // chosen log-ratios pc − rc = 1, −2, 4; rejected pr − rr = 0.5, 3, −1
  b.policy_chosen = {-9.0, -12.0, -6.0};
  b.reference_chosen = {-10.0, -10.0, -10.0};
  b.policy_rejected = {-19.5, -17.0, -21.0};
  b.reference_rejected = {-20.0, -20.0, -20.0};
  const double beta = 0.2;
  const auto r = prefopt::evaluate(L::aot_unpaired{.beta = beta}, b);
  // chosen ranks: −2 (pair 1), 1 (pair 0), 4 (pair 2); rejected ranks: −1 (pair 2), 0.5 (pair 0), 3 (pair 1)
  // rank 0: chosen 1 vs rejected 2: δ = −2 − (−1) = −1, reported under pair 1
  // rank 1: chosen 0 vs rejected 0: δ = 1 − 0.5 = 0.5, reported under pair 0
  // rank 2: chosen 2 vs rejected 1: δ = 4 − 3 = 1,   reported under pair 2
  CHECK(r.per_pair[1] == doctest::Approx(ell(beta * -1.0, 0)).epsilon(1e-14));
  CHECK(r.per_pair[0] == doctest::Approx(ell(beta * 0.5, 0)).epsilon(1e-14));
  CHECK(r.per_pair[2] == doctest::Approx(ell(beta * 1.0, 0)).epsilon(1e-14));
  // The gradient of rank k goes to its chosen response (+) and its rejected response (−).
  CHECK(r.d_policy_chosen[1] == doctest::Approx(beta * dell(-beta, 0) / 3).epsilon(1e-14));
  CHECK(r.d_policy_rejected[2] == doctest::Approx(-beta * dell(-beta, 0) / 3).epsilon(1e-14));
  CHECK(r.d_policy_chosen[0] == doctest::Approx(beta * dell(0.5 * beta, 0) / 3).epsilon(1e-14));
  CHECK(r.d_policy_rejected[0] == doctest::Approx(-beta * dell(0.5 * beta, 0) / 3).epsilon(1e-14));
  CHECK(r.d_policy_chosen[2] == doctest::Approx(beta * dell(beta, 0) / 3).epsilon(1e-14));
  CHECK(r.d_policy_rejected[1] == doctest::Approx(-beta * dell(beta, 0) / 3).epsilon(1e-14));
}

TEST_CASE("aot equals sigmoid (with the same ε) when policy and reference rank the pairs alike") {
  auto b = pt::random_batch<double>(71, 8);
  // Make the reference margins a monotone function of the policy margins: same ranking.
  for (std::size_t i = 0; i < b.size(); ++i) {
    const double m = b.policy_chosen[i] - b.policy_rejected[i];
    b.reference_rejected[i] = b.reference_chosen[i] - (0.5 * m - 1.0);
  }
  const auto a = prefopt::evaluate(L::aot{.beta = 0.3}, b);
  const auto s = prefopt::evaluate(L::sigmoid{.beta = 0.3}, b);
  for (std::size_t i = 0; i < b.size(); ++i) {
    CHECK(a.per_pair[i] == doctest::Approx(s.per_pair[i]).epsilon(1e-13));
    CHECK(a.d_policy_chosen[i] == doctest::Approx(s.d_policy_chosen[i]).epsilon(1e-13));
  }
  // And a batch of one pair is always that pair's sigmoid loss.
  const auto one = pt::slice(pt::random_batch<double>(72, 3), 1, 2);
  CHECK(prefopt::evaluate(L::aot{.beta = 0.3}, one).loss ==
        doctest::Approx(prefopt::evaluate(L::sigmoid{.beta = 0.3}, one).loss).epsilon(1e-14));
  CHECK(prefopt::evaluate(L::aot_unpaired{.beta = 0.3}, one).loss ==
        doctest::Approx(prefopt::evaluate(L::sigmoid{.beta = 0.3}, one).loss).epsilon(1e-14));
}

TEST_CASE("aot: ties are broken by pair index, so results do not depend on the sort") {
  prefopt::pair_batch<double> b;
  b.policy_chosen = {-5.0, -6.0, -7.0};
  b.policy_rejected = {-6.0, -7.0, -7.5};  // margins 1, 1, 0.5: pairs 0 and 1 tie
  b.reference_chosen = {-5.0, -5.0, -5.0};
  b.reference_rejected = {-5.0, -7.0, -4.0};  // reference margins 0, 2, −1
  const auto r = prefopt::evaluate(L::aot{.beta = 1.0}, b);
  // policy ranks: 0.5 (pair 2), 1 (pair 0), 1 (pair 1); reference: −1, 0, 2
  CHECK(r.per_pair[2] == doctest::Approx(ell(0.5 + 1.0, 0)).epsilon(1e-14));
  CHECK(r.per_pair[0] == doctest::Approx(ell(1.0 - 0.0, 0)).epsilon(1e-14));
  CHECK(r.per_pair[1] == doctest::Approx(ell(1.0 - 2.0, 0)).epsilon(1e-14));
  const auto again = prefopt::evaluate(L::aot{.beta = 1.0}, b);
  CHECK(again.per_pair == r.per_pair);
}
