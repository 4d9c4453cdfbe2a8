// train::kto_trainer: unpaired examples with the KL baseline — exact gradient accumulation, a
// frozen reference, and learning (desirable responses gain probability) on the log-linear model.
#include <doctest/doctest.h>

#include <random>

#include "prefopt/losses/kto.hpp"
#include "prefopt/models/log_linear_problem.hpp"
#include "prefopt/optim/sgd.hpp"
#include "prefopt/train/kto_trainer.hpp"
#include "support/backends.hpp"
#include "support/unpaired_log_linear.hpp"

using namespace prefopt;
using B = backends::eigen;
using model = models::log_linear<B>;

namespace {
const auto problem = models::log_linear_problem::make(3, 4, 9);
model make_model() { return model(B{}, problem.prompts, problem.responses, problem.dims, problem.features, problem.theta_ref); }

// n examples (prompt, response, desirable = reward > 0) and n KL rows: tests/support/unpaired_log_linear.hpp.
using batch = test::unpaired_batch;
using test::slice;
batch make(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  return test::make_unpaired(problem, n, rng);
}
} // namespace

TEST_CASE("KTO gradient accumulation: micro-batches equal the whole batch, KL baseline included") {
  auto whole = make_model(), split = make_model(), ref = make_model();
  // move the policy away from the reference first, so the KL baseline is not zero
  for (auto* m : {&whole, &split}) m->parameters()[0] += 0.5f, m->parameters()[3] -= 0.4f;
  using T = train::kto_trainer<model, losses::kto, optim::sgd>;
  T a(whole, losses::kto{.beta = 0.5}, optim::sgd{.lr = 0.3}, {.model = &ref});
  T c(split, losses::kto{.beta = 0.5}, optim::sgd{.lr = 0.3}, {.model = &ref});
  const batch b = make(10, 3);
  const auto ra = a.step(b);
  const std::vector<batch> micro{slice(b, 0, 4), slice(b, 4, 10)};
  const auto rc = c.step(std::span<const batch>(micro));
  CHECK(ra.metrics.at("loss") == doctest::Approx(rc.metrics.at("loss")).epsilon(1e-12));
  CHECK(ra.metrics.at("kl") > 0.0);
  for (std::size_t i = 0; i < whole.parameters().size(); ++i)
    CHECK(split.parameters()[i] == doctest::Approx(whole.parameters()[i]).epsilon(1e-6));
}

TEST_CASE("KTO raises the probability of desirable responses") {
  auto policy = make_model(), ref = make_model();
  train::kto_trainer<model, losses::kto, optim::sgd> t(policy, losses::kto{.beta = 1.0}, optim::sgd{.lr = 0.5}, {.model = &ref});
  double gain = 0.0;
  for (int s = 0; s < 100; ++s) t.step(make(64, unsigned(s)));
  const auto lp = policy.all_logps(), rp = ref.all_logps();
  for (std::size_t i = 0; i < lp.size(); ++i) gain += (std::exp(lp[i]) - std::exp(rp[i])) * problem.reward[i];
  CHECK(gain > 0.0);
  CHECK(t.global_step() == 100);
}

TEST_CASE("a KTO trainer needs a reference") {
  auto policy = make_model();
  using T = train::kto_trainer<model, losses::kto, optim::sgd>;
  CHECK_THROWS_AS(T(policy, losses::kto{}, optim::sgd{}, {}), config_error);
}
