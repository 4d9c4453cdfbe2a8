// The combinators — f_divergence, weighted (WPO), mixture, constrained — by hand: the f-DPO
// scores and their caps, WPO weights, what a mixture and a constrained loss report and require.
//
// Expected values: the f-DPO paper's f'(u) for each divergence (Wang et al., ICLR 2024, table 1),
// TRL's exponent cap of 80, WPO's w = exp(ā_w + ā_l) (Zhou et al., EMNLP 2024, eq. 2), and the
// definitions in mixture.hpp and constrained.hpp, computed here.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "losses/loss_cases.hpp"

namespace L = prefopt::losses;
namespace pt = prefopt::test;

namespace {
double logsig(double x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); }

prefopt::pair_batch<double> one_pair(double ratio_c, double ratio_r) {
  prefopt::pair_batch<double> b;
  b.policy_chosen = {-10.0 + ratio_c};
  b.reference_chosen = {-10.0};
  b.policy_rejected = {-20.0 + ratio_r};
  b.reference_rejected = {-20.0};
  b.chosen_tokens = {4};
  b.rejected_tokens = {8};
  return b;
}
} // namespace

TEST_CASE("f_divergence: each divergence's score f'(u) inside the sigmoid, and its derivative") {
  const double beta = 0.3;
  struct div {
    L::divergence kind;
    double alpha;
    double (*f)(double, double);   // score of log-ratio r
    double (*df)(double, double);  // d score / d r
  };
  const div divs[] = {
      {L::divergence::reverse_kl, 0.5, [](double r, double) { return r; }, [](double, double) { return 1.0; }},
      {L::divergence::forward_kl, 0.5, [](double r, double) { return 1.0 - std::exp(-r); },
       [](double r, double) { return std::exp(-r); }},
      {L::divergence::js, 0.5, [](double r, double) { return std::log(2.0) + logsig(r); },
       [](double r, double) { return 1.0 / (1.0 + std::exp(r)); }},
      {L::divergence::alpha, 0.5, [](double r, double a) { return (std::exp((a - 1) * r) - 1) / (a - 1); },
       [](double r, double a) { return std::exp((a - 1) * r); }},
      {L::divergence::alpha, 1.7, [](double r, double a) { return (std::exp((a - 1) * r) - 1) / (a - 1); },
       [](double r, double a) { return std::exp((a - 1) * r); }},
  };
  for (const auto& d : divs) {
    for (const auto& at : {std::pair{1.5, -2.0}, std::pair{-0.7, 0.4}, std::pair{3.0, 3.0}}) {
      const double rc = at.first, rr = at.second;  // (not a structured binding: INFO captures it)
      const auto r = prefopt::evaluate(L::with_divergence(L::sigmoid{.beta = beta}, d.kind, d.alpha), one_pair(rc, rr));
      const double z = beta * (d.f(rc, d.alpha) - d.f(rr, d.alpha));
      const double g = -beta / (1.0 + std::exp(z));  // d(−log σ(z))/d s_w
      INFO("divergence ", int(d.kind), " α ", d.alpha, " at ", rc, ", ", rr);
      CHECK(r.loss == doctest::Approx(-logsig(z)).epsilon(1e-14));
      CHECK(r.d_policy_chosen[0] == doctest::Approx(g * d.df(rc, d.alpha)).epsilon(1e-13));
      CHECK(r.d_policy_rejected[0] == doctest::Approx(-g * d.df(rr, d.alpha)).epsilon(1e-13));
    }
  }
}

TEST_CASE("f_divergence: the exponent is capped at 80 (TRL's cap), with zero gradient past it") {
  // alpha = 0.5: exponent (α − 1)·r = −0.5·r, so r = −200 gives 100 > 80.
  const auto r = prefopt::evaluate(L::with_divergence(L::sigmoid{.beta = 1e-40}, L::divergence::alpha, 0.5),
                                   one_pair(-200.0, 0.0));
  const double s_cap = (std::exp(80.0) - 1.0) / -0.5;
  CHECK(r.loss == doctest::Approx(-logsig(1e-40 * s_cap)).epsilon(1e-12));
  CHECK(r.d_policy_chosen[0] == 0.0);
  // forward_kl alike: s = 1 − e^{min(−r, 80)}.
  const auto f = prefopt::evaluate(L::with_divergence(L::sigmoid{.beta = 1e-40}, L::divergence::forward_kl),
                                   one_pair(0.0, -90.0));
  CHECK(f.loss == doctest::Approx(-logsig(1e-40 * (0.0 - (1.0 - std::exp(80.0))))).epsilon(1e-12));
  CHECK(f.d_policy_rejected[0] == 0.0);
}

TEST_CASE("f_divergence in float: exponential scores are held within ±2^60, so ipo stays finite") {
  prefopt::pair_batch<float> b;
  b.policy_chosen = {-100.0f};
  b.reference_chosen = {-10.0f};  // r = −90: forward_kl's e^{90} overflows float, e^{80}² too
  b.policy_rejected = {-20.0f};
  b.reference_rejected = {-20.0f};
  b.chosen_tokens = {1};
  b.rejected_tokens = {1};
  for (auto kind : {L::divergence::forward_kl, L::divergence::alpha}) {
    const auto r = prefopt::evaluate(L::with_divergence(L::ipo{.beta = 0.1}, kind, 0.2), b);
    CHECK(std::isfinite(r.loss));
    CHECK(r.d_policy_chosen[0] == 0.0f);
    CHECK(std::isfinite(r.d_policy_rejected[0]));
    // The held score is −2^60 for the chosen side: h = −2^60 − 0.
    const double h = -0x1p60 - 0.0 - 5.0;
    CHECK(double(r.loss) == doctest::Approx(h * h).epsilon(1e-6));
  }
  // In double nothing is held: the value is TRL's.
  auto d = pt::convert<double>(b, [](float v) { return double(v); });
  const auto rd = prefopt::evaluate(L::with_divergence(L::ipo{.beta = 0.1}, L::divergence::alpha, 0.2), d);
  const double s = (std::exp(std::min(-0.8 * -90.0, 80.0)) - 1.0) / -0.8;
  CHECK(rd.loss == doctest::Approx((s - 5.0) * (s - 5.0)).epsilon(1e-12));
}

TEST_CASE("f_divergence keeps the base's name, columns and β") {
  const auto f = L::with_divergence(L::sigmoid_norm{.beta = 0.4}, L::divergence::js);
  CHECK(decltype(f)::name == "sigmoid_norm");
  CHECK(f.required_columns() == L::sigmoid_norm{}.required_columns());
  CHECK(L::reward_beta(f) == 0.4);
  static_assert(L::PointwiseLoss<decltype(f)>);
}

TEST_CASE("wpo: each pair's loss and gradient times exp(ā_w + ā_l)") {
  auto b = pt::random_batch<double>(81, 5);
  const double aligned[5][2] = {{-0.2, -0.4}, {0.1, -1.0}, {-2.0, -3.0}, {0.0, 0.0}, {0.5, 0.3}};
  for (std::size_t i = 0; i < 5; ++i) b.weight[i] = L::wpo_weight(aligned[i][0], aligned[i][1]);
  const auto w = prefopt::evaluate(L::wpo(L::ipo{.beta = 0.2}), b);
  const auto base = prefopt::evaluate(L::ipo{.beta = 0.2}, b);
  for (std::size_t i = 0; i < 5; ++i) {
    const double weight = std::exp(aligned[i][0]) * std::exp(aligned[i][1]);
    CHECK(b.weight[i] == doctest::Approx(weight).epsilon(1e-15));
    CHECK(w.per_pair[i] == doctest::Approx(weight * base.per_pair[i]).epsilon(1e-15));
    CHECK(w.d_policy_chosen[i] == doctest::Approx(weight * base.d_policy_chosen[i]).epsilon(1e-15));
    CHECK(w.d_policy_rejected[i] == doctest::Approx(weight * base.d_policy_rejected[i]).epsilon(1e-15));
  }
  CHECK((L::wpo(L::sigmoid{}).required_columns() & prefopt::columns::weight) != 0);
  // Rewards are those of the base loss, unweighted (TRL logs them before weighting).
  CHECK(w.metrics.at("rewards/margins") == base.metrics.at("rewards/margins"));
}

TEST_CASE("mixture: name, columns, β for rewards, per-term metrics") {
  const auto mpo = pt::cases::mpo::make();
  CHECK(decltype(mpo)::name == "mixture");
  CHECK(mpo.required_columns() == (prefopt::columns::reference | prefopt::columns::token_counts));
  CHECK(L::reward_beta(mpo) == 0.1);
  CHECK(L::reward_beta(1.0 * L::sft{} + 0.5 * L::ipo{.beta = 0.7}) == 0.7);  // the first term that has a β
  CHECK(L::reward_beta(1.0 * L::sft{} + 1.0 * L::sft{}) == 1.0);
  const auto r = prefopt::evaluate(mpo, pt::random_batch<double>(82, 4));
  CHECK(r.metrics.count("loss/sigmoid") == 1);
  CHECK(r.metrics.count("loss/bco_pair") == 1);
  CHECK(r.metrics.count("loss/sft") == 1);
  // Built three ways, the same type.
  using namespace prefopt::losses;
  const auto a = 0.8 * sigmoid{} + 0.2 * bco_pair{} + 1.0 * sft{};
  const auto b = mix(term<sigmoid>{0.8, {}}, term<bco_pair>{0.2, {}}, term<sft>{1.0, {}});
  const auto c = term{0.8, sigmoid{}} + term{0.2, bco_pair{}} + term{1.0, sft{}};
  static_assert(std::is_same_v<decltype(a), decltype(b)> && std::is_same_v<decltype(b), decltype(c)>);
}

TEST_CASE("constrained: name, columns, β, and metrics for repeated constraints") {
  const auto c = L::constrain(L::sigmoid{.beta = 0.25}, L::chosen_floor{.lambda = 1.0}, L::chosen_floor{.lambda = 2.0},
                              L::length_difference{});
  CHECK(decltype(c)::name == "sigmoid");
  CHECK(c.required_columns() == (prefopt::columns::reference | prefopt::columns::token_counts));
  CHECK(L::reward_beta(c) == 0.25);
  const auto r = prefopt::evaluate(c, pt::random_batch<double>(83, 4));
  CHECK(r.metrics.count("constraints/chosen_floor") == 1);
  CHECK(r.metrics.count("constraints/chosen_floor_1") == 1);  // the second one, by position
  CHECK(r.metrics.at("lambdas/chosen_floor_1") == 2.0);
  CHECK(r.metrics.count("constraints/length_difference") == 1);
}
