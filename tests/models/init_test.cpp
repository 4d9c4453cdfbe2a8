// models::init_weights and models::clone. Expected values: Hugging Face transformers' initialization
// (GPT2PreTrainedModel._init_weights and LlamaPreTrainedModel._init_weights, transformers 4.x/5.x):
// linear weights and embeddings N(0, 0.02²), GPT-2's c_proj weights N(0, (0.02/√(2·n_layer))²),
// biases 0, LayerNorm/RMSNorm weights 1. Statistics are checked within 5 standard errors of the
// estimators (mean: σ/√n; standard deviation: σ/√(2n)); the fraction of standardized values within
// ±1 against the normal's 0.6827. clone: a copy's log-probs equal the original's, bit for bit.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "prefopt/models/clone.hpp"
#include "prefopt/models/init.hpp"
#include "prefopt/models/lora.hpp"
#include "support/backends.hpp"

using namespace prefopt;

namespace {

models::transformer_config gpt2_config(int layers = 4) {
  models::transformer_config c;
  c.vocab_size = 300;
  c.hidden = 64;
  c.layers = layers;
  c.heads = 4;
  c.kv_heads = 4;
  c.head_dim = 16;
  c.intermediate = 256;
  c.max_positions = 32;
  c.attention_bias = c.o_bias = c.mlp_bias = true;
  return c;
}

models::transformer_config llama_config() {
  models::transformer_config c;
  c.arch = models::architecture::llama;
  c.model_type = "llama";
  c.vocab_size = 200;
  c.hidden = 64;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = 2;
  c.head_dim = 16;
  c.intermediate = 128;
  c.max_positions = 64;
  c.tie_word_embeddings = false;
  return c;
}

template <class M> std::vector<float> host_slice(M& m, const models::parameter_slice& s) {
  std::vector<float> h(s.size());
  m.backend().download(m.base_parameters().subspan(s.offset, s.size()), std::span<float>(h));
  return h;
}

template <class M> std::vector<float> host_all(M& m) {
  std::vector<float> h(m.base_parameters().size());
  m.backend().download(m.base_parameters(), std::span<float>(h));
  return h;
}

struct moments {
  double mean = 0.0, sd = 0.0;
};
moments moments_of(const std::vector<float>& v) {
  double s = 0.0, s2 = 0.0;
  for (float x : v) s += x;
  const double mean = s / double(v.size());
  for (float x : v) s2 += (x - mean) * (x - mean);
  return {mean, std::sqrt(s2 / double(v.size()))};
}

// Checks every slice of `m` against the rule Hugging Face uses; `residual_sd` for c_proj weights.
template <class M> void check_slices(M& m, double sd, double residual_sd, std::size_t& normal_slices) {
  double within = 0.0, drawn = 0.0;
  for (const auto& s : m.base_slices()) {
    CAPTURE(s.name);
    const auto v = host_slice(m, s);
    const bool norm = s.name.ends_with("ln_1.weight") || s.name.ends_with("ln_2.weight") || s.name.ends_with("ln_f.weight") ||
                      s.name.ends_with("layernorm.weight") || s.name == "model.norm.weight";
    if (norm) {
      for (float x : v) REQUIRE(x == 1.0f);
    } else if (s.name.ends_with(".bias")) {
      for (float x : v) REQUIRE(x == 0.0f);
    } else {
      const double want = s.name.find("c_proj.weight") != std::string::npos ? residual_sd : sd;
      const auto mo = moments_of(v);
      const double n = double(v.size());
      CHECK(std::abs(mo.mean) < 5.0 * want / std::sqrt(n));
      CHECK(std::abs(mo.sd - want) < 5.0 * want / std::sqrt(2.0 * n));
      for (float x : v) within += std::abs(x) < want ? 1.0 : 0.0;
      drawn += n;
      ++normal_slices;
    }
  }
  // Shape: the fraction within one standard deviation (binomial standard error √(p(1−p)/n)).
  CHECK(std::abs(within / drawn - 0.682689) < 5.0 * std::sqrt(0.682689 * 0.317311 / drawn));
}

} // namespace

TEST_CASE_TEMPLATE("init_weights: GPT-2 as Hugging Face initializes it", B, PREFOPT_CPU_BACKENDS) {
  models::gpt2<B> m(B{}, gpt2_config(4));
  models::init_weights(m, 7);
  std::size_t normal = 0;
  // 4 layers: residual projections get 0.02/√8
  check_slices(m, 0.02, 0.02 / std::sqrt(8.0), normal);
  CHECK(normal == 2 + 4 * 4);  // wte, wpe; c_attn, attn.c_proj, c_fc, mlp.c_proj per layer

  SUBCASE("without residual scaling every weight has σ") {
    models::init_weights(m, 7, {.initializer_range = 0.05, .scale_residual_projections = false});
    std::size_t n = 0;
    check_slices(m, 0.05, 0.05, n);
  }
  SUBCASE("the rule of each slice") {
    const auto& sl = m.base_slices();
    auto rule = [&](const std::string& name) {
      for (const auto& s : sl)
        if (s.name == name) return models::init_rule_of(m, s);
      FAIL("no slice " << name);
      return models::init_rule{};
    };
    CHECK(rule("transformer.h.3.mlp.c_proj.weight").stddev == doctest::Approx(0.02 / std::sqrt(8.0)));
    CHECK(rule("transformer.h.0.attn.c_proj.weight").stddev == doctest::Approx(0.02 / std::sqrt(8.0)));
    CHECK(rule("transformer.h.0.attn.c_attn.weight").stddev == doctest::Approx(0.02));
    CHECK(rule("transformer.h.0.mlp.c_fc.weight").stddev == doctest::Approx(0.02));
    CHECK(rule("transformer.wpe.weight").kind == models::init_rule::normal);
    CHECK(rule("transformer.ln_f.weight").kind == models::init_rule::ones);
    CHECK(rule("transformer.ln_f.bias").kind == models::init_rule::zeros);
    CHECK(rule("transformer.h.1.attn.c_proj.bias").kind == models::init_rule::zeros);
  }
}

TEST_CASE_TEMPLATE("init_weights: Llama has no residual scaling; an untied head is drawn", B, PREFOPT_CPU_BACKENDS) {
  models::llama<B> m(B{}, llama_config());
  models::init_weights(m, 11);
  std::size_t normal = 0;
  check_slices(m, 0.02, 0.02, normal);
  CHECK(normal == 1 + 2 * 7 + 1);  // embed_tokens; q, k, v, o, gate, up, down per layer; lm_head
}

TEST_CASE_TEMPLATE("init_weights: a seed reproduces the weights, another seed changes them", B, PREFOPT_CPU_BACKENDS) {
  models::gpt2<B> a(B{}, gpt2_config(2)), b(B{}, gpt2_config(2)), c(B{}, gpt2_config(2));
  models::init_weights(a, 123);
  models::init_weights(b, 123);
  models::init_weights(c, 124);
  const auto ha = host_all(a), hb = host_all(b), hc = host_all(c);
  CHECK(ha == hb);
  std::size_t differ = 0;
  for (std::size_t i = 0; i < ha.size(); ++i) differ += ha[i] != hc[i];
  CHECK(differ > ha.size() / 2);
  CHECK_THROWS_AS(models::init_weights(a, 1, {.initializer_range = -1.0}), config_error);
}

TEST_CASE("normal_source: Box–Muller draws have the normal's moments") {
  models::detail::normal_source n(99);
  const std::size_t N = 200000;
  double s = 0.0, s2 = 0.0, s4 = 0.0;
  for (std::size_t i = 0; i < N; ++i) {
    const double x = n();
    s += x, s2 += x * x, s4 += x * x * x * x;
  }
  CHECK(std::abs(s / N) < 5.0 / std::sqrt(double(N)));
  CHECK(std::abs(s2 / N - 1.0) < 5.0 * std::sqrt(2.0 / N));
  CHECK(std::abs(s4 / N - 3.0) < 5.0 * std::sqrt(96.0 / N));  // E x⁴ = 3, Var x⁴ = 105 − 9
}

TEST_CASE_TEMPLATE("clone: same log-probs, independent weights, adapters copied", B, PREFOPT_CPU_BACKENDS) {
  models::gpt2<B> m(B{}, gpt2_config(2));
  models::init_weights(m, 5, {.initializer_range = 0.2});
  m.head().set_chunk_rows(7);
  const std::vector<models::tokenized_pair> pairs{{{1, 2, 3}, {4, 5}, {6, 7, 8}}, {{9}, {10, 11, 12}, {13}}};
  const auto batch = models::pack_pairs(pairs, true);
  auto logps = [&](auto& model, bool adapters = true) {
    models::sequence_logps out;
    model.forward(batch, out, {.keep_activations = false, .adapters = adapters});
    return out.logp;
  };
  auto c = models::clone(m);
  CHECK(c.head().chunk_rows() == 7);
  CHECK(host_all(c) == host_all(m));
  CHECK(logps(c) == logps(m));
  // Changing the original leaves the copy alone.
  m.backend().fill(m.base_parameters().subspan(0, 10), 0.5f);
  CHECK(host_all(c) != host_all(m));

  SUBCASE("LoRA adapters and their weights come along") {
    models::lora<models::gpt2<B>> l(models::clone(c), {.r = 4, .alpha = 8.0, .target_modules = {"c_attn", "c_fc"}}, 3);
    std::vector<float> w(l.parameters().size());
    models::detail::normal_source n(4);
    for (auto& x : w) x = float(0.1 * n());
    l.backend().upload(std::span<const float>(w), l.parameters());
    auto lc = models::clone(l);
    REQUIRE(lc.adapters().size() == l.adapters().size());
    CHECK(lc.parameters().size() == l.parameters().size());
    CHECK(lc.parameter_slices().size() == l.parameter_slices().size());
    CHECK(lc.adapter_scale() == l.adapter_scale());
    CHECK(logps(lc) == logps(l));
    CHECK(logps(lc, false) == logps(l, false));
    CHECK(logps(lc) != logps(lc, false));
  }
}
