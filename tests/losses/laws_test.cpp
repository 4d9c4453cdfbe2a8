// Laws every loss (or a family) must satisfy, checked generically over the case list.
//
// Expected values come from the laws themselves (DESIGN.md, "laws tested generically"): shift
// invariance of reference-based losses, log 2 at zero margin, the special cases p = 1, ε = 0,
// λ = 0, reverse KL, α → 1, IPO's minimum at 1/(2β), d/dc = −d/dr for margin losses, mixture =
// weighted sum, the dual ascent update computed by hand, and exact gradient accumulation.
#include <doctest/doctest.h>

#include <boost/hana/at.hpp>
#include <cmath>
#include <string>
#include <utility>

#include "losses/loss_cases.hpp"

namespace L = prefopt::losses;
namespace pt = prefopt::test;
using prefopt::evaluate;
using prefopt::pair_batch;

namespace {

template <class R> void same_result(const R& a, const R& b, double rel, double abs) {
  CHECK(pt::close(a.loss, b.loss, rel, abs));
  REQUIRE(a.per_pair.size() == b.per_pair.size());
  for (std::size_t i = 0; i < a.per_pair.size(); ++i) {
    INFO("pair ", i);
    CHECK(pt::close(a.per_pair[i], b.per_pair[i], rel, abs));
    CHECK(pt::close(a.d_policy_chosen[i], b.d_policy_chosen[i], rel, abs));
    CHECK(pt::close(a.d_policy_rejected[i], b.d_policy_rejected[i], rel, abs));
  }
}

// A batch whose margins are all zero: policy = reference for both responses.
pair_batch<double> zero_margin_batch() {
  auto b = pt::random_batch<double>(21, 5);
  b.reference_chosen = b.policy_chosen;
  b.reference_rejected = b.policy_rejected;
  return b;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Generic laws over every case.

TEST_CASE_TEMPLATE_DEFINE("shift law: a constant added to a response's policy and reference log-probs", Case,
                          shift_law) {
  // Reference-based losses see only log π_θ − log π_ref, so adding c to both leaves them unchanged.
  // aot pairs ranks across the batch, so there the constant is shared by all chosen (rejected)
  // responses of the batch. Reference-free losses (sft, cpo, simpo, orpo, mixtures with sft)
  // genuinely change, and are only checked to do so.
  const auto loss = Case::make();
  const auto b = pt::random_batch<double>(31, 7);
  auto s = b;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool shared = (Case::flags_ & pt::props::batch_shift) != 0;
    const double c = shared ? 3.25 : 0.7 * double(i + 1), d = shared ? -1.5 : -0.45 * double(i + 2);
    s.policy_chosen[i] -= c;  // a likelier or less likely completion under both models
    s.reference_chosen[i] -= c;
    s.policy_rejected[i] -= d;
    s.reference_rejected[i] -= d;
  }
  INFO(std::string(Case::label));
  const auto r = evaluate(loss, b), rs = evaluate(loss, s);
  if constexpr ((Case::flags_ & pt::props::reference_free) != 0) {
    CHECK(std::fabs(r.loss - rs.loss) > 1e-6);
  } else {
    same_result(r, rs, 1e-9, 1e-12);
  }
}
TEST_CASE_TEMPLATE_APPLY(shift_law, pt::all_cases);

TEST_CASE_TEMPLATE_DEFINE("margin losses: d/d chosen = -d/d rejected", Case, margin_law) {
  const auto loss = Case::make();
  const auto r = evaluate(loss, pt::random_batch<double>(41, 6));
  INFO(std::string(Case::label));
  for (std::size_t i = 0; i < r.per_pair.size(); ++i) {
    if constexpr ((Case::flags_ & pt::props::margin_only) != 0) CHECK(r.d_policy_chosen[i] == -r.d_policy_rejected[i]);
  }
}
TEST_CASE_TEMPLATE_APPLY(margin_law, pt::all_cases);

TEST_CASE_TEMPLATE_DEFINE("gradient accumulation: micro-batches with the full batch's context sum to the batch",
                          Case, accumulation_law) {
  // For losses whose pairs are independent, evaluating each half of a batch with the whole batch's
  // batch_context (pair count, chosen token count) and summing gives the whole batch's loss and
  // gradients exactly (to rounding) — including the token-mean NLL of sft, cpo and orpo.
  const auto loss = Case::make();
  using Loss = decltype(loss);
  if constexpr (L::ElementwiseLoss<std::remove_cv_t<Loss>>) {
    const auto b = pt::random_batch<double>(51, 9);
    const auto ctx = prefopt::context_of(b);
    const auto full = evaluate(loss, b);
    const auto r1 = evaluate(loss, pt::slice(b, 0, 4), ctx);
    const auto r2 = evaluate(loss, pt::slice(b, 4, 9), ctx);
    INFO(std::string(Case::label));
    CHECK(pt::close(r1.loss + r2.loss, full.loss, 1e-12, 1e-14));
    for (std::size_t i = 0; i < 9; ++i) {
      const auto& r = i < 4 ? r1 : r2;
      const std::size_t j = i < 4 ? i : i - 4;
      CHECK(pt::close(r.d_policy_chosen[j], full.d_policy_chosen[i], 1e-12, 1e-15));
      CHECK(pt::close(r.d_policy_rejected[j], full.d_policy_rejected[i], 1e-12, 1e-15));
      CHECK(pt::close(r.per_pair[j], full.per_pair[i], 1e-12, 1e-15));
    }
    // Without the full batch's context, a token-mean loss would weight the halves wrongly.
    if constexpr (std::is_same_v<std::remove_cv_t<Loss>, L::sft>) {
      const auto h1 = evaluate(loss, pt::slice(b, 0, 4)), h2 = evaluate(loss, pt::slice(b, 4, 9));
      CHECK(std::fabs((4.0 * h1.loss + 5.0 * h2.loss) / 9.0 - full.loss) > 1e-9);
    }
  }
}
TEST_CASE_TEMPLATE_APPLY(accumulation_law, pt::all_cases);

// ---------------------------------------------------------------------------------------------
// Laws of single losses and combinators.

TEST_CASE("sigmoid at zero margin is log 2, with gradient -β/2 per pair") {
  const auto b = zero_margin_batch();
  for (double beta : {0.1, 1.0, 7.5}) {
    const auto r = evaluate(L::sigmoid{.beta = beta}, b);
    CHECK(r.loss == doctest::Approx(std::log(2.0)).epsilon(1e-15));
    for (std::size_t i = 0; i < b.size(); ++i) {
      CHECK(r.per_pair[i] == doctest::Approx(std::log(2.0)).epsilon(1e-15));
      CHECK(r.d_policy_chosen[i] == doctest::Approx(-beta / 2.0 / double(b.size())).epsilon(1e-15));
    }
  }
  const auto f = evaluate(L::sigmoid{.beta = 0.1}, b);
  CHECK(f.metrics.at("rewards/margins") == 0.0);
  CHECK(f.metrics.at("rewards/accuracies") == 0.0);
}

TEST_CASE("probabilistic with p = 1 is sigmoid (constant source with ε = 0, or a column of ones)") {
  const auto b = pt::random_batch<double>(61, 8);
  const auto ref = evaluate(L::sigmoid{.beta = 0.3}, b);
  same_result(evaluate(L::probabilistic{.beta = 0.3}, b), ref, 1e-14, 0.0);
  auto ones = b;
  ones.preference_prob.assign(b.size(), 1.0);
  same_result(evaluate(L::probabilistic{.beta = 0.3, .source = L::label_source::column}, ones), ref, 1e-14, 0.0);
  // p = 0 flips the pair: the loss of the swapped pair.
  auto zeros = b;
  zeros.preference_prob.assign(b.size(), 0.0);
  auto swapped = b;
  std::swap(swapped.policy_chosen, swapped.policy_rejected);
  std::swap(swapped.reference_chosen, swapped.reference_rejected);
  const auto flipped = evaluate(L::probabilistic{.beta = 0.3, .source = L::label_source::column}, zeros);
  CHECK(flipped.loss == doctest::Approx(evaluate(L::sigmoid{.beta = 0.3}, swapped).loss).epsilon(1e-14));
  // cDPO: constant ε equals the column 1 − ε.
  auto eps = b;
  eps.preference_prob.assign(b.size(), 0.85);
  same_result(evaluate(L::probabilistic{.beta = 0.3, .label_smoothing = 0.15}, b),
              evaluate(L::probabilistic{.beta = 0.3, .source = L::label_source::column}, eps), 1e-14, 1e-16);
}

TEST_CASE("robust with ε = 0 is sigmoid") {
  const auto b = pt::random_batch<double>(62, 8);
  same_result(evaluate(L::robust{.beta = 0.2, .label_smoothing = 0.0}, b), evaluate(L::sigmoid{.beta = 0.2}, b),
              1e-15, 0.0);
}

TEST_CASE("ipo: minimum at margin 1/(2β), summed and length-normalized forms") {
  for (bool normalized : {false, true}) {
    const L::ipo loss{.beta = 0.25, .normalize_by_length = normalized};
    pair_batch<double> b;
    b.chosen_tokens = {4};
    b.rejected_tokens = {10};
    b.reference_chosen = {-12.0};
    b.reference_rejected = {-30.0};
    b.policy_rejected = {-33.0};  // s_l = −3
    // The chosen log-prob that puts h = s_w/n_w − s_l/n_l (or s_w − s_l) at 1/(2β) = 2.
    const double nw = normalized ? 4.0 : 1.0, nl = normalized ? 10.0 : 1.0;
    const double sw = (2.0 + -3.0 / nl) * nw;
    b.policy_chosen = {-12.0 + sw};
    const auto at = evaluate(loss, b);
    INFO("normalized ", normalized);
    CHECK(at.loss < 1e-24);
    CHECK(std::fabs(at.d_policy_chosen[0]) < 1e-12);
    CHECK(std::fabs(at.d_policy_rejected[0]) < 1e-12);
    for (double delta : {-0.5, 0.5}) {
      auto off = b;
      off.policy_chosen[0] += delta;
      const auto r = evaluate(loss, off);
      CHECK(r.loss == doctest::Approx((delta / nw) * (delta / nw)).epsilon(1e-12));
    }
  }
}

TEST_CASE("mixture = weighted sum of its terms") {
  const auto b = pt::random_batch<double>(63, 7);
  auto check = [&](const auto& mix, auto&&... parts) {
    const auto r = evaluate(mix, b);
    double loss = 0.0;
    std::vector<double> pp(b.size(), 0.0), dc(b.size(), 0.0), dr(b.size(), 0.0);
    auto add = [&](double w, const auto& term) {
      const auto t = evaluate(term, b);
      loss += w * t.loss;
      for (std::size_t i = 0; i < b.size(); ++i) {
        pp[i] += w * t.per_pair[i];
        dc[i] += w * t.d_policy_chosen[i];
        dr[i] += w * t.d_policy_rejected[i];
      }
      CHECK(r.metrics.at("loss/" + std::string(std::remove_cvref_t<decltype(term)>::name)) ==
            doctest::Approx(t.loss).epsilon(1e-14));
    };
    (add(parts.first, parts.second), ...);
    CHECK(r.loss == doctest::Approx(loss).epsilon(1e-14));
    for (std::size_t i = 0; i < b.size(); ++i) {
      CHECK(r.per_pair[i] == doctest::Approx(pp[i]).epsilon(1e-14));
      CHECK(r.d_policy_chosen[i] == doctest::Approx(dc[i]).epsilon(1e-14));
      CHECK(r.d_policy_rejected[i] == doctest::Approx(dr[i]).epsilon(1e-14));
    }
  };
  check(pt::cases::mpo::make(), std::pair{0.8, L::sigmoid{.beta = 0.1}}, std::pair{0.2, L::bco_pair{.beta = 0.1}},
        std::pair{1.0, L::sft{}});
  check(pt::cases::mix_batch::make(), std::pair{0.5, L::sigmoid{.beta = 0.1}}, std::pair{0.5, L::aot{.beta = 0.1}});
  check(L::mix(L::term<L::ipo>{2.0, L::ipo{.beta = 0.5}}, L::term<L::hinge>{0.25, L::hinge{.beta = 0.5}}),
        std::pair{2.0, L::ipo{.beta = 0.5}}, std::pair{0.25, L::hinge{.beta = 0.5}});
  // The pointwise mixture is itself pointwise; one batch term makes it batch-coupled.
  static_assert(L::ElementwiseLoss<decltype(pt::cases::mpo::make())>);
  static_assert(!L::ElementwiseLoss<decltype(pt::cases::mix_batch::make())>);
}

TEST_CASE("f_divergence: reverse KL is the base loss; α → 1 tends to reverse KL") {
  const auto b = pt::random_batch<double>(64, 6);
  const auto base = evaluate(L::sigmoid{.beta = 0.2}, b);
  same_result(evaluate(L::with_divergence(L::sigmoid{.beta = 0.2}, L::divergence::reverse_kl), b), base, 0.0, 0.0);
  // TRL treats |α − 1| < 1e-6 as reverse KL exactly.
  for (double a : {1.0, 1.0 + 5e-7, 1.0 - 5e-7})
    same_result(evaluate(L::with_divergence(L::sigmoid{.beta = 0.2}, L::divergence::alpha, a), b), base, 0.0, 0.0);
  // Outside that band the α score (u^{α−1} − 1)/(α − 1) = log u + (α−1)(log u)²/2 + ... converges
  // to log u linearly in α − 1.
  double previous = 1e300;
  for (double gap : {1e-1, 1e-2, 1e-3, 1e-4}) {
    const auto r = evaluate(L::with_divergence(L::sigmoid{.beta = 0.2}, L::divergence::alpha, 1.0 + gap), b);
    const double err = std::fabs(r.loss - base.loss);
    CHECK(err < previous);
    CHECK(err < 50.0 * gap);
    previous = err;
  }
  // ipo as well (normalized form).
  same_result(evaluate(L::with_divergence(L::ipo{}, L::divergence::reverse_kl), b), evaluate(L::ipo{}, b), 0.0, 0.0);
}

TEST_CASE("constrained with λ = 0 is the base loss") {
  const auto b = pt::random_batch<double>(65, 6);
  same_result(evaluate(L::constrain(L::sigmoid{.beta = 0.1}, L::chosen_floor{.lambda = 0.0}), b),
              evaluate(L::sigmoid{.beta = 0.1}, b), 0.0, 0.0);
  same_result(evaluate(L::constrain(L::ipo{.beta = 0.1}, L::length_difference{.lambda = 0.0}), b),
              evaluate(L::ipo{.beta = 0.1}, b), 0.0, 0.0);
  same_result(evaluate(L::constrain(L::nca_pair{.beta = 0.1}, L::pair_cost{.lambda = 0.0, .bound = 3.0}), b),
              evaluate(L::nca_pair{.beta = 0.1}, b), 0.0, 0.0);
  same_result(evaluate(L::constrain(L::robust{.beta = 0.1, .label_smoothing = 0.1}, L::chosen_floor{.lambda = 0.0},
                                    L::pair_cost{.lambda = 0.0}),
                       b),
              evaluate(L::robust{.beta = 0.1, .label_smoothing = 0.1}, b), 0.0, 0.0);
}

TEST_CASE("constrained: DPOP and R-DPO terms sit inside the sigmoid, pair_cost adds λ(g − b)") {
  pair_batch<double> b;
  b.policy_chosen = {-10.0, -20.0};
  b.reference_chosen = {-8.0, -25.0};  // pair 0 fell 2 nats below the reference, pair 1 rose 5
  b.policy_rejected = {-30.0, -18.0};
  b.reference_rejected = {-28.0, -19.0};
  b.chosen_tokens = {12, 7};
  b.rejected_tokens = {20, 5};
  b.cost = {0.5, 2.0};
  const double beta = 0.1, lam = 50.0;
  auto logsig = [](double z) { return z >= 0 ? -std::log1p(std::exp(-z)) : z - std::log1p(std::exp(z)); };
  // DPOP: −log σ(β(s_w − s_l − λ·max(0, log π_ref(y_w) − log π_θ(y_w)))).
  const auto dpop = evaluate(L::constrain(L::sigmoid{.beta = beta}, L::chosen_floor{.lambda = lam}), b);
  CHECK(dpop.per_pair[0] == doctest::Approx(-logsig(beta * ((-2.0) - (-2.0) - lam * 2.0))).epsilon(1e-14));
  CHECK(dpop.per_pair[1] == doctest::Approx(-logsig(beta * (5.0 - 1.0))).epsilon(1e-14));
  // R-DPO with λ = α/β: −log σ(β(s_w − s_l) − α(n_w − n_l)).
  const auto rdpo = evaluate(L::constrain(L::sigmoid{.beta = beta}, L::length_difference{.lambda = 0.2 / beta}), b);
  CHECK(rdpo.per_pair[0] == doctest::Approx(-logsig(beta * 0.0 - 0.2 * (12 - 20))).epsilon(1e-14));
  CHECK(rdpo.per_pair[1] == doctest::Approx(-logsig(beta * 4.0 - 0.2 * (7 - 5))).epsilon(1e-14));
  // pair_cost: + λ·(c·(log π_θ(y_w) − log π_ref(y_w)) − b).
  const auto cost = evaluate(L::constrain(L::sigmoid{.beta = beta}, L::pair_cost{.lambda = 0.4, .bound = 0.3}), b);
  CHECK(cost.per_pair[0] == doctest::Approx(-logsig(beta * 0.0) + 0.4 * (0.5 * -2.0 - 0.3)).epsilon(1e-14));
  CHECK(cost.per_pair[1] == doctest::Approx(-logsig(beta * 4.0) + 0.4 * (2.0 * 5.0 - 0.3)).epsilon(1e-14));
  CHECK(cost.metrics.at("constraints/pair_cost") == doctest::Approx((0.5 * -2.0 + 2.0 * 5.0) / 2.0));
  CHECK(cost.metrics.at("lambdas/pair_cost") == 0.4);
}

TEST_CASE("constrained: dual ascent λ ← max(0, λ + η(mean g − b)), checked by hand") {
  pair_batch<double> b;
  b.policy_chosen = {-10.0, -20.0, -7.0};
  b.reference_chosen = {-8.0, -25.0, -6.5};  // floors g = 2, 0, 0.5 → mean 0.8333…
  b.policy_rejected = {-30.0, -18.0, -9.0};
  b.reference_rejected = {-28.0, -19.0, -9.5};
  b.chosen_tokens = {12, 7, 3};
  b.rejected_tokens = {20, 5, 4};  // n_w − n_l = −8, 2, −1 → mean −7/3
  b.cost = {0.5, 2.0, 1.0};        // c·(pc − rc) = −1, 10, −0.5 → mean 17/6
  auto loss = L::constrain(L::sigmoid{.beta = 0.1}, L::chosen_floor{.lambda = 1.0, .bound = 0.5, .rate = 2.0},
                           L::length_difference{.lambda = 0.3, .bound = 0.0, .rate = 0.1},
                           L::pair_cost{.lambda = 0.7, .bound = 1.0, .rate = 0.0});
  const auto means = loss.constraint_means(b);
  CHECK(means[0] == doctest::Approx(2.5 / 3.0));
  CHECK(means[1] == doctest::Approx(-7.0 / 3.0));
  CHECK(means[2] == doctest::Approx(8.5 / 3.0));
  loss.update(b);
  namespace hana = boost::hana;
  CHECK(hana::at_c<0>(loss.constraints).lambda == doctest::Approx(1.0 + 2.0 * (2.5 / 3.0 - 0.5)));  // 1.6667
  CHECK(hana::at_c<1>(loss.constraints).lambda == doctest::Approx(0.3 + 0.1 * (-7.0 / 3.0)));      // 0.0667
  CHECK(hana::at_c<2>(loss.constraints).lambda == 0.7);                                             // rate 0: fixed
  loss.update(b);
  CHECK(hana::at_c<0>(loss.constraints).lambda == doctest::Approx(1.0 + 2 * 2.0 * (2.5 / 3.0 - 0.5)));
  CHECK(hana::at_c<1>(loss.constraints).lambda == 0.0);  // 0.0667 − 0.2333 < 0: clamped at 0
  // The multipliers in use are reported.
  const auto r = evaluate(loss, b);
  CHECK(r.metrics.at("lambdas/chosen_floor") == doctest::Approx(1.0 + 4.0 * (2.5 / 3.0 - 0.5)));
  CHECK(r.metrics.at("constraints/length_difference") == doctest::Approx(-7.0 / 3.0));
  static_assert(L::StatefulLoss<decltype(loss)>);
}
