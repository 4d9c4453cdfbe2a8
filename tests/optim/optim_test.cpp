// Optimizers, schedules and clipping against steps computed by hand (the arithmetic is written
// out in each case) and against Hugging Face's schedule formulas.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "prefopt/optim/adamw.hpp"
#include "prefopt/optim/clip.hpp"
#include "prefopt/optim/schedule.hpp"
#include "prefopt/optim/sgd.hpp"
#include "support/backends.hpp"

using namespace prefopt;

TEST_CASE_TEMPLATE("adamw: two steps by hand, with bias correction and decoupled decay", B, PREFOPT_CPU_BACKENDS) {
  B be;
  const optim::adamw opt{.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.5};
  auto st = opt.make_state(be, 1);
  std::vector<float> p{1.0f}, g{0.5f};
  const std::vector<models::parameter_slice> slices{{"w", 0, {1}, true, true}};
  // step 1: p = 1 − 0.1·0.5·1 = 0.95; m = 0.05, v = 0.00025; m̂ = 0.5, v̂ = 0.25; p = 0.95 − 0.1·0.5/(0.5 + 1e-8)
  opt.step(be, st, test::mspan(p), test::cspan(g), slices, 0.1);
  CHECK(p[0] == doctest::Approx(0.95 - 0.1 * 0.5 / (0.5 + 1e-8)).epsilon(1e-6));
  // step 2 with g = −1: p₁ = 0.85; p = p₁ − 0.05·p₁; m = 0.045 − 0.1 = −0.055; v = 0.00024975 + 0.001
  const double p1 = 0.95 - 0.1 * 0.5 / (0.5 + 1e-8);
  double p2 = p1 - 0.1 * 0.5 * p1;
  const double m = 0.9 * 0.05 + 0.1 * -1.0, v = 0.999 * 0.00025 + 0.001 * 1.0;
  p2 -= 0.1 * (m / (1 - 0.81)) / (std::sqrt(v / (1 - 0.999 * 0.999)) + 1e-8);
  g[0] = -1.0f;
  opt.step(be, st, test::mspan(p), test::cspan(g), slices, 0.1);
  CHECK(p[0] == doctest::Approx(p2).epsilon(1e-6));
  CHECK(st.steps == 2);
}

TEST_CASE_TEMPLATE("adamw: no decay on slices marked so, frozen slices untouched", B, PREFOPT_CPU_BACKENDS) {
  B be;
  const optim::adamw opt{.lr = 0.1, .weight_decay = 0.5};
  auto st = opt.make_state(be, 3);
  std::vector<float> p{1, 1, 1}, g{0, 0, 1};
  const std::vector<models::parameter_slice> slices{
      {"decayed", 0, {1}, true, true}, {"bias", 1, {1}, true, false}, {"frozen", 2, {1}, false, true}};
  opt.step(be, st, test::mspan(p), test::cspan(g), slices, 0.1);
  CHECK(p[0] == doctest::Approx(0.95));  // decay only: gradient 0 → Adam step 0
  CHECK(p[1] == doctest::Approx(1.0));
  CHECK(p[2] == doctest::Approx(1.0));
}

TEST_CASE_TEMPLATE("sgd with momentum, dampening, nesterov and weight decay, by hand", B, PREFOPT_CPU_BACKENDS) {
  B be;
  const std::vector<models::parameter_slice> slices{{"w", 0, {1}, true, true}};
  {
    const optim::sgd opt{.lr = 0.1, .momentum = 0.9, .dampening = 0.0, .weight_decay = 0.1, .nesterov = true};
    auto st = opt.make_state(be, 1);
    std::vector<float> p{2.0f}, g{1.0f};
    // step 1: g = 1 + 0.2 = 1.2; b = 1.2; g = 1.2 + 0.9·1.2 = 2.28; p = 2 − 0.228 = 1.772
    opt.step(be, st, test::mspan(p), test::cspan(g), slices, 0.1);
    CHECK(p[0] == doctest::Approx(1.772));
    // step 2: g = 1 + 0.1772 = 1.1772; b = 0.9·1.2 + 1.1772 = 2.2572; g = 1.1772 + 0.9·2.2572; p −= 0.1·g
    opt.step(be, st, test::mspan(p), test::cspan(g), slices, 0.1);
    CHECK(p[0] == doctest::Approx(1.772 - 0.1 * (1.1772 + 0.9 * 2.2572)).epsilon(1e-6));
  }
  {
    const optim::sgd opt{.lr = 0.5, .momentum = 0.5, .dampening = 0.5};
    auto st = opt.make_state(be, 1);
    std::vector<float> p{0.0f}, g{1.0f};
    opt.step(be, st, test::mspan(p), test::cspan(g), slices, 0.5);  // b = 1 (first step: no dampening)
    opt.step(be, st, test::mspan(p), test::cspan(g), slices, 0.5);  // b = 0.5 + 0.5 = 1
    CHECK(p[0] == doctest::Approx(-1.0));
  }
}

TEST_CASE("optimizers reject impossible hyperparameters, naming the field") {
  CHECK_THROWS_WITH_AS(optim::adamw{.lr = -1}.validate(), doctest::Contains("'lr'"), config_error);
  CHECK_THROWS_WITH_AS(optim::adamw{.beta2 = 1.0}.validate(), doctest::Contains("'beta2'"), config_error);
  CHECK_THROWS_WITH_AS(optim::adamw{.eps = 0}.validate(), doctest::Contains("'eps'"), config_error);
  CHECK_THROWS_WITH_AS((optim::sgd{.nesterov = true}.validate()), doctest::Contains("'nesterov'"), config_error);
}

TEST_CASE("schedules follow transformers' get_*_schedule_with_warmup") {
  const optim::schedule lin{.kind = optim::schedule_kind::linear, .total_steps = 10, .warmup_steps = 2};
  // warmup: t/2; then (10 − t)/8
  const double want_lin[] = {0.0, 0.5, 1.0, 7.0 / 8, 6.0 / 8, 5.0 / 8, 4.0 / 8, 3.0 / 8, 2.0 / 8, 1.0 / 8, 0.0, 0.0};
  for (int t = 0; t < 12; ++t) CHECK(lin.factor(t) == doctest::Approx(want_lin[t]));
  const optim::schedule cos{.kind = optim::schedule_kind::cosine, .total_steps = 10, .warmup_ratio = 0.1};
  CHECK(cos.warmup() == 1);
  CHECK(cos.factor(0) == 0.0);
  for (int t = 1; t <= 10; ++t)
    CHECK(cos.factor(t) == doctest::Approx(0.5 * (1 + std::cos(M_PI * double(t - 1) / 9.0))));
  const optim::schedule cw{.kind = optim::schedule_kind::constant_with_warmup, .warmup_steps = 4};
  CHECK(cw.factor(1) == 0.25);
  CHECK(cw.factor(100) == 1.0);
  CHECK_THROWS_AS((optim::schedule{.kind = optim::schedule_kind::cosine}.validate()), config_error);
  CHECK_THROWS_AS((optim::schedule{.warmup_ratio = 2.0}.validate()), config_error);
}

TEST_CASE_TEMPLATE("clip_grad_norm: torch's coefficient max/(n + 1e-6), norm returned before clipping", B,
                   PREFOPT_CPU_BACKENDS) {
  B be;
  std::vector<float> g{3, 4};
  CHECK(optim::clip_grad_norm(be, test::mspan(g), 1.0) == doctest::Approx(5.0));
  CHECK(g[0] == doctest::Approx(3.0 / (5.0 + 1e-6)));
  CHECK(g[1] == doctest::Approx(4.0 / (5.0 + 1e-6)));
  std::vector<float> small{0.3f, 0.4f};
  CHECK(optim::clip_grad_norm(be, test::mspan(small), 1.0) == doctest::Approx(0.5));
  CHECK(small[0] == 0.3f);  // under the threshold: untouched
  std::vector<float> bad{1.0f, NAN};
  CHECK(std::isnan(optim::clip_grad_norm(be, test::mspan(bad), 1.0)));
  CHECK(bad[0] == 1.0f);  // non-finite: untouched, the trainer skips the step
}
