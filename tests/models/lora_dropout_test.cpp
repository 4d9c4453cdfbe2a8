// LoRA adapter dropout (PEFT's lora_dropout): y = x·W + s·(dropout(x)·Aᵀ)·Bᵀ in training forwards.
// Expected values: the forward's masks must be the backend op's (core/random.hpp), so the adapted
// output of one linear is recomputed here by hand from the op; the backward is checked against
// central differences of the same dropped forward (same seed: a deterministic function of the
// weights); dropout must be off without a seed, in the reference (adapters off) and with TRL's
// default disable_dropout = true; the trainer's masks depend on (seed, step, micro-batch) only.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "prefopt/losses/sigmoid.hpp"
#include "prefopt/models/clone.hpp"
#include "prefopt/models/init.hpp"
#include "prefopt/models/lora.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/train/trainer.hpp"
#include "support/backends.hpp"
#include "support/tiny_transformer.hpp"

using namespace prefopt;

namespace {

models::transformer_config tiny(models::architecture arch) { return test::tiny_transformer(arch); }
const std::vector<models::tokenized_pair> pairs(test::tiny_pairs().begin(), test::tiny_pairs().begin() + 2);

template <class M> std::vector<double> logps(M& m, const models::token_batch& b, const models::forward_options& o) {
  models::sequence_logps out;
  m.forward(b, out, o);
  return out.logp;
}

// f(θ) = Σ_i c_i · logp_i(θ) under one fixed dropout seed; backward gives ∇f; compared with central
// differences along random directions (float32 model: step 3e-4, tolerance 2% of the scale;
// the difference error shrinks as h² there, so the gradient is exact up to it).
template <class M> void check_gradient(M& m, const models::token_batch& b, std::uint64_t seed) {
  const models::forward_options train{.dropout_seed = seed};
  const std::vector<double> c{0.7, -1.3, 0.4, 1.1};
  auto f = [&] {
    const auto lp = logps(m, b, {.keep_activations = false, .dropout_seed = seed});
    double s = 0.0;
    for (std::size_t i = 0; i < lp.size(); ++i) s += c[i] * lp[i];
    return s;
  };
  m.zero_grad();
  models::sequence_logps out;
  m.forward(b, out, train);
  m.backward(std::span<const double>(c));
  std::vector<float> g(m.gradients().size()), theta(m.parameters().size());
  m.backend().download(m.gradients(), std::span<float>(g));
  m.backend().download(m.parameters(), std::span<float>(theta));
  models::detail::normal_source n(99);
  for (int k = 0; k < 4; ++k) {
    std::vector<float> d(theta.size());
    double gd = 0.0;
    for (std::size_t i = 0; i < d.size(); ++i) {
      d[i] = float(n());
      gd += double(g[i]) * d[i];
    }
    const double h = 3e-4;
    auto at = [&](double t) {
      std::vector<float> p(theta);
      for (std::size_t i = 0; i < p.size(); ++i) p[i] += float(t) * d[i];
      m.backend().upload(std::span<const float>(p), m.parameters());
      return f();
    };
    const double fd = (at(h) - at(-h)) / (2 * h);
    m.backend().upload(std::span<const float>(theta), m.parameters());
    CAPTURE(k);
    CAPTURE(fd);
    CAPTURE(gd);
    CHECK(std::abs(fd - gd) <= 0.02 * std::max(1.0, std::abs(gd)));
  }
}

} // namespace

TEST_CASE_TEMPLATE("dropout op: inverted dropout with the mask of core/random.hpp, in place allowed", B, PREFOPT_CPU_BACKENDS) {
  B be;
  const std::size_t n = 200000;
  std::vector<float> x(n), y(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = 1.0f + float(i % 7);
  const float p = 0.3f;
  be.dropout(test::cspan(x), test::mspan(y), p, 1234);
  std::size_t zeros = 0;
  bool exact = true;
  for (std::size_t i = 0; i < n; ++i) {
    zeros += y[i] == 0.0f;
    exact = exact && y[i] == x[i] * dropout_multiplier(1234, i, p);
    if (y[i] != 0.0f) exact = exact && std::abs(y[i] - x[i] / (1.0f - p)) <= 1e-6f * y[i];
  }
  CHECK(exact);
  // Binomial(n, p): within 5 standard deviations.
  CHECK(std::abs(double(zeros) - p * n) < 5.0 * std::sqrt(n * p * (1 - p)));
  std::vector<float> z(x);
  be.dropout(test::cspan(z), test::mspan(z), p, 1234);
  CHECK(z == y);
  be.dropout(test::cspan(x), test::mspan(z), p, 1235);
  CHECK(z != y);
  be.dropout(test::cspan(x), test::mspan(z), 0.0f, 1234);
  CHECK(z == x);
  CHECK_THROWS_AS(be.dropout(test::cspan(x), test::mspan(z), 1.0f, 1), shape_error);
  std::vector<float> short_out(n - 1);
  CHECK_THROWS_AS(be.dropout(test::cspan(x), test::mspan(short_out), p, 1), shape_error);
}

TEST_CASE_TEMPLATE("LoRA dropout: forward uses the op's mask, backward matches differences (GPT-2, Llama)", B,
                   PREFOPT_CPU_BACKENDS) {
  for (bool prefix : {false, true}) {
    const auto batch = models::pack_pairs(pairs, prefix);
    SUBCASE("GPT-2: fused c_attn, attention and MLP c_proj (in = intermediate)") {
      models::gpt2<B> base(B{}, tiny(models::architecture::gpt2));
      models::init_weights(base, 3, {.initializer_range = 0.2});
      models::lora<models::gpt2<B>> m(std::move(base), {.r = 3, .alpha = 6.0, .dropout = 0.25, .target_modules = {"c_attn", "c_proj"}}, 4);
      test::randomize_trainable(m, 5);
      const auto plain = logps(m, batch, {.keep_activations = false});
      const auto a = logps(m, batch, {.keep_activations = false, .dropout_seed = 77});
      CHECK(a != plain);                                                              // dropout acts
      CHECK(logps(m, batch, {.keep_activations = false, .dropout_seed = 77}) == a);   // a function of the seed
      CHECK(logps(m, batch, {.keep_activations = false, .dropout_seed = 78}) != a);
      CHECK(logps(m, batch, {.keep_activations = false, .adapters = false, .dropout_seed = 77}) ==
            logps(m, batch, {.keep_activations = false, .adapters = false}));         // the base never drops
      check_gradient(m, batch, 77);
    }
    SUBCASE("Llama: q_proj, v_proj, down_proj") {
      models::llama<B> base(B{}, tiny(models::architecture::llama));
      models::init_weights(base, 6, {.initializer_range = 0.2});
      models::lora<models::llama<B>> m(std::move(base), {.r = 2, .alpha = 4.0, .dropout = 0.4, .target_modules = {"q_proj", "v_proj", "down_proj"}}, 7);
      test::randomize_trainable(m, 8);
      CHECK(logps(m, batch, {.keep_activations = false, .dropout_seed = 5}) != logps(m, batch, {.keep_activations = false}));
      check_gradient(m, batch, 5);
    }
  }
}

TEST_CASE_TEMPLATE("LoRA dropout is inverted dropout: over many seeds the log-probs average to the undropped ones", B,
                   PREFOPT_CPU_BACKENDS) {
  // E[dropout(x)] = x: with small adapters (log-probs nearly linear in the adapter output) the
  // mean over 400 seeds of the dropped log-probs equals the undropped ones within 4 standard
  // errors (plus 2% of the adapter's effect for the remaining nonlinearity).
  auto cfg = tiny(models::architecture::llama);
  cfg.layers = 1;
  models::llama<B> base(B{}, cfg);
  models::init_weights(base, 9, {.initializer_range = 0.2});
  models::lora<models::llama<B>> m(std::move(base), {.r = 2, .alpha = 2.0, .dropout = 0.5, .target_modules = {"v_proj"}}, 10);
  test::randomize_trainable(m, 11);
  const auto batch = models::pack_pairs(pairs, false);
  // Scale adapters down so log-probs are close to linear in the adapter output.
  std::vector<float> w(m.parameters().size());
  m.backend().download(m.parameters(), std::span<float>(w));
  for (auto& x : w) x *= 0.25f;
  m.backend().upload(std::span<const float>(w), m.parameters());
  const auto base_lp = logps(m, batch, {.keep_activations = false, .adapters = false});
  const auto full = logps(m, batch, {.keep_activations = false});
  const int draws = 400;
  std::vector<double> mean(full.size(), 0.0), sq(full.size(), 0.0);
  for (int s = 0; s < draws; ++s) {
    const auto lp = logps(m, batch, {.keep_activations = false, .dropout_seed = std::uint64_t(1000 + s)});
    for (std::size_t i = 0; i < lp.size(); ++i) {
      mean[i] += lp[i] / draws;
      sq[i] += lp[i] * lp[i] / draws;
    }
  }
  double strongest = 0.0;
  for (std::size_t i = 0; i < full.size(); ++i) {
    const double se = std::sqrt(std::max(0.0, sq[i] - mean[i] * mean[i]) / draws);
    const double effect = std::abs(full[i] - base_lp[i]);  // what the adapters change
    strongest = std::max(strongest, effect / se);
    CAPTURE(i);
    // Without the 1/(1−p) rescaling the mean would sit at base + (1−p)·(full − base).
    CHECK(std::abs(mean[i] - full[i]) < 4 * se + 0.02 * effect);
  }
  CHECK(strongest > 20.0);  // the adapters' effect stands far above the sampling noise
}

TEST_CASE_TEMPLATE("trainer: disable_dropout (TRL's default) trains as lora_dropout = 0; enabled, masks follow (seed, step)",
                   B, PREFOPT_CPU_BACKENDS) {
  using model = models::lora<models::gpt2<B>>;
  using trainer = train::trainer<model, losses::sigmoid, optim::adamw, train::reference::adapter_disabled<model>>;
  const auto batch_seq = models::pack_pairs(pairs, true);
  train::preference_batch<models::token_batch> b{.sequences = batch_seq, .pairs = pairs.size()};
  auto make = [&](double dropout) {
    models::gpt2<B> base(B{}, tiny(models::architecture::gpt2));
    models::init_weights(base, 21, {.initializer_range = 0.2});
    return model(std::move(base), {.r = 2, .alpha = 4.0, .dropout = dropout, .target_modules = {"c_attn", "c_fc"}}, 22);
  };
  auto run = [&](double dropout, bool disable, std::uint64_t seed) {
    model m = make(dropout);
    trainer t(m, losses::sigmoid{.beta = 0.5}, optim::adamw{.lr = 1e-2}, {&m}, {.disable_dropout = disable, .seed = seed});
    std::vector<double> losses;
    for (int s = 0; s < 3; ++s) losses.push_back(t.step(b).metrics.at("loss"));
    std::vector<float> w(m.parameters().size());
    m.backend().download(m.parameters(), std::span<float>(w));
    return std::pair{losses, w};
  };
  const auto none = run(0.0, true, 1);
  CHECK(run(0.3, true, 1) == none);              // disabled: exactly the no-dropout run
  const auto on = run(0.3, false, 1);
  CHECK(on.second != none.second);               // enabled: the masks change the updates
  CHECK(run(0.3, false, 1) == on);               // same seed: same masks, same run
  CHECK(run(0.3, false, 2).second != on.second); // another seed: other masks
  // Evaluation never drops.
  model m = make(0.3);
  trainer t(m, losses::sigmoid{.beta = 0.5}, optim::adamw{.lr = 1e-2}, {&m}, {.disable_dropout = false});
  CHECK(t.evaluate_batch(b) == t.evaluate_batch(b));
  model m0 = make(0.0);
  trainer t0(m0, losses::sigmoid{.beta = 0.5}, optim::adamw{.lr = 1e-2}, {&m0});
  CHECK(t.evaluate_batch(b).at("loss") == t0.evaluate_batch(b).at("loss"));
}
