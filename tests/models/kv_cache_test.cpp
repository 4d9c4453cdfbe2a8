// The KV cache against the no-cache forward. For the golden GPT-2, Llama and Qwen2 checkpoints of
// tests/data/models (and their PEFT LoRA adapters, on and off), every next-token distribution a
// cached step produces — a whole-sequence prefill, and a prefill of prompts of different lengths
// followed by one-token decode steps in which sequences drop out — equals the model's no-cache
// next_token_logprobs at the same position: log_softmax(cached logits) within 1e-5. Logits are
// compared through log_softmax because next_token_logprobs returns log-probs (same up to a
// per-row constant). Also: the cache's errors and its bookkeeping.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "prefopt/models/kv_cache.hpp"
#include "prefopt/models/lora.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "support/backends.hpp"
#include "support/data.hpp"

using namespace prefopt;

namespace {

std::vector<std::vector<std::int32_t>> sequences_of(const std::string& arch) {
  std::ifstream in(test::data_path("models/" + arch + "/reference.json"));
  const auto j = nlohmann::json::parse(in);
  std::vector<std::vector<std::int32_t>> s;
  for (const auto& p : j["pairs"]) {
    auto x = p["prompt"].get<std::vector<std::int32_t>>();
    const auto c = p["chosen"].get<std::vector<std::int32_t>>();
    x.insert(x.end(), c.begin(), c.end());
    s.push_back(std::move(x));
  }
  return s;
}

// No-cache log-probs after every prefix of every sequence: want[i][n − 1] [V] after s[i][0..n).
template <class M>
std::vector<std::vector<std::vector<float>>> no_cache(M& m, const std::vector<std::vector<std::int32_t>>& s, bool adapters) {
  const int V = m.config().vocab_size;
  models::token_batch b;
  std::vector<std::int32_t> at;
  for (const auto& x : s) {
    for (std::size_t k = 0; k < x.size(); ++k) {
      at.push_back(std::int32_t(b.tokens.size()));
      b.tokens.push_back(x[k]), b.positions.push_back(std::int32_t(k)), b.segment.push_back(0);
    }
    b.row_offsets.push_back(std::int32_t(b.tokens.size()));
  }
  const auto lp = m.next_token_logprobs(b, std::span<const std::int32_t>(at), {.keep_activations = false, .adapters = adapters});
  std::vector<std::vector<std::vector<float>>> out(s.size());
  std::size_t r = 0;
  for (std::size_t i = 0; i < s.size(); ++i)
    for (std::size_t k = 0; k < s[i].size(); ++k, ++r)
      out[i].emplace_back(lp.begin() + std::ptrdiff_t(r * V), lp.begin() + std::ptrdiff_t((r + 1) * V));
  return out;
}

void check_row(std::span<const float> logits, const std::vector<float>& want) {
  REQUIRE(logits.size() == want.size());
  double top = -INFINITY, sum = 0.0;
  for (float z : logits) top = std::max(top, double(z));
  for (float z : logits) sum += std::exp(double(z) - top);
  double worst = 0.0;
  for (std::size_t v = 0; v < want.size(); ++v)
    worst = std::max(worst, std::abs(double(logits[v]) - top - std::log(sum) - double(want[v])));
  CHECK(worst < 1e-5);
}

template <class M> void check_cache(M& m, const std::vector<std::vector<std::int32_t>>& s, bool adapters) {
  CAPTURE(adapters);
  using B = typename M::backend_type;
  const int V = m.config().vocab_size;
  const auto want = no_cache(m, s, adapters);
  const models::forward_options fo{.keep_activations = false, .adapters = adapters};
  int longest = 0;
  for (const auto& x : s) longest = std::max(longest, int(x.size()));
  {  // every position of whole sequences in one prefill
    models::kv_cache<B> cache(m.backend(), m.config(), int(s.size()), longest);
    models::cache_step step;
    step.every_position = true;
    for (std::size_t i = 0; i < s.size(); ++i) step.add(std::int32_t(i), s[i]);
    const auto z = m.cached_logits(cache, step, fo);
    std::size_t r = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
      CHECK(cache.length(int(i)) == int(s[i].size()));
      for (std::size_t k = 0; k < s[i].size(); ++k, ++r) check_row(std::span<const float>(z).subspan(r * V, std::size_t(V)), want[i][k]);
    }
  }
  // Prompts of 1, 2, 3, ... tokens (slots in reverse order), then one token per step; sequence i
  // stops after its last token, so rows drop out step by step.
  models::kv_cache<B> cache(m.backend(), m.config(), int(s.size()) + 1, longest);
  std::vector<std::size_t> fed(s.size());
  auto slot = [&](std::size_t i) { return std::int32_t(s.size() - i); };
  models::cache_step step;
  for (std::size_t i = 0; i < s.size(); ++i) {
    fed[i] = std::min(s[i].size(), i + 1);
    step.add(slot(i), std::vector<std::int32_t>(s[i].begin(), s[i].begin() + std::ptrdiff_t(fed[i])));
  }
  int steps = 0;
  while (step.rows() > 0) {
    const auto z = m.cached_logits(cache, step, fo);
    REQUIRE(z.size() == std::size_t(step.rows()) * V);
    models::cache_step next;
    int r = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (std::find(step.slots.begin(), step.slots.end(), slot(i)) == step.slots.end()) continue;
      CAPTURE(i);
      CAPTURE(fed[i]);
      check_row(std::span<const float>(z).subspan(std::size_t(r++) * V, std::size_t(V)), want[i][fed[i] - 1]);
      CHECK(cache.length(slot(i)) == int(fed[i]));
      if (fed[i] < s[i].size()) next.add(slot(i), {s[i][fed[i]++]});
    }
    step = next;
    ++steps;
  }
  CHECK(steps > 1);
}

template <class Model> void check_arch(const std::string& arch) {
  CAPTURE(arch);
  const auto s = sequences_of(arch);
  auto m = models::from_pretrained<Model>(typename Model::backend_type{}, test::data_path("models/" + arch));
  check_cache(m, s, true);
  std::ifstream in(test::data_path("models/" + arch + "/reference.json"));
  const auto L = nlohmann::json::parse(in)["lora"];
  models::lora<Model> lm(std::move(m), {.r = L["r"].get<int>(), .alpha = L["alpha"].get<double>(),
                                        .target_modules = L["target_modules"].get<std::vector<std::string>>()});
  lm.load_adapter(test::data_path("models/" + arch + "_lora"));
  check_cache(lm, s, true);
  check_cache(lm, s, false);
}

} // namespace

TEST_CASE_TEMPLATE("cached logits equal the no-cache forward at every position (gpt2, llama, qwen2, LoRA)", B,
                   PREFOPT_CPU_BACKENDS) {
  check_arch<models::gpt2<B>>("gpt2");
  check_arch<models::llama<B>>("llama");
  check_arch<models::llama<B>>("qwen2");
}

TEST_CASE_TEMPLATE("the cache holds Hkv heads and rejects steps that do not fit", B, PREFOPT_CPU_BACKENDS) {
  auto m = models::from_pretrained<models::llama<B>>(B{}, test::data_path("models/llama"));
  const auto& c = m.config();
  REQUIRE(c.kv_heads < c.heads);  // grouped-query attention
  models::kv_cache<B> cache(m.backend(), c, 2, 4);
  CHECK(cache.floats() == 2u * std::size_t(c.layers) * 2u * 4u * std::size_t(c.kv_heads * c.head_dim));
  CHECK(cache.keys(0).size() == 2u * 4u * std::size_t(c.kv_heads * c.head_dim));
  auto step_of = [](std::vector<std::pair<int, std::vector<std::int32_t>>> rows) {
    models::cache_step s;
    for (auto& [slot, t] : rows) s.add(slot, t);
    return s;
  };
  CHECK_THROWS_AS(m.cached_logits(cache, step_of({{0, {1, 2, 3, 4, 5}}})), shape_error);    // past capacity
  CHECK_THROWS_AS(m.cached_logits(cache, step_of({{2, {1}}})), shape_error);                // no slot 2
  CHECK_THROWS_AS(m.cached_logits(cache, step_of({{0, {1}}, {0, {2}}})), shape_error);      // slot twice
  CHECK_THROWS_AS(m.cached_logits(cache, step_of({{0, {c.vocab_size}}})), shape_error);     // token id
  CHECK_THROWS_AS(m.cached_logits(cache, step_of({{0, {}}})), shape_error);                 // empty row
  CHECK(cache.length(0) == 0);  // nothing was written by a refused step
  CHECK(m.cached_logits(cache, step_of({{1, {1, 2, 3}}})).size() == std::size_t(c.vocab_size));
  CHECK(cache.length(1) == 3);
  CHECK_THROWS_AS(m.cached_logits(cache, step_of({{1, {4, 5}}})), shape_error);             // 5 > 4
  cache.clear(1);
  CHECK(cache.length(1) == 0);
  auto g = models::from_pretrained<models::gpt2<B>>(B{}, test::data_path("models/gpt2"));
  CHECK_THROWS_AS(g.cached_logits(cache, step_of({{0, {1}}})), shape_error);               // another model's cache
}
