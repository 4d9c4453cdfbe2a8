// Active selection (loop/active_selection.hpp): the rules, top-n and fractions, deterministic ties,
// and the policy's implicit margins on the log-linear model.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "prefopt/backends/eigen.hpp"
#include "prefopt/loop/active_selection.hpp"
#include "prefopt/models/log_linear_problem.hpp"

using namespace prefopt;
using loop::select_top;
using loop::selection;
using idx = std::vector<std::size_t>;

TEST_CASE("select keeps the highest priorities; ties in index order; top_n or a fraction") {
  const std::vector<double> p{0.1, 0.5, 0.3, 0.5, -1.0, 0.3};
  CHECK(select_top(p, {.top_n = 3}) == idx{1, 3, 2});
  CHECK(select_top(p, {.top_n = 4}) == idx{1, 3, 2, 5});
  CHECK(select_top(p, {.top_n = 100}) == idx{1, 3, 2, 5, 0, 4});
  CHECK(select_top(p, {.fraction = 0.5}) == idx{1, 3, 2});
  CHECK(select_top(p, {.fraction = 0.25}) == idx{1, 3});  // ⌈1.5⌉
  CHECK(select_top(p, {.fraction = 1.0}).size() == 6);
  CHECK(select_top(std::vector<double>{}, {.top_n = 2}).empty());
  CHECK_THROWS_AS(select_top(p, {}), config_error);
  CHECK_THROWS_AS(select_top(p, {.top_n = 2, .fraction = 0.5}), config_error);
  CHECK_THROWS_AS(select_top(p, {.top_n = 0}), config_error);
  CHECK_THROWS_AS(select_top(p, {.fraction = 0.0}), config_error);
  CHECK_THROWS_AS(select_top(p, {.fraction = 1.5}), config_error);
  const std::vector<double> with_nan{0.0, std::numeric_limits<double>::quiet_NaN()};
  CHECK_THROWS_WITH_AS(select_top(with_nan, {.top_n = 1}), "active selection: item 1: priority is NaN", data_error);
}

TEST_CASE("the rules: policy σ(βh) nearest ½, reward margins nearest 0, widest score spread") {
  // σ(0.5·h): h = 0 is the least certain, then |h| growing; the sign does not matter.
  const std::vector<double> h{3.0, -0.2, 8.0, 0.0, 0.2, -5.0};
  const auto pp = loop::policy_priorities(h, 0.5);
  CHECK(pp[3] == 0.0);
  CHECK(pp[1] == doctest::Approx(pp[4]));
  CHECK(pp[0] == doctest::Approx(-(1.0 / (1.0 + std::exp(-1.5)) - 0.5)));
  CHECK(select_top(pp, {.top_n = 3}) == idx{3, 1, 4});
  CHECK_THROWS_AS(loop::policy_priority(1.0, 0.0), config_error);

  const std::vector<double> rc{1.0, 2.0, 0.5, 4.0}, rr{0.0, 1.9, 1.0, -4.0};
  CHECK(select_top(loop::reward_priorities(rc, rr), {.top_n = 2}) == idx{1, 2});
  CHECK_THROWS_AS(loop::reward_priorities(rc, std::vector<double>{1.0}), shape_error);

  const std::vector<std::vector<double>> scores{{1, 1, 1}, {0, 5, 2}, {3, 3.5, 3}, {}};
  const auto sp = loop::spread_priorities(scores);
  CHECK(sp == std::vector<double>{0.0, 5.0, 0.5, 0.0});
  CHECK(select_top(sp, {.fraction = 0.5}) == idx{1, 2});
}

TEST_CASE("implicit margins of a log-linear policy against its reference; selection by them") {
  using B = backends::eigen;
  const auto prob = models::log_linear_problem::make(3, 4, 5);
  std::vector<float> theta(prob.theta_ref);
  for (std::size_t i = 0; i < theta.size(); ++i) theta[i] += 0.3f * float(int(i % 5) - 2);
  models::log_linear<B> policy(B{}, prob.prompts, prob.responses, prob.dims, prob.features, theta);
  models::log_linear<B> ref(B{}, prob.prompts, prob.responses, prob.dims, prob.features, prob.theta_ref);
  std::mt19937_64 rng(4);
  const auto pairs = prob.sample_pairs(40, rng);
  const train::preference_batch<models::log_linear_input> batch{models::log_linear_problem::input_of(pairs), pairs.size()};
  const auto h = loop::implicit_margins(policy, ref, batch);
  const auto lp = policy.all_logps(), lr = ref.all_logps();
  REQUIRE(h.size() == pairs.size());
  double largest = 0.0;
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    const auto at = [&](int y) { return std::size_t(pairs[i].prompt) * 4 + std::size_t(y); };
    const double want = (double(lp[at(pairs[i].chosen)]) - double(lr[at(pairs[i].chosen)])) -
                        (double(lp[at(pairs[i].rejected)]) - double(lr[at(pairs[i].rejected)]));
    CHECK(h[i] == doctest::Approx(want).epsilon(1e-6));
    largest = std::max(largest, std::abs(want));
  }
  CHECK(largest > 0.1);  // the policy differs from the reference
  const auto kept = select_top(loop::policy_priorities(h, 0.1), {.fraction = 0.25});
  REQUIRE(kept.size() == 10);
  double worst_kept = 0.0, best_dropped = std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i < h.size(); ++i) {
    const bool in = std::find(kept.begin(), kept.end(), i) != kept.end();
    if (in) worst_kept = std::max(worst_kept, std::abs(h[i]));
    else best_dropped = std::min(best_dropped, std::abs(h[i]));
  }
  CHECK(worst_kept <= best_dropped);  // the kept pairs are those with the smallest |h|
}
