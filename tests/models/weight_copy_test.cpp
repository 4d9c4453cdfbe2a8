// precision bf16's weight copy (core/bf16.hpp, "The weight copy"; transformer::set_weight_copy).
// A backend that counts conversions (support/bf16_counting.hpp) shows the copy is made once per
// forward pass, covers every base parameter, and is what every product with a weight reads (no
// weight rounded inside a gemm); fp32 makes no copy. Staleness: after an edit through
// base_parameters(), a LoRA merge, or for sampling (next_token_logprobs, cached_logits), the next
// forward computes what per-call rounding computes with the new weights, bit for bit.
// Stored norm outputs (set_activation_copy): under bf16 each layer keeps n1, n2 as bf16 bits (the
// kept bytes equal the layer_acts formula at 2 bytes for them, the counting backend sees them
// converted once and read by the products), not under LoRA dropout; with it off, fp32 and equal
// results. The MLP activation is not kept (the same formula, without it, in fp32 too).
#include <doctest/doctest.h>

#include <cstdint>
#include <span>
#include <vector>

#include "prefopt/models/init.hpp"
#include "prefopt/models/kv_cache.hpp"
#include "prefopt/models/lora.hpp"
#include "prefopt/models/transformer.hpp"
#include "support/backends.hpp"
#include "support/bf16_counting.hpp"
#include "support/tiny_transformer.hpp"

using namespace prefopt;

namespace {

template <class M> M tiny(models::architecture arch, precision p, bool copy) {
  typename M::backend_type be;
  be.matmul_precision = p;
  M m(be, test::tiny_transformer(arch, 2, 64));
  models::init_weights(m, 7, {.initializer_range = 0.2});
  m.set_weight_copy(copy);
  return m;
}

template <class M> std::vector<float> download(M& m, std::span<float> s) {
  std::vector<float> h(s.size());
  m.backend().download(std::span<const float>(s), std::span<float>(h));
  return h;
}

// A training forward and backward over the tiny pairs; returns the log-probs.
template <class M> std::vector<double> step(M& m, bool backward = true) {
  models::sequence_logps out;
  m.zero_grad();
  m.forward(models::pack_pairs(test::tiny_pairs(), false), out, {});
  if (backward) {
    std::vector<double> d(out.logp.size());
    for (std::size_t i = 0; i < d.size(); ++i) d[i] = i % 2 ? 0.25 : -0.5;
    m.backward(std::span<const double>(d));
  }
  return out.logp;
}

template <class M> void counts(models::architecture arch) {
  using BE = typename M::backend_type;
  SUBCASE("bf16: one conversion per forward pass, of every base parameter; no weight rounded per gemm") {
    M m = tiny<M>(arch, precision::bf16, true);
    // The copy holds every base parameter but an untied embedding table (the tiny Llama's), which
    // only the lookup reads.
    const std::size_t V = std::size_t(m.config().vocab_size), C = std::size_t(m.config().hidden);
    const std::size_t n = m.base_parameters().size() - (m.config().tie_word_embeddings ? 0 : V * C);
    CHECK(m.weight_copy_parameters() == n);
    CHECK(m.config().tie_word_embeddings == (arch == models::architecture::gpt2));
    BE::reset(m.base_parameters());
    step(m);
    CHECK(BE::conversions == 1);
    CHECK(BE::converted == n);
    CHECK(BE::weight_gemms == 0);
    CHECK(BE::copy_gemms > BE::conversions);  // each linear twice (forward, dX) and the head
    const std::size_t per_step = BE::copy_gemms;
    step(m);
    step(m, false);
    CHECK(BE::conversions == 3);
    CHECK(BE::converted == 3 * n);
    CHECK(BE::weight_gemms == 0);
    CHECK(m.weight_copy_bytes() == 2 * n);
    // Per-call rounding (the copy off): the same products, each converting its weight.
    M off = tiny<M>(arch, precision::bf16, false);
    BE::reset(off.base_parameters());
    step(off);
    CHECK(BE::conversions == 0);
    CHECK(BE::copy_gemms == 0);
    CHECK(BE::weight_gemms == per_step);
    CHECK(off.weight_copy_bytes() == 0);
    MESSAGE("forward + backward: " << per_step << " products with a weight; per-call rounding converts a weight in each, "
                                   << "the copy converts the " << n << " parameters once");
  }
  SUBCASE("fp32: no copy, no memory") {
    M m = tiny<M>(arch, precision::fp32, true);
    BE::reset(m.base_parameters());
    step(m);
    CHECK(BE::conversions == 0);
    CHECK(BE::copy_gemms == 0);
    CHECK(m.weight_copy_bytes() == 0);
    // Switched to bf16 and back: the copy exists while bf16 runs and is released after.
    m.backend().matmul_precision = precision::bf16;
    step(m);
    CHECK(m.weight_copy_bytes() == 2 * m.weight_copy_parameters());
    m.backend().matmul_precision = precision::fp32;
    const std::size_t gemms = BE::copy_gemms;
    step(m);
    CHECK(m.weight_copy_bytes() == 0);
    CHECK(BE::copy_gemms == gemms);
    m.set_weight_copy(false);
    CHECK(m.weight_copy_bytes() == 0);
  }
}

// Scales every base weight (an edit through base_parameters(), as a user or a loader makes one).
template <class M> void edit(M& m) {
  auto w = download(m, m.base_parameters());
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = w[i] * 1.25f + (i % 3 ? 0.01f : -0.02f);
  m.backend().upload(std::span<const float>(w), m.base_parameters());
}

template <class M> void staleness(models::architecture arch) {
  M on = tiny<M>(arch, precision::bf16, true), off = tiny<M>(arch, precision::bf16, false);
  const auto before = step(on);
  CHECK(before == step(off));
  CHECK(download(on, on.gradients()) == download(off, off.gradients()));
  edit(on), edit(off);
  const auto after = step(on);
  CHECK(after != before);
  CHECK(after == step(off));
  CHECK(download(on, on.gradients()) == download(off, off.gradients()));
  // Sampling entry points, after another edit.
  edit(on), edit(off);
  const auto batch = models::pack_pairs(test::tiny_pairs(), false);
  const std::vector<std::int32_t> at{0, 3, 5};
  const auto p_on = on.next_token_logprobs(batch, std::span<const std::int32_t>(at));
  CHECK(p_on == off.next_token_logprobs(batch, std::span<const std::int32_t>(at)));
  models::kv_cache<typename M::backend_type> c_on(on.backend(), on.config(), 1, 16), c_off(off.backend(), off.config(), 1, 16);
  const models::cache_step s{.slots = {0}, .tokens = {1, 2, 3}, .row_offsets = {0, 3}};
  const auto l_on = on.cached_logits(c_on, s);
  CHECK(l_on == off.cached_logits(c_off, s));
  edit(on), edit(off);
  const models::cache_step s2{.slots = {0}, .tokens = {4}, .row_offsets = {0, 1}};
  CHECK(on.cached_logits(c_on, s2) == off.cached_logits(c_off, s2));
}

} // namespace

TEST_CASE_TEMPLATE("weight copy: counted conversions, GPT-2", B, PREFOPT_CPU_BACKENDS) {
  counts<models::gpt2<test::bf16_counting<B>>>(models::architecture::gpt2);
}
TEST_CASE_TEMPLATE("weight copy: counted conversions, Llama", B, PREFOPT_CPU_BACKENDS) {
  counts<models::llama<test::bf16_counting<B>>>(models::architecture::llama);
}

TEST_CASE_TEMPLATE("weight copy: an edit between forwards is seen, GPT-2 and Llama", B, PREFOPT_CPU_BACKENDS) {
  staleness<models::gpt2<B>>(models::architecture::gpt2);
  staleness<models::llama<B>>(models::architecture::llama);
}

TEST_CASE_TEMPLATE("weight copy: a LoRA merge is seen by the next forward", B, PREFOPT_CPU_BACKENDS) {
  using base = models::llama<test::bf16_counting<B>>;
  using M = models::lora<base>;
  auto make = [](bool copy) {
    M m(tiny<base>(models::architecture::llama, precision::bf16, copy), {.r = 2, .alpha = 4.0, .target_modules = {"q_proj", "down_proj"}}, 5);
    test::randomize_trainable(m, 6);
    return m;
  };
  M on = make(true), off = make(false);
  const auto batch = models::pack_pairs(test::tiny_pairs(), false);
  models::sequence_logps base_on, base_off, merged_on, merged_off, adapted;
  on.forward(batch, adapted, {.keep_activations = false});
  on.forward(batch, base_on, {.keep_activations = false, .adapters = false});
  off.forward(batch, base_off, {.keep_activations = false, .adapters = false});
  CHECK(base_on.logp == base_off.logp);
  on.merge_into_base(), off.merge_into_base();
  test::bf16_counting<B>::reset(on.base_parameters());
  on.forward(batch, merged_on, {.keep_activations = false, .adapters = false});
  CHECK(test::bf16_counting<B>::conversions == 1);
  CHECK(test::bf16_counting<B>::weight_gemms == 0);
  off.forward(batch, merged_off, {.keep_activations = false, .adapters = false});
  CHECK(merged_on.logp != base_on.logp);  // the merged weights are used
  CHECK(merged_on.logp == merged_off.logp);
  for (std::size_t i = 0; i < adapted.logp.size(); ++i) CHECK(merged_on.logp[i] == doctest::Approx(adapted.logp[i]).epsilon(0.05));
}

TEST_CASE_TEMPLATE("weight copy: a checkpointed backward recomputes with the forward's copy", B, PREFOPT_CPU_BACKENDS) {
  using M = models::llama<test::bf16_counting<B>>;
  M on = tiny<M>(models::architecture::llama, precision::bf16, true), off = tiny<M>(models::architecture::llama, precision::bf16, false);
  on.set_gradient_checkpointing(true);
  test::bf16_counting<B>::reset(on.base_parameters());
  const auto logp = step(on);
  CHECK(test::bf16_counting<B>::conversions == 1);  // the recompute reads the copy, it makes none
  CHECK(test::bf16_counting<B>::weight_gemms == 0);
  CHECK(logp == step(off));
  CHECK(download(on, on.gradients()) == download(off, off.gradients()));
}

// ---- stored norm outputs (core/bf16.hpp, "Stored norm outputs"; transformer::set_activation_copy) ----

namespace {

// What the layers keep for backward, in bytes, for T tokens: per layer x, xmid, q, att, k, v, the
// attention log-sum-exp, the norms' mean and rstd, the MLP input(s) (GPT-2: a; Llama: gate and up;
// the activation is recomputed), and n1, n2 at 2 bytes (bf16_norms) or 4. Derived from layer_acts.
template <class M> std::size_t kept_bytes(const M& m, std::size_t T, bool bf16_norms) {
  const auto& c = m.config();
  const std::size_t C = std::size_t(c.hidden), F = std::size_t(c.intermediate);
  const std::size_t QD = std::size_t(c.heads) * c.head_dim, KD = std::size_t(c.kv_heads) * c.head_dim;
  const std::size_t mlp = c.arch == models::architecture::gpt2 ? 1 : 2;
  const std::size_t floats = 2 * T * C + 2 * T * QD + 2 * T * KD + attention_lse_size(T, c.heads) + 4 * T + mlp * T * F;
  const std::size_t norms = bf16_norms ? 2 * T * C * sizeof(std::uint16_t) : 2 * T * C * sizeof(float);
  return std::size_t(c.layers) * (floats * sizeof(float) + norms);
}

template <class M> void stored_norms(models::architecture arch) {
  using BE = typename M::backend_type;
  const std::size_t T = models::pack_pairs(test::tiny_pairs(), false).tokens.size(), L = 2, C = 16;
  M on = tiny<M>(arch, precision::bf16, true), off = tiny<M>(arch, precision::bf16, true);
  off.set_activation_copy(false);
  BE::reset(on.base_parameters());
  const auto logp = step(on);
  CHECK(on.activation_bytes() == kept_bytes(on, T, true));
  CHECK(BE::act_conversions == 2 * L);  // n1 and n2 of each layer, once, in forward
  CHECK(BE::act_converted == 2 * L * T * C);
  CHECK(BE::act_gemms > 0);  // the products read the bits
  BE::reset(off.base_parameters());
  CHECK(logp == step(off));
  CHECK(off.activation_bytes() == kept_bytes(off, T, false));
  CHECK(BE::act_conversions == 0);
  CHECK(BE::act_gemms == 0);
  CHECK(download(on, on.gradients()) == download(off, off.gradients()));
  MESSAGE("layers keep " << on.activation_bytes() << " bytes with the norm outputs in bf16, " << off.activation_bytes()
                         << " without (T = " << T << ")");
  // fp32: nothing in bf16.
  M f = tiny<M>(arch, precision::fp32, true);
  step(f);
  CHECK(f.activation_bytes() == kept_bytes(f, T, false));
}

} // namespace

TEST_CASE_TEMPLATE("stored norm outputs: bf16 halves n1 and n2, the MLP activation is recomputed, results equal", B,
                   PREFOPT_CPU_BACKENDS) {
  stored_norms<models::gpt2<test::bf16_counting<B>>>(models::architecture::gpt2);
  stored_norms<models::llama<test::bf16_counting<B>>>(models::architecture::llama);
}

TEST_CASE_TEMPLATE("stored norm outputs: fp32 under LoRA adapter dropout, bf16 without the dropout", B, PREFOPT_CPU_BACKENDS) {
  using base = models::llama<test::bf16_counting<B>>;
  using M = models::lora<base>;
  M m(tiny<base>(models::architecture::llama, precision::bf16, true),
      {.r = 2, .alpha = 4.0, .dropout = 0.25, .target_modules = {"q_proj", "up_proj"}}, 5);
  test::randomize_trainable(m, 6);
  const auto batch = models::pack_pairs(test::tiny_pairs(), false);
  const std::size_t T = batch.tokens.size();
  models::sequence_logps out;
  m.forward(batch, out, {.dropout_seed = 11});  // dropout of the unrounded input: n1, n2 stay fp32
  CHECK(m.activation_bytes() == kept_bytes(m, T, false));
  m.forward(batch, out, {});  // no dropout in this forward: bf16
  CHECK(m.activation_bytes() == kept_bytes(m, T, true));
}

TEST_CASE_TEMPLATE("stored norm outputs: a backward after the precision changed from bf16 is refused", B, PREFOPT_CPU_BACKENDS) {
  using M = models::gpt2<B>;
  M m = tiny<M>(models::architecture::gpt2, precision::bf16, true);
  models::sequence_logps out;
  m.forward(models::pack_pairs(test::tiny_pairs(), false), out, {});
  m.backend().matmul_precision = precision::fp32;
  const std::vector<double> d(out.logp.size(), 0.5);
  CHECK_THROWS_AS(m.backward(std::span<const double>(d)), error);
}
