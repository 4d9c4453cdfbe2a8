// train::trainer on the log-linear model: exact gradient accumulation for pointwise and
// batch-coupled losses, skipped non-finite steps, reference strategies, WPO weights from the
// model, dual ascent of a constrained loss, determinism, and TRL's metric names.
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "prefopt/losses.hpp"
#include "prefopt/losses/any_loss.hpp"
#include "prefopt/models/log_linear_problem.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/optim/sgd.hpp"
#include "prefopt/train/reference_dynamic.hpp"
#include "prefopt/train/trainer.hpp"
#include "support/backends.hpp"

using namespace prefopt;
using B = backends::eigen;
using model = models::log_linear<B>;
using batch = train::preference_batch<models::log_linear_input>;

namespace {
const auto problem = models::log_linear_problem::make(3, 4, 3);

model make_model() { return model(B{}, problem.prompts, problem.responses, problem.dims, problem.features, problem.theta_ref); }

std::vector<models::sampled_pair> pairs(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  return problem.sample_pairs(n, rng);
}
batch make_batch(const std::vector<models::sampled_pair>& p) { return {models::log_linear_problem::input_of(p), p.size()}; }

// One SGD step with the whole batch, and one with it split into micro-batches; returns both θ.
template <class Loss> std::pair<std::vector<float>, std::vector<float>> one_step_both_ways(Loss loss) {
  const auto p = pairs(12, 5);
  auto whole = make_model(), split = make_model(), ref = make_model();
  using T = train::trainer<model, Loss, optim::sgd, train::reference::frozen<model>>;
  T a(whole, loss, optim::sgd{.lr = 0.5}, {&ref}), b(split, loss, optim::sgd{.lr = 0.5}, {&ref});
  a.step(make_batch(p));
  const std::vector<batch> micro{make_batch({p.begin(), p.begin() + 5}), make_batch({p.begin() + 5, p.begin() + 9}),
                                 make_batch({p.begin() + 9, p.end()})};
  b.step(std::span<const batch>(micro));
  return {std::vector<float>(whole.parameters().begin(), whole.parameters().end()),
          std::vector<float>(split.parameters().begin(), split.parameters().end())};
}

void check_same(const std::pair<std::vector<float>, std::vector<float>>& r) {
  for (std::size_t i = 0; i < r.first.size(); ++i) CHECK(r.second[i] == doctest::Approx(r.first[i]).epsilon(1e-6));
}
} // namespace

TEST_CASE("gradient accumulation: k micro-batches equal one batch k times larger") {
  SUBCASE("pointwise loss, one pass per micro-batch") { check_same(one_step_both_ways(losses::sigmoid{.beta = 0.5})); }
  SUBCASE("token-mean NLL (sft) takes the whole batch's token count") {
    check_same(one_step_both_ways(0.5 * losses::sigmoid{} + 1.0 * losses::sft{}));
  }
  SUBCASE("batch-coupled loss (aot sorts across the whole batch)") { check_same(one_step_both_ways(losses::aot{.beta = 0.5})); }
  SUBCASE("mixture with a batch-coupled term") {
    check_same(one_step_both_ways(1.0 * losses::aot_unpaired{} + 0.3 * losses::ipo{}));
  }
}

TEST_CASE("a non-finite loss skips the update and leaves the weights untouched") {
  auto m = make_model();
  train::trainer<model, losses::sigmoid, optim::adamw> t(m, losses::sigmoid{}, optim::adamw{.lr = 0.1});
  auto b = make_batch(pairs(4, 1));
  b.reference_chosen = {-1, -1, NAN, -1};
  b.reference_rejected = {-1, -1, -1, -1};
  const std::vector<float> before(m.parameters().begin(), m.parameters().end());
  const auto r = t.step(b);
  CHECK(r.skipped);
  CHECK(r.skip_reason == "non-finite loss");
  CHECK(t.global_step() == 0);
  for (std::size_t i = 0; i < before.size(); ++i) CHECK(m.parameters()[i] == before[i]);
  b.reference_chosen[2] = -1;
  CHECK_FALSE(t.step(b).skipped);
  CHECK(t.global_step() == 1);
}

TEST_CASE("precomputed reference: missing columns are reported") {
  auto m = make_model();
  train::trainer<model, losses::sigmoid, optim::adamw> t(m, losses::sigmoid{}, optim::adamw{});
  CHECK_THROWS_WITH_AS(t.step(make_batch(pairs(3, 2))), doctest::Contains("reference::precomputed"), shape_error);
}

TEST_CASE("reference-free losses train with reference::none") {
  auto m = make_model();
  train::trainer<model, losses::simpo, optim::adamw, train::reference::none> t(m, losses::simpo{.beta = 2.0},
                                                                                optim::adamw{.lr = 0.05});
  const auto b = make_batch(pairs(64, 3));
  const double first = t.step(b).metrics.at("loss");
  double last = first;
  for (int i = 0; i < 30; ++i) last = t.step(b).metrics.at("loss");
  CHECK(last < first);
}

TEST_CASE("metrics carry TRL's names and the frozen reference gives zero rewards at step 0") {
  auto m = make_model(), ref = make_model();
  train::trainer<model, losses::sigmoid, optim::adamw, train::reference::frozen<model>> t(
      m, losses::sigmoid{}, optim::adamw{.lr = 1e-2}, {&ref},
      {.max_grad_norm = 1.0, .schedule = {.kind = optim::schedule_kind::linear, .total_steps = 10, .warmup_steps = 2}});
  const auto r = t.step(make_batch(pairs(8, 4)));
  for (const char* k : {"loss", "grad_norm", "learning_rate", "rewards/chosen", "rewards/rejected", "rewards/accuracies",
                        "rewards/margins", "logps/chosen", "logps/rejected"})
    CHECK_MESSAGE(r.metrics.count(k) == 1, k);
  CHECK(r.metrics.at("loss") == doctest::Approx(std::log(2.0)));
  CHECK(r.metrics.at("rewards/margins") == doctest::Approx(0.0));
  CHECK(r.metrics.at("learning_rate") == doctest::Approx(0.5e-2));  // after 1 of 2 warmup steps, as HF logs it
}

TEST_CASE("WPO: the trainer asks the model for aligned log-probs and weights each pair") {
  auto m = make_model(), ref = make_model(), m2 = make_model();
  const auto b = make_batch(pairs(6, 9));
  train::trainer<model, losses::weighted<losses::sigmoid>, optim::sgd, train::reference::frozen<model>> t(
      m, losses::wpo(losses::sigmoid{}), optim::sgd{.lr = 0.0}, {&ref});
  const double weighted_loss = t.step(b).metrics.at("loss");
  // by hand: w_i = exp(ā_w + ā_l), ā = log p − log Σ p² for a one-token sequence
  models::sequence_logps out;
  m2.forward(b.sequences, out, {.keep_activations = false, .wpo_weights = true});
  const auto lp = m2.all_logps();
  double want = 0.0;
  for (std::size_t i = 0; i < 6; ++i) {
    auto aligned = [&](std::size_t s) {
      double sq = 0.0;
      for (int y = 0; y < problem.responses; ++y) sq += std::exp(2.0 * lp[std::size_t(b.sequences.prompt[s]) * problem.responses + y]);
      return out.logp[s] - std::log(sq);
    };
    const double w = std::exp(aligned(i) + aligned(6 + i));
    want += w * std::log(2.0);  // policy = reference: the sigmoid loss is log 2 for every pair
  }
  CHECK(weighted_loss == doctest::Approx(want / 6.0));
}

TEST_CASE("constrained loss: dual ascent moves λ after each optimizer step") {
  auto m = make_model(), ref = make_model();
  auto loss = losses::constrain(losses::sigmoid{}, losses::pair_cost{.lambda = 0.0, .bound = -1.0, .rate = 0.5});
  using L = decltype(loss);
  train::trainer<model, L, optim::adamw, train::reference::frozen<model>> t(m, loss, optim::adamw{.lr = 0.0}, {&ref});
  auto b = make_batch(pairs(4, 6));
  b.cost = {1, 1, 1, 1};
  const auto r = t.step(b);
  // policy = reference → g = cost·(pc − rc) = 0; λ ← max(0, 0 + 0.5·(0 − (−1))) = 0.5
  CHECK(r.metrics.at("constraints/pair_cost") == doctest::Approx(0.0));
  CHECK(boost::hana::at_c<0>(t.loss().constraints).lambda == doctest::Approx(0.5));
}

TEST_CASE("a run with the same seed reproduces its numbers") {
  auto run = [] {
    auto m = make_model(), ref = make_model();
    train::trainer<model, losses::ipo, optim::adamw, train::reference::frozen<model>> t(m, losses::ipo{},
                                                                                       optim::adamw{.lr = 0.05}, {&ref});
    const auto b = make_batch(pairs(50, 8));
    for (int i = 0; i < 5; ++i) t.step(b);
    return std::vector<float>(m.parameters().begin(), m.parameters().end());
  };
  CHECK(run() == run());
}

TEST_CASE("impossible hyperparameters are rejected when the trainer is built") {
  auto m = make_model();
  using T = train::trainer<model, losses::robust, optim::adamw>;
  CHECK_THROWS_WITH_AS(T(m, losses::robust{.label_smoothing = 0.5}, optim::adamw{}), doctest::Contains("label_smoothing"),
                       config_error);
  using S = train::trainer<model, losses::sigmoid, optim::adamw>;
  CHECK_THROWS_AS(S(m, losses::sigmoid{.beta = 0.0}, optim::adamw{}), config_error);
  CHECK_THROWS_AS(S(m, losses::sigmoid{}, optim::adamw{.beta1 = 1.5}), config_error);
}

TEST_CASE("synced reference (TR-DPO): every tau steps the reference becomes alpha*policy + (1-alpha)*reference") {
  auto m = make_model(), ref = make_model();
  train::trainer<model, losses::sigmoid, optim::adamw, train::reference::synced<model>> t(
      m, losses::sigmoid{}, optim::adamw{.lr = 0.1}, {&ref, 2, 0.25});
  const auto b = make_batch(pairs(8, 10));
  const std::vector<float> r0(ref.parameters().begin(), ref.parameters().end());
  t.step(b);
  CHECK(std::vector<float>(ref.parameters().begin(), ref.parameters().end()) == r0);  // not yet: τ = 2
  t.step(b);
  for (std::size_t i = 0; i < r0.size(); ++i)
    CHECK(ref.parameters()[i] == doctest::Approx(0.25 * m.parameters()[i] + 0.75 * r0[i]).epsilon(1e-6));
}

TEST_CASE("reference::any chosen at run time refuses none for a reference-based loss") {
  auto m = make_model();
  using R = train::reference::any<model>;
  using T = train::trainer<model, losses::any_loss, optim::adamw, R>;
  losses::loss_settings s = losses::default_for(std::type_identity<losses::loss_settings>{});
  CHECK_THROWS_WITH_AS(T(m, losses::any_loss(s), optim::adamw{}, R(train::reference::none{})), doctest::Contains("reference-free"),
                       config_error);
  s.type = {"simpo"};
  CHECK_NOTHROW(T(m, losses::any_loss(s), optim::adamw{}, R(train::reference::none{})));
}
