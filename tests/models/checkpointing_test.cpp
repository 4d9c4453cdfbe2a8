// Activation (gradient) checkpointing: transformer::set_gradient_checkpointing(true) keeps only each
// layer's input in a training forward and recomputes the layer in backward. Expected values: the
// same model without checkpointing — log-probs and every gradient must be bit-equal (the recompute
// runs the same ops in the same order on the same inputs), on the golden GPT-2, Llama and Qwen2
// checkpoints (full and LoRA with adapter dropout on) and on 4-layer random models (layers that are
// recomputed with their input swapped into the workspace), over every CPU backend; the trainer's
// weights after 3 steps; and the bytes the model allocates for activations, counted exactly.
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "prefopt/losses/sigmoid.hpp"
#include "prefopt/models/clone.hpp"
#include "prefopt/models/init.hpp"
#include "prefopt/models/lora.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/train/trainer.hpp"
#include "support/backends.hpp"
#include "support/data.hpp"
#include "support/tiny_transformer.hpp"

using namespace prefopt;

namespace {

const auto& pairs = test::tiny_pairs();
models::transformer_config tiny(models::architecture arch, int layers) { return test::tiny_transformer(arch, layers, 64); }

struct pass {
  std::vector<double> logp;
  std::vector<float> grad;
};

// One training forward (dropout seeded when given) and backward of Σ_i c_i·logp_i.
template <class M> pass run(M& m, const models::token_batch& b, bool checkpointing, std::optional<std::uint64_t> seed) {
  m.set_gradient_checkpointing(checkpointing);
  CHECK(m.gradient_checkpointing() == checkpointing);
  m.zero_grad();
  models::sequence_logps out;
  m.forward(b, out, {.dropout_seed = seed});
  std::vector<double> c(out.size());
  for (std::size_t i = 0; i < c.size(); ++i) c[i] = 0.3 + 0.7 * double(i % 3) - 0.9 * double(i % 2);
  m.backward(std::span<const double>(c));
  pass p{out.logp, std::vector<float>(m.gradients().size())};
  m.backend().download(m.gradients(), std::span<float>(p.grad));
  return p;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// With and without checkpointing, twice over (the model switches back and forth), for packed and
// prefix-shared batches.
template <class M> void check_bit_equal(M& m, std::optional<std::uint64_t> seed) {
  for (bool shared : {false, true}) {
    CAPTURE(shared);
    const auto batch = models::pack_pairs(pairs, shared);
    const pass plain = run(m, batch, false, seed);
    const pass ckpt = run(m, batch, true, seed);
    const pass again = run(m, batch, false, seed);
    const pass ckpt2 = run(m, batch, true, seed);
    REQUIRE(plain.grad.size() > 0);
    CHECK(ckpt.logp == plain.logp);
    CHECK(bit_equal(ckpt.grad, plain.grad));
    CHECK(bit_equal(again.grad, plain.grad));
    CHECK(bit_equal(ckpt2.grad, plain.grad));
    double norm = 0.0;
    for (float g : plain.grad) norm += double(g) * g;
    CHECK(norm > 0.0);  // gradients that flow, so equality says something
  }
}

template <class Model> void golden(const std::string& arch, std::vector<std::string> targets) {
  using B = typename Model::backend_type;
  auto m = models::from_pretrained<Model>(B{}, test::data_path("models/" + arch));
  SUBCASE("full fine-tuning") { check_bit_equal(m, std::nullopt); }
  SUBCASE("LoRA with adapter dropout 0.3") {
    models::lora<Model> lm(std::move(m), {.r = 4, .alpha = 8.0, .dropout = 0.3, .target_modules = targets}, 5);
    test::randomize_trainable(lm, 6);
    check_bit_equal(lm, 1234);
    // The masks act: another seed gives other gradients (so the equal ones above were dropped alike).
    CHECK(!bit_equal(run(lm, models::pack_pairs(pairs, false), true, 1235).grad,
                     run(lm, models::pack_pairs(pairs, false), true, 1234).grad));
  }
}

// Counts every byte the model asks its backend for (fresh buffers only; nothing is freed here).
struct counting_eigen : backends::eigen {
  static inline std::size_t bytes = 0;
  template <class T> host_buffer<T> allocate(std::size_t n) const {
    bytes += n * sizeof(T);
    return backends::eigen::allocate<T>(n);
  }
};

} // namespace

TEST_CASE_TEMPLATE("checkpointing: GPT-2 golden model, full and LoRA (c_attn, c_proj), bit-equal", B, PREFOPT_CPU_BACKENDS) {
  golden<models::gpt2<B>>("gpt2", {"c_attn", "c_proj"});
}

TEST_CASE_TEMPLATE("checkpointing: Llama golden model, full and LoRA, bit-equal", B, PREFOPT_CPU_BACKENDS) {
  golden<models::llama<B>>("llama", {"q_proj", "v_proj", "o_proj", "gate_proj"});
}

TEST_CASE_TEMPLATE("checkpointing: Qwen2 golden model, full and LoRA, bit-equal", B, PREFOPT_CPU_BACKENDS) {
  golden<models::llama<B>>("qwen2", {"q_proj", "k_proj", "down_proj"});
}

TEST_CASE_TEMPLATE("checkpointing: 4-layer random GPT-2 and Llama (middle layers recomputed), full and LoRA", B,
                   PREFOPT_CPU_BACKENDS) {
  SUBCASE("GPT-2") {
    models::gpt2<B> m(B{}, tiny(models::architecture::gpt2, 4));
    models::init_weights(m, 3, {.initializer_range = 0.2});
    check_bit_equal(m, std::nullopt);
    models::lora<models::gpt2<B>> lm(std::move(m), {.r = 3, .alpha = 6.0, .dropout = 0.25, .target_modules = {"c_attn", "c_fc", "c_proj"}}, 4);
    test::randomize_trainable(lm, 5);
    check_bit_equal(lm, 77);
  }
  SUBCASE("Llama") {
    models::llama<B> m(B{}, tiny(models::architecture::llama, 4));
    models::init_weights(m, 6, {.initializer_range = 0.2});
    check_bit_equal(m, std::nullopt);
    models::lora<models::llama<B>> lm(std::move(m), {.r = 2, .alpha = 4.0, .dropout = 0.4, .target_modules = {"q_proj", "v_proj", "up_proj", "down_proj"}}, 7);
    test::randomize_trainable(lm, 8);
    check_bit_equal(lm, 5);
  }
}

TEST_CASE("checkpointing: switching it after a forward asks for a new forward; inference forwards are unchanged") {
  using B = backends::eigen;
  models::llama<B> m(B{}, tiny(models::architecture::llama, 3));
  models::init_weights(m, 9, {.initializer_range = 0.2});
  const auto batch = models::pack_pairs(pairs, false);
  models::sequence_logps out, inf;
  m.forward(batch, out);
  m.set_gradient_checkpointing(true);
  const std::vector<double> d(out.size(), 1.0);
  CHECK_THROWS_AS(m.backward(std::span<const double>(d)), error);
  m.forward(batch, inf, {.keep_activations = false});
  CHECK(inf.logp == out.logp);
  CHECK_THROWS_AS(m.backward(std::span<const double>(d)), error);
}

TEST_CASE("checkpointing: the activations kept fall by every layer's workspace but one, counted in bytes") {
  // A fresh model allocates its activation buffers in its first training forward and backward; the
  // bytes asked for are the same with and without checkpointing except for the L − 1 layers whose
  // activations (all but x) are not kept.
  for (auto arch : {models::architecture::gpt2, models::architecture::llama}) {
    CAPTURE(int(arch));
    const auto cfg = tiny(arch, 4);
    const auto batch = models::pack_pairs(pairs, false);
    auto allocated = [&](auto tag, bool checkpointing) {
      using M = typename decltype(tag)::type;
      M m(counting_eigen{}, cfg);
      models::init_weights(m, 1, {.initializer_range = 0.2});
      m.set_gradient_checkpointing(checkpointing);
      m.zero_grad();
      const std::size_t before = counting_eigen::bytes;
      models::sequence_logps out;
      m.forward(batch, out);
      const std::vector<double> d(out.size(), 1.0);
      m.backward(std::span<const double>(d));
      return counting_eigen::bytes - before;
    };
    const bool llama = arch == models::architecture::llama;
    const std::size_t plain = llama ? allocated(std::type_identity<models::llama<counting_eigen>>{}, false)
                                    : allocated(std::type_identity<models::gpt2<counting_eigen>>{}, false);
    const std::size_t ckpt = llama ? allocated(std::type_identity<models::llama<counting_eigen>>{}, true)
                                   : allocated(std::type_identity<models::gpt2<counting_eigen>>{}, true);
    const std::size_t t = batch.tokens.size(), C = std::size_t(cfg.hidden), F = std::size_t(cfg.intermediate);
    const std::size_t QD = std::size_t(cfg.heads) * std::size_t(cfg.head_dim), KD = std::size_t(cfg.kv_heads) * std::size_t(cfg.head_dim);
    // n1, xmid, n2 [T × C]; q, att [T × Hq·D]; k, v [T × Hkv·D]; GPT-2's a, Llama's gate and up
    // [T × F] (the MLP activation is recomputed, kept by no layer); mean1, rstd1, mean2, rstd2 [T]; lse.
    const std::size_t layer_floats = t * (3 * C + 2 * QD + 2 * KD + (llama ? 2 : 1) * F + 4) + attention_lse_size(t, cfg.heads);
    CHECK(plain - ckpt == std::size_t(cfg.layers - 1) * layer_floats * sizeof(float));
  }
}

TEST_CASE_TEMPLATE("checkpointing: 3 trainer steps (2 micro-batches each) give bit-identical weights and metrics", B,
                   PREFOPT_CPU_BACKENDS) {
  const auto b1 = models::pack_pairs({pairs[0], pairs[1]}, true), b2 = models::pack_pairs({pairs[2]}, true);
  std::vector<train::preference_batch<models::token_batch>> micro{{.sequences = b1, .pairs = 2}, {.sequences = b2, .pairs = 1}};
  SUBCASE("GPT-2, full fine-tuning, frozen reference") {
    using model = models::gpt2<B>;
    using trainer = train::trainer<model, losses::sigmoid, optim::adamw, train::reference::frozen<model>>;
    auto train3 = [&](bool checkpointing) {
      model m(B{}, tiny(models::architecture::gpt2, 3));
      models::init_weights(m, 11, {.initializer_range = 0.2});
      model ref = models::clone(m);
      m.set_gradient_checkpointing(checkpointing);
      trainer t(m, losses::sigmoid{.beta = 0.5}, optim::adamw{.lr = 1e-2}, {&ref});
      std::vector<std::map<std::string, double>> metrics;
      for (int s = 0; s < 3; ++s) metrics.push_back(t.step(std::span<const train::preference_batch<models::token_batch>>(micro)).metrics);
      std::vector<float> w(m.parameters().size());
      m.backend().download(m.parameters(), std::span<float>(w));
      return std::pair{metrics, w};
    };
    const auto plain = train3(false), ckpt = train3(true);
    CHECK(bit_equal(ckpt.second, plain.second));
    CHECK(ckpt.first == plain.first);
    model fresh(B{}, tiny(models::architecture::gpt2, 3));
    models::init_weights(fresh, 11, {.initializer_range = 0.2});
    std::vector<float> w0(fresh.parameters().size());
    fresh.backend().download(fresh.parameters(), std::span<float>(w0));
    CHECK(!bit_equal(w0, plain.second));  // the steps moved the weights
  }
  SUBCASE("Llama, LoRA with adapter dropout, the adapters-off reference on the same model") {
    using model = models::lora<models::llama<B>>;
    using trainer = train::trainer<model, losses::sigmoid, optim::adamw, train::reference::adapter_disabled<model>>;
    auto train3 = [&](bool checkpointing) {
      models::llama<B> base(B{}, tiny(models::architecture::llama, 3));
      models::init_weights(base, 21, {.initializer_range = 0.2});
      model m(std::move(base), {.r = 2, .alpha = 4.0, .dropout = 0.3, .target_modules = {"q_proj", "v_proj", "down_proj"}}, 22);
      m.set_gradient_checkpointing(checkpointing);
      trainer t(m, losses::sigmoid{.beta = 0.5}, optim::adamw{.lr = 1e-2}, {&m}, {.disable_dropout = false, .seed = 3});
      std::vector<std::map<std::string, double>> metrics;
      for (int s = 0; s < 3; ++s) metrics.push_back(t.step(std::span<const train::preference_batch<models::token_batch>>(micro)).metrics);
      std::vector<float> w(m.parameters().size());
      m.backend().download(m.parameters(), std::span<float>(w));
      return std::pair{metrics, w};
    };
    const auto plain = train3(false), ckpt = train3(true);
    CHECK(bit_equal(ckpt.second, plain.second));
    CHECK(ckpt.first == plain.first);
  }
}
