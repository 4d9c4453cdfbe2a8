// A user-defined loss, written as the docs show it ("copy this"), works everywhere a shipped loss
// does: it models the concept, evaluates, has a correct hand gradient (central differences and
// AutoDiff), and composes in a mixture, under f_divergence, with weighting and constraints.
//
// Expected values: the user's formulas, computed directly in this file.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <string_view>

#include <boost/hana/at.hpp>

#include "losses/autodiff.hpp"
#include "losses/loss_cases.hpp"

// ---- copy this: a loss written on scores ---------------------------------------------------------
// The exponential loss of the score margin: ℓ = exp(−β·(s_w − s_l)), s = log π_θ − log π_ref.
// dℓ/ds_w = −β·ℓ, dℓ/ds_l = β·ℓ. Written on scores, it works under f_divergence and margin
// constraints too.
namespace my {
struct exponential {
  double beta = 0.1;                                       // hyperparameters are aggregate members

  static constexpr std::string_view name = "exponential";  // used in errors and metrics
  unsigned required_columns() const { return prefopt::columns::reference; }
  void validate() const {
    if (!(beta > 0.0)) throw prefopt::config_error("loss 'exponential': field 'beta'", "must be > 0");
  }

  // Templated on the scalar: float, double, and AutoDiff scalars in tests. Call prefopt::num
  // functions with <T>, so an expression argument converts to T.
  template <class T>
  PREFOPT_HD prefopt::pair_output<T> scores(const T& sw, const T& sl, const prefopt::pair_input<T>&) const {
    const T b = T(beta);
    const T value = prefopt::num::exp<T>(b * (sl - sw));  // not -b * (...): see the note on AutoDiff below
    return {value, -b * value, b * value};
  }
};

// ---- copy this: a loss written on the pair --------------------------------------------------------
// DPO plus a per-token NLL of the chosen completion (as in RPO, Pang et al., "Iterative Reasoning
// Preference Optimization", 2024): ℓ = −log σ(β·h) − γ·log π_θ(y_w)/n_w.
struct dpo_nll {
  double beta = 0.1;
  double gamma = 1.0;

  static constexpr std::string_view name = "dpo_nll";
  unsigned required_columns() const { return prefopt::columns::reference | prefopt::columns::token_counts; }
  void validate() const {
    if (!(beta > 0.0)) throw prefopt::config_error("loss 'dpo_nll': field 'beta'", "must be > 0");
    if (!(gamma >= 0.0)) throw prefopt::config_error("loss 'dpo_nll': field 'gamma'", "must be >= 0");
  }

  template <class T> PREFOPT_HD prefopt::pair_output<T> pair(const prefopt::pair_input<T>& x) const {
    const T b = T(beta);
    const T g = T(gamma) / x.nc;  // constants combined into a named T (see the note below)
    const T z = b * ((x.pc - x.rc) - (x.pr - x.rr));
    const T s = prefopt::num::sigmoid<T>(-z);  // −d log σ(z)/dz
    return {-prefopt::num::log_sigmoid<T>(z) - g * x.pc, -b * s - g, b * s};
  }
  // Note for AutoDiff: Eigen's AutoDiffScalar<VectorXd> gives constants (β, token counts) an
  // empty derivative vector and widens it only when it meets a plain (named) AutoDiff value,
  // not inside a nested expression: `-b * s - T(gamma) / x.nc` or `-b * (sw - sl)` trip Eigen's
  // size check. Name a sub-expression made only of constants as a T (`g` above), and let a
  // named constant meet the log-prob expression first (`b * (sl - sw)`).
};

// ---- copy this: a constraint ---------------------------------------------------------------------
// Keep the rejected completion from gaining probability: g = max(0, log π_θ(y_l) − log π_ref(y_l)),
// added to the loss as λ·(g − bound).
struct rejected_ceiling {
  double lambda = 1.0, bound = 0.0, rate = 0.0;
  static constexpr std::string_view name = "rejected_ceiling";
  static constexpr prefopt::losses::placement where = prefopt::losses::placement::additive;
  unsigned required_columns() const { return prefopt::columns::reference; }
  template <class T> PREFOPT_HD prefopt::pair_output<T> g(const prefopt::pair_input<T>& x) const {
    const T v = x.pr - x.rr;
    if (v > T(0)) return {v, T(0), T(1)};
    return {T(0), T(0), T(0)};
  }
};
} // namespace my

static_assert(prefopt::losses::PreferenceLoss<my::exponential>);
static_assert(prefopt::losses::ScoreLoss<my::exponential>);
static_assert(prefopt::losses::PreferenceLoss<my::dpo_nll>);
static_assert(prefopt::losses::PointwiseLoss<my::dpo_nll>);
static_assert(prefopt::losses::ElementwiseLoss<my::dpo_nll>);
static_assert(prefopt::losses::Constraint<my::rejected_ceiling>);

namespace L = prefopt::losses;
namespace pt = prefopt::test;
using prefopt::evaluate;

namespace {

// Hand gradient vs central differences and AutoDiff, for any loss.
template <class Loss> void check_gradient(const Loss& loss, unsigned seed) {
  const auto b = pt::random_batch<double>(seed, 5);
  const auto r = evaluate(loss, b);
  const auto n = b.size();
  const auto m = static_cast<Eigen::Index>(2 * n);
  auto ab = pt::convert<pt::ad>(b, [m](double v) { return pt::ad_constant(v, m); });
  for (std::size_t i = 0; i < n; ++i) {
    ab.policy_chosen[i] = pt::ad_variable(b.policy_chosen[i], m, static_cast<Eigen::Index>(i));
    ab.policy_rejected[i] = pt::ad_variable(b.policy_rejected[i], m, static_cast<Eigen::Index>(n + i));
  }
  const auto ar = evaluate(loss, ab);
  for (std::size_t i = 0; i < n; ++i) {
    for (int side = 0; side < 2; ++side) {
      auto p = b, q = b;
      double& vp = side == 0 ? p.policy_chosen[i] : p.policy_rejected[i];
      double& vq = side == 0 ? q.policy_chosen[i] : q.policy_rejected[i];
      const double h = 1e-6 * std::max(1.0, std::fabs(vp));
      vp += h;
      vq -= h;
      const double fd = (evaluate(loss, p).loss - evaluate(loss, q).loss) / (2 * h);
      const double g = side == 0 ? r.d_policy_chosen[i] : r.d_policy_rejected[i];
      const double a = ar.loss.derivatives()(static_cast<Eigen::Index>(side == 0 ? i : n + i));
      INFO(std::string(Loss::name), " pair ", i, " side ", side, ": hand ", g, " fd ", fd, " autodiff ", a);
      CHECK(std::fabs(fd - g) <= 1e-6 * (std::fabs(g) + 1.0));
      CHECK(pt::close(g, a, 1e-10, 1e-13));
    }
  }
}

} // namespace

TEST_CASE("a user's score loss evaluates to its formula") {
  const auto b = pt::random_batch<double>(3, 6);
  const my::exponential loss{.beta = 0.2};
  const auto r = evaluate(loss, b);
  double sum = 0.0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    const double h = (b.policy_chosen[i] - b.reference_chosen[i]) - (b.policy_rejected[i] - b.reference_rejected[i]);
    CHECK(r.per_pair[i] == doctest::Approx(std::exp(-0.2 * h)).epsilon(1e-14));
    sum += std::exp(-0.2 * h);
  }
  CHECK(r.loss == doctest::Approx(sum / double(b.size())).epsilon(1e-14));
  // rewards/* use the loss's β, as for shipped losses.
  CHECK(r.metrics.count("rewards/margins") == 1);
  // Its validate() is called by evaluate().
  CHECK_THROWS_AS((void)evaluate(my::exponential{.beta = 0.0}, b), prefopt::config_error);
  // And the batch is checked against its required columns.
  auto no_ref = b;
  no_ref.reference_chosen.clear();
  no_ref.reference_rejected.clear();
  CHECK_THROWS_AS((void)evaluate(loss, no_ref), prefopt::shape_error);
}

TEST_CASE("a user's pair loss evaluates to its formula, also in float") {
  const auto b = pt::random_batch<double>(4, 6);
  const my::dpo_nll loss{.beta = 0.1, .gamma = 0.5};
  const auto r = evaluate(loss, b);
  const auto f = evaluate(loss, pt::convert<float>(b, [](double v) { return float(v); }));
  for (std::size_t i = 0; i < b.size(); ++i) {
    const double z = 0.1 * ((b.policy_chosen[i] - b.reference_chosen[i]) - (b.policy_rejected[i] - b.reference_rejected[i]));
    const double want = std::log1p(std::exp(-z)) - 0.5 * b.policy_chosen[i] / b.chosen_tokens[i];
    CHECK(r.per_pair[i] == doctest::Approx(want).epsilon(1e-13));
    CHECK(double(f.per_pair[i]) == doctest::Approx(want).epsilon(1e-5));
  }
}

TEST_CASE("a user's losses: hand gradients = central differences = AutoDiff") {
  check_gradient(my::exponential{.beta = 0.1}, 1);
  check_gradient(my::dpo_nll{.beta = 0.1, .gamma = 0.5}, 2);
}

TEST_CASE("a user's loss composes: mixture, f_divergence, weighting, constraints") {
  const auto b = pt::random_batch<double>(5, 6);
  const my::exponential e{.beta = 0.1};
  const my::dpo_nll d{.beta = 0.1, .gamma = 0.5};

  // In a mixture with shipped losses and with each other. `w * loss` for a loss outside
  // prefopt::losses needs the operator brought in (argument-dependent lookup does not see it);
  // a term{} works without it.
  using prefopt::losses::operator*;
  const auto mix = 0.5 * e + 0.25 * d + 1.0 * L::sft{};
  const auto mix2 = L::term{0.5, e} + L::term{0.25, d} + 1.0 * L::sft{};
  static_assert(std::is_same_v<decltype(mix), decltype(mix2)>);
  const auto rm = evaluate(mix, b);
  CHECK(rm.loss == doctest::Approx(0.5 * evaluate(e, b).loss + 0.25 * evaluate(d, b).loss + evaluate(L::sft{}, b).loss)
                       .epsilon(1e-14));
  CHECK(rm.metrics.count("loss/exponential") == 1);
  CHECK(rm.metrics.count("loss/dpo_nll") == 1);
  check_gradient(mix, 6);

  // Under an f-divergence: the scores become f'(u); for JS, s = log 2 + log σ(log u).
  const auto js = L::with_divergence(e, L::divergence::js);
  const auto rj = evaluate(js, b);
  for (std::size_t i = 0; i < b.size(); ++i) {
    auto s = [](double r) { return std::log(2.0) - std::log1p(std::exp(-r)); };
    const double sw = s(b.policy_chosen[i] - b.reference_chosen[i]), sl = s(b.policy_rejected[i] - b.reference_rejected[i]);
    CHECK(rj.per_pair[i] == doctest::Approx(std::exp(-0.1 * (sw - sl))).epsilon(1e-13));
  }
  check_gradient(js, 7);
  check_gradient(L::with_divergence(e, L::divergence::alpha, 0.4), 8);

  // WPO weighting and constraints, a shipped one and the user's own.
  const auto w = L::wpo(d);
  const auto rw = evaluate(w, b);
  for (std::size_t i = 0; i < b.size(); ++i)
    CHECK(rw.per_pair[i] == doctest::Approx(b.weight[i] * evaluate(d, b).per_pair[i]).epsilon(1e-14));
  check_gradient(w, 9);
  const auto c = L::constrain(e, L::chosen_floor{.lambda = 2.0}, my::rejected_ceiling{.lambda = 0.5});
  check_gradient(c, 10);
  auto cu = c;
  const auto before = evaluate(cu, b);
  CHECK(before.metrics.count("constraints/rejected_ceiling") == 1);
  boost::hana::at_c<1>(cu.constraints).rate = 1.0;
  cu.update(b);  // dual ascent works on the user's constraint too
  CHECK(boost::hana::at_c<1>(cu.constraints).lambda ==
        doctest::Approx(std::max(0.0, 0.5 + before.metrics.at("constraints/rejected_ceiling"))));
}
