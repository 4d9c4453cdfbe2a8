// KTO and apo_zero_unpaired on unpaired examples, by hand: the KL baseline z₀ (clamped at 0,
// detached), the class weights, the per-example losses and gradients, the metrics.
//
// Expected values: KTO paper eq. 7 and TRL's KTOTrainer._compute_loss (z₀ = max(0, mean KL
// log-ratio over mismatched pairs); rewards/chosen averaged over desirable examples only),
// computed here. Golden values from TRL itself are in golden_test.cpp.
#include <doctest/doctest.h>

#include <cmath>

#include "prefopt/losses.hpp"

namespace L = prefopt::losses;

namespace {
double sig(double x) { return 1.0 / (1.0 + std::exp(-x)); }

prefopt::unpaired_batch<double> batch() {
  prefopt::unpaired_batch<double> u;
  u.policy = {-10.0, -25.0, -7.0, -30.0, -12.0};
  u.reference = {-12.0, -24.0, -7.5, -26.0, -12.5};  // log-ratios 2, −1, 0.5, −4, 0.5
  u.desirable = {1, 0, 1, 0, 1};
  u.policy_kl = {-20.0, -15.0, -9.0};
  u.reference_kl = {-21.0, -16.5, -8.5};  // KL log-ratios 1, 1.5, −0.5 → mean 2/3
  return u;
}
} // namespace

TEST_CASE("kto: per-example losses and gradients with the KL baseline") {
  const auto u = batch();
  const double beta = 0.5, wd = 1.0, wu = 1.33, z0 = 2.0 / 3.0;
  const auto r = prefopt::evaluate(L::kto{.beta = beta, .desirable_weight = wd, .undesirable_weight = wu}, u);
  CHECK(r.kl == doctest::Approx(z0));
  CHECK(r.metrics.at("kl") == doctest::Approx(z0));
  const double ratio[5] = {2.0, -1.0, 0.5, -4.0, 0.5};
  double sum = 0.0;
  for (std::size_t i = 0; i < 5; ++i) {
    const bool good = u.desirable[i] != 0;
    const double a = good ? beta * (ratio[i] - z0) : beta * (z0 - ratio[i]);
    const double w = good ? wd : wu;
    const double loss = w * (1.0 - sig(a));
    const double grad = (good ? -1.0 : 1.0) * w * beta * sig(a) * sig(-a) / 5.0;
    INFO("example ", i);
    CHECK(r.per_example[i] == doctest::Approx(loss).epsilon(1e-14));
    CHECK(r.d_policy[i] == doctest::Approx(grad).epsilon(1e-14));
    sum += loss;
  }
  CHECK(r.loss == doctest::Approx(sum / 5.0).epsilon(1e-14));
  // rewards/* are averaged within each class, as TRL does.
  CHECK(r.metrics.at("rewards/chosen") == doctest::Approx(beta * 3.0 / 3.0));
  CHECK(r.metrics.at("rewards/rejected") == doctest::Approx(beta * -5.0 / 2.0));
  CHECK(r.metrics.at("rewards/margins") == doctest::Approx(beta * (1.0 + 2.5)));
  CHECK(r.metrics.at("logps/chosen") == doctest::Approx(-29.0 / 3.0));
  CHECK(r.metrics.at("logps/rejected") == doctest::Approx(-55.0 / 2.0));
}

TEST_CASE("kto: the baseline is clamped at 0, is 0 without KL rows, and is detached") {
  auto u = batch();
  u.reference_kl = {-15.0, -10.0, -5.0};  // KL log-ratios −5, −5, −4: mean < 0
  const auto r = prefopt::evaluate(L::kto{.beta = 0.5}, u);
  CHECK(r.kl == 0.0);
  auto none = batch();
  none.policy_kl.clear();
  none.reference_kl.clear();
  const auto n = prefopt::evaluate(L::kto{.beta = 0.5}, none);
  CHECK(n.kl == 0.0);
  for (std::size_t i = 0; i < 5; ++i) CHECK(n.per_example[i] == doctest::Approx(r.per_example[i]).epsilon(1e-15));
  // Detached: the gradient w.r.t. policy[i] is the direct term only; moving a KL row's policy
  // log-prob changes z₀ and the loss, but evaluate() reports no gradient for it (there is none
  // to report: TRL computes the KL rows under no_grad).
  const auto base = prefopt::evaluate(L::kto{.beta = 0.5}, batch());
  auto moved = batch();
  moved.policy_kl[0] += 1.5;
  const auto m = prefopt::evaluate(L::kto{.beta = 0.5}, moved);
  CHECK(m.kl == doctest::Approx(base.kl + 0.5));
  CHECK(m.loss != doctest::Approx(base.loss));
}

TEST_CASE("apo_zero_unpaired: 1 − σ(βr) for desirable, σ(βr) for undesirable; no KL") {
  const auto u = batch();
  const double beta = 0.2;
  const auto r = prefopt::evaluate(L::apo_zero_unpaired{.beta = beta}, u);
  CHECK(r.kl == 0.0);
  const double ratio[5] = {2.0, -1.0, 0.5, -4.0, 0.5};
  for (std::size_t i = 0; i < 5; ++i) {
    const double s = sig(beta * ratio[i]);
    const bool good = u.desirable[i] != 0;
    CHECK(r.per_example[i] == doctest::Approx(good ? 1.0 - s : s).epsilon(1e-14));
    CHECK(r.d_policy[i] == doctest::Approx((good ? -1.0 : 1.0) * beta * s * (1.0 - s) / 5.0).epsilon(1e-13));
  }
}

TEST_CASE("kto: a batch of one class reports that class's metrics only") {
  prefopt::unpaired_batch<double> u;
  u.policy = {-3.0, -4.0};
  u.reference = {-3.5, -3.0};
  u.desirable = {1, 1};
  const auto r = prefopt::evaluate(L::kto{}, u);
  CHECK(r.metrics.count("rewards/chosen") == 1);
  CHECK(r.metrics.count("rewards/rejected") == 0);
  CHECK(r.metrics.count("rewards/margins") == 0);
  CHECK(std::isfinite(r.loss));
  // And in float.
  prefopt::unpaired_batch<float> f;
  f.policy = {-3.0f, -4.0f};
  f.reference = {-3.5f, -3.0f};
  f.desirable = {1, 0};
  CHECK(std::isfinite(prefopt::evaluate(L::kto{}, f).loss));
}
