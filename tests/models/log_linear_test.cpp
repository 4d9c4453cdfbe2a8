// models::log_linear: its backward against finite differences, and DPO/IPO trained on sampled
// Bradley–Terry preferences reaching the optimum known in closed form (log_linear_problem.hpp:
// π* ∝ π_ref·exp(r/β) for DPO, π* ∝ π_ref·exp(p(y ≻ μ)/τ) for IPO).
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "prefopt/losses.hpp"
#include "prefopt/models/log_linear_problem.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/train/trainer.hpp"
#include "support/backends.hpp"

using namespace prefopt;

TEST_CASE_TEMPLATE("log_linear backward equals finite differences of Σ c_s·log π(y_s|x_s)", B, PREFOPT_CPU_BACKENDS) {
  const auto prob = models::log_linear_problem::make(3, 4, 5);
  models::log_linear<B> m(B{}, prob.prompts, prob.responses, prob.dims, prob.features, prob.theta_ref);
  const models::log_linear_input in{{0, 2, 1, 2, 0}, {3, 0, 1, 2, 3}};
  const std::vector<double> c{0.7, -1.3, 0.2, 2.0, -0.4};
  models::sequence_logps out;
  m.zero_grad();
  m.forward(in, out, {});
  m.backward(std::span<const double>(c));
  std::vector<float> grad(m.gradients().begin(), m.gradients().end());
  auto objective = [&] {
    models::sequence_logps o;
    m.forward(in, o, {.keep_activations = false});
    double s = 0.0;
    for (std::size_t i = 0; i < c.size(); ++i) s += c[i] * o.logp[i];
    return s;
  };
  auto theta = m.parameters();
  for (std::size_t j = 0; j < theta.size(); ++j) {
    const float h = 1e-2f, keep = theta[j];
    theta[j] = keep + h;
    const double up = objective();
    theta[j] = keep - h;
    const double down = objective();
    theta[j] = keep;
    CHECK(grad[j] == doctest::Approx((up - down) / (2.0 * h)).epsilon(2e-3).scale(1.0));
  }
}

TEST_CASE_TEMPLATE("log_linear rejects bad shapes and indices", B, PREFOPT_CPU_BACKENDS) {
  std::vector<float> f(10);
  CHECK_THROWS_AS(models::log_linear<B>(B{}, 2, 2, 3, f), shape_error);
  const auto prob = models::log_linear_problem::make(2, 3, 1);
  models::log_linear<B> m(B{}, prob.prompts, prob.responses, prob.dims, prob.features);
  models::sequence_logps out;
  CHECK_THROWS_WITH_AS(m.forward({{0, 2}, {1, 3}}, out, {}), doctest::Contains("sequence 1"), shape_error);
}

namespace {
// Full-batch training on 100 000 sampled pairs; returns mean KL(π* ‖ π_θ) over prompts.
template <class B, class Loss> double train_to_optimum(Loss loss, bool ipo, int steps) {
  const auto prob = models::log_linear_problem::make(4, 4, 7);
  using model = models::log_linear<B>;
  model policy(B{}, prob.prompts, prob.responses, prob.dims, prob.features, prob.theta_ref);
  model ref(B{}, prob.prompts, prob.responses, prob.dims, prob.features, prob.theta_ref);
  std::mt19937_64 rng(11);
  const auto pairs = prob.sample_pairs(100000, rng);
  const train::preference_batch<models::log_linear_input> batch{models::log_linear_problem::input_of(pairs), pairs.size()};
  train::training_args args;
  args.max_grad_norm = 0.0;
  args.schedule = {.kind = optim::schedule_kind::cosine, .total_steps = steps, .warmup_steps = 10};
  train::trainer<model, Loss, optim::adamw, train::reference::frozen<model>> t(policy, loss, optim::adamw{.lr = 0.1},
                                                                               {&ref}, args);
  for (int s = 0; s < steps; ++s) REQUIRE_FALSE(t.step(batch).skipped);
  const auto ref_logp = ref.all_logps();
  const auto target = ipo ? prob.ipo_optimum(ref_logp, loss.beta) : prob.dpo_optimum(ref_logp, loss.beta);
  return prob.mean_kl(target, policy.all_logps());
}
} // namespace

TEST_CASE_TEMPLATE("DPO (sigmoid) drives the policy to π* ∝ π_ref·exp(r/β)", B, PREFOPT_CPU_BACKENDS) {
  const double kl = train_to_optimum<B>(losses::sigmoid{.beta = 1.0}, false, 250);
  MESSAGE("DPO: mean KL(pi* || pi_theta) = " << kl << " on backend " << B::name);
  CHECK(kl < 1e-3);
}

TEST_CASE_TEMPLATE("IPO reaches its own optimum π* ∝ π_ref·exp(p(y ≻ μ)/τ)", B, PREFOPT_CPU_BACKENDS) {
  const double kl = train_to_optimum<B>(losses::ipo{.beta = 0.5, .normalize_by_length = false}, true, 250);
  MESSAGE("IPO: mean KL(pi* || pi_theta) = " << kl << " on backend " << B::name);
  CHECK(kl < 1e-3);
}
