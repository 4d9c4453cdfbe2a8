// models::generate and next_token_logprobs. Expected values come from constructions with a known
// answer: a one-layer GPT-2 whose weights force the next-token distribution to a chosen p whatever
// the context (every weight 0 except ln_f.bias = e₀ and wte[v][0] = log p_v, so the final hidden
// state is e₀ and the logits are log p), sampled at temperature τ: frequencies must match
// p^(1/τ)/Σ p^(1/τ) within 5 binomial standard errors. End tokens stop a continuation (geometric
// lengths, mean 1/p_eos); greedy picks the argmax; seeds reproduce; the log-prob a sample carries
// equals the model's forward log-prob of the continuation.
#include <doctest/doctest.h>

#include <cmath>
#include <numeric>
#include <random>

#include <fstream>
#include <nlohmann/json.hpp>

#include "prefopt/models/generate.hpp"
#include "prefopt/models/lora.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "prefopt/models/init.hpp"
#include "prefopt/models/transformer.hpp"
#include "support/backends.hpp"
#include "support/data.hpp"

using namespace prefopt;

namespace {

const std::vector<double> p_known{0.30, 0.25, 0.20, 0.10, 0.08, 0.05, 0.02, 0.0};

models::transformer_config small_config(int vocab, int positions, int layers = 1, int hidden = 8) {
  models::transformer_config c;
  c.vocab_size = vocab;
  c.hidden = hidden;
  c.layers = layers;
  c.heads = 2;
  c.kv_heads = 2;
  c.head_dim = hidden / 2;
  c.intermediate = 4 * hidden;
  c.max_positions = positions;
  c.attention_bias = c.o_bias = c.mlp_bias = true;
  return c;
}

// A model whose next-token distribution is p for every context (see the top of this file).
template <class B> models::gpt2<B> fixed_distribution_model(const std::vector<double>& p, int positions = 16) {
  const int V = int(p.size()), C = 8;
  models::gpt2<B> m(B{}, small_config(V, positions));
  std::vector<float> host(m.base_parameters().size(), 0.0f);
  const auto& L = m.layout();
  for (int v = 0; v < V; ++v) host[L.wte + std::size_t(v) * C] = float(p[std::size_t(v)] > 0 ? std::log(p[std::size_t(v)]) : -40.0);
  host[L.normf_b] = 1.0f;  // ln_f: weight 0, bias e₀
  m.backend().upload(std::span<const float>(host), m.base_parameters());
  return m;
}

std::vector<double> tempered(const std::vector<double>& p, double tau) {
  std::vector<double> q(p.size());
  for (std::size_t v = 0; v < p.size(); ++v) q[v] = std::pow(p[v], 1.0 / tau);
  const double z = std::accumulate(q.begin(), q.end(), 0.0);
  for (auto& x : q) x /= z;
  return q;
}

void check_frequencies(const std::vector<models::sample>& s, const std::vector<double>& q) {
  std::vector<double> count(q.size(), 0.0);
  double n = 0.0;
  for (const auto& x : s)
    for (auto t : x.tokens) count[std::size_t(t)] += 1.0, n += 1.0;
  for (std::size_t v = 0; v < q.size(); ++v) {
    CAPTURE(v);
    const double se = std::sqrt(std::max(q[v] * (1.0 - q[v]), 1e-12) / n);
    CHECK(std::abs(count[v] / n - q[v]) < 5.0 * se + 1e-9);
  }
}

std::vector<std::vector<std::int32_t>> prompts_of(std::size_t n, std::vector<std::int32_t> prompt = {0}) {
  return std::vector<std::vector<std::int32_t>>(n, prompt);
}

} // namespace

TEST_CASE_TEMPLATE("next_token_logprobs of a model with a forced distribution", B, PREFOPT_CPU_BACKENDS) {
  auto m = fixed_distribution_model<B>(p_known);
  const std::vector<std::vector<std::int32_t>> prefixes{{0}, {3, 1, 2}, {5, 5}};
  const auto lp = models::next_token_logprobs(m, std::span<const std::vector<std::int32_t>>(prefixes));
  REQUIRE(lp.size() == 3 * p_known.size());
  for (std::size_t r = 0; r < 3; ++r)
    for (std::size_t v = 0; v + 1 < p_known.size(); ++v) CHECK(lp[r * p_known.size() + v] == doctest::Approx(std::log(p_known[v])).epsilon(1e-5));
  CHECK(lp[p_known.size() - 1] < -35.0);
  const std::vector<std::vector<std::int32_t>> empty{{}};
  CHECK_THROWS_AS(models::next_token_logprobs(m, std::span<const std::vector<std::int32_t>>(empty)), data_error);
}

TEST_CASE_TEMPLATE("sample frequencies follow p^(1/τ) at τ = 1, 0.5, 2", B, PREFOPT_CPU_BACKENDS) {
  auto m = fixed_distribution_model<B>(p_known);
  for (double tau : {1.0, 0.5, 2.0}) {
    CAPTURE(tau);
    std::mt19937_64 rng(2024);
    const auto s = models::generate(m, prompts_of(3000), rng, {.temperature = tau, .max_new_tokens = 4, .batch_rows = 500});
    for (const auto& x : s) {
      REQUIRE(x.tokens.size() == 4);
      CHECK_FALSE(x.stopped);
    }
    check_frequencies(s, tempered(p_known, tau));
  }
}

TEST_CASE_TEMPLATE("temperature → 0 is greedy", B, PREFOPT_CPU_BACKENDS) {
  SUBCASE("forced distribution: every token is the argmax") {
    auto m = fixed_distribution_model<B>(p_known);
    for (double tau : {0.0, -1.0, 1e-3}) {
      std::mt19937_64 rng(1);
      for (const auto& x : models::generate(m, prompts_of(50), rng, {.temperature = tau, .max_new_tokens = 5}))
        for (auto t : x.tokens) CHECK(t == 0);
    }
  }
  SUBCASE("a random two-layer model: τ = 1e-4 samples what greedy decoding picks") {
    models::gpt2<B> m(B{}, small_config(40, 24, 2, 16));
    models::init_weights(m, 3, {.initializer_range = 0.5});
    std::vector<std::vector<std::int32_t>> prompts;
    for (std::int32_t i = 0; i < 12; ++i) prompts.push_back({i, std::int32_t((3 * i + 1) % 40)});
    std::mt19937_64 r1(5), r2(6), r3(7);
    const auto greedy = models::generate(m, prompts, r1, {.temperature = 0.0, .max_new_tokens = 10});
    const auto greedy2 = models::generate(m, prompts, r2, {.temperature = 0.0, .max_new_tokens = 10});
    const auto cold = models::generate(m, prompts, r3, {.temperature = 1e-4, .max_new_tokens = 10});
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      CHECK(greedy[i].tokens == greedy2[i].tokens);
      CHECK(greedy[i].tokens == cold[i].tokens);
    }
  }
}

TEST_CASE_TEMPLATE("an end token stops a continuation; lengths are geometric", B, PREFOPT_CPU_BACKENDS) {
  // p_eos = 0.1 on token 3: length (end token included) ~ Geometric(0.1), mean 10, sd √0.9/0.1.
  const std::vector<double> p{0.3, 0.3, 0.3, 0.1};
  auto m = fixed_distribution_model<B>(p, 256);
  std::mt19937_64 rng(77);
  const std::size_t n = 2000;
  const auto s = models::generate(m, prompts_of(n), rng, {.max_new_tokens = 250, .eos_id = 3, .batch_rows = 256});
  double total = 0.0;
  for (const auto& x : s) {
    REQUIRE_FALSE(x.tokens.empty());
    CHECK(x.stopped);
    CHECK(x.tokens.back() == 3);
    CHECK(std::count(x.tokens.begin(), x.tokens.end(), 3) == 1);
    total += double(x.tokens.size());
  }
  CHECK(std::abs(total / double(n) - 10.0) < 5.0 * std::sqrt(0.9) / 0.1 / std::sqrt(double(n)));

  SUBCASE("max_new_tokens and max_positions cap a continuation") {
    std::mt19937_64 r(1);
    for (const auto& x : models::generate(m, prompts_of(100), r, {.max_new_tokens = 2, .eos_id = 3}))
      CHECK(x.tokens.size() <= 2);
    auto short_model = fixed_distribution_model<B>({0.5, 0.5}, 6);
    const auto t = models::generate(short_model, prompts_of(10, {0, 1, 0, 1}), r, {.max_new_tokens = 100});
    for (const auto& x : t) CHECK(x.tokens.size() == 2);  // positions 4 and 5 of 6
    CHECK(models::generate(m, prompts_of(3), r, {.max_new_tokens = 0})[0].tokens.empty());
  }
}

TEST_CASE_TEMPLATE("seeds reproduce; batch_rows does not change the samples", B, PREFOPT_CPU_BACKENDS) {
  auto m = fixed_distribution_model<B>(p_known);
  auto run = [&](std::uint64_t seed, int rows) {
    std::mt19937_64 rng(seed);
    std::vector<std::vector<std::int32_t>> out;
    for (const auto& x : models::generate(m, prompts_of(40), rng, {.max_new_tokens = 6, .eos_id = 5, .batch_rows = rows}))
      out.push_back(x.tokens);
    return out;
  };
  CHECK(run(9, 64) == run(9, 64));
  CHECK(run(9, 64) == run(9, 7));
  CHECK(run(9, 64) != run(10, 64));
}

TEST_CASE_TEMPLATE("a sample's logp is the model's log-prob of the continuation", B, PREFOPT_CPU_BACKENDS) {
  models::gpt2<B> m(B{}, small_config(30, 20, 2, 16));
  models::init_weights(m, 8, {.initializer_range = 0.3});
  std::vector<std::vector<std::int32_t>> prompts{{1}, {2, 3}, {4, 5, 6}, {7}};
  std::mt19937_64 rng(3);
  const auto s = models::generate(m, prompts, rng, {.temperature = 1.5, .max_new_tokens = 8, .eos_id = 0});
  models::token_batch b;
  for (std::size_t i = 0; i < s.size(); ++i) b.add_row(prompts[i], {&s[i].tokens}, {std::int32_t(i)});
  models::sequence_logps out;
  m.forward(b, out, {.keep_activations = false});
  for (std::size_t i = 0; i < s.size(); ++i) CHECK(s[i].logp == doctest::Approx(out.logp[i]).epsilon(1e-5));
}

TEST_CASE_TEMPLATE("generate rejects bad prompts and options", B, PREFOPT_CPU_BACKENDS) {
  auto m = fixed_distribution_model<B>(p_known, 8);
  std::mt19937_64 rng(1);
  CHECK_THROWS_AS(models::generate(m, {{}}, rng), data_error);
  CHECK_THROWS_AS(models::generate(m, {std::vector<std::int32_t>(8, 0)}, rng), data_error);
  CHECK_THROWS_AS(models::generate(m, {{0}}, rng, {.max_new_tokens = -1}), config_error);
  CHECK_THROWS_AS(models::generate(m, {{0}}, rng, {.batch_rows = 0}), config_error);
  CHECK_THROWS_AS(models::generate(m, {{0}}, rng, {.temperature = NAN}), config_error);
  CHECK_THROWS_AS(models::generate(m, {{99}}, rng), shape_error);
}

// ---- the KV-cache path against transformers (tests/data/generate/greedy.json) -------------------

namespace {
nlohmann::json greedy_reference() {
  std::ifstream in(test::data_path("generate/greedy.json"));
  return nlohmann::json::parse(in);
}

template <class M> void check_greedy(M& m, const nlohmann::json& c, const std::string& key, double penalty) {
  const auto prompts = c["prompts"].get<std::vector<std::vector<std::int32_t>>>();
  const auto want = c[key].get<std::vector<std::vector<std::int32_t>>>();
  for (bool cache : {true, false}) {
    CAPTURE(cache);
    std::mt19937_64 rng(1);
    const auto s = models::generate(m, prompts, rng,
                                    {.temperature = 0.0, .max_new_tokens = int(want[0].size()), .repetition_penalty = penalty,
                                     .use_cache = cache});
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      CAPTURE(i);
      CHECK(s[i].tokens == want[i]);
      CHECK(s[i].finish == models::finish_reason::length);
    }
  }
}
} // namespace

TEST_CASE_TEMPLATE("greedy continuations equal transformers' generate(do_sample=False)", B, PREFOPT_CPU_BACKENDS) {
  const auto ref = greedy_reference();
  for (const std::string arch : {"gpt2", "llama", "qwen2"}) {
    CAPTURE(arch);
    const auto dir = test::data_path("models/" + arch);
    if (arch == "gpt2") {
      auto m = models::from_pretrained<models::gpt2<B>>(B{}, dir);
      check_greedy(m, ref[arch], "greedy", 1.0);
      check_greedy(m, ref[arch], "greedy_repetition_penalty_1.3", 1.3);
    } else {
      auto m = models::from_pretrained<models::llama<B>>(B{}, dir);
      check_greedy(m, ref[arch], "greedy", 1.0);
      check_greedy(m, ref[arch], "greedy_repetition_penalty_1.3", 1.3);
    }
  }
  const auto& L = ref["llama_lora"]["lora"];
  models::lora<models::llama<B>> lm(models::from_pretrained<models::llama<B>>(B{}, test::data_path("models/llama")),
                                    {.r = L["r"].get<int>(), .alpha = L["alpha"].get<double>(),
                                     .target_modules = L["target_modules"].get<std::vector<std::string>>()});
  lm.load_adapter(test::data_path("models/llama_lora"));
  check_greedy(lm, ref["llama_lora"], "greedy", 1.0);
  // adapters off: the base model's continuations
  std::mt19937_64 rng(1);
  const auto prompts = ref["llama"]["prompts"].get<std::vector<std::vector<std::int32_t>>>();
  const auto base = ref["llama"]["greedy"].get<std::vector<std::vector<std::int32_t>>>();
  const auto off = models::generate(lm, prompts, rng, {.temperature = 0.0, .max_new_tokens = int(base[0].size()), .adapters = false});
  for (std::size_t i = 0; i < prompts.size(); ++i) CHECK(off[i].tokens == base[i]);
}

TEST_CASE_TEMPLATE("cached sampling: seeds reproduce whatever batch_rows; filters; stop sequences", B, PREFOPT_CPU_BACKENDS) {
  auto m = models::from_pretrained<models::llama<B>>(B{}, test::data_path("models/llama"));
  const auto prompts = greedy_reference()["llama"]["prompts"].get<std::vector<std::vector<std::int32_t>>>();
  auto run = [&](std::uint64_t seed, int rows, models::sampling_options o) {
    std::mt19937_64 rng(seed);
    o.batch_rows = rows;
    std::vector<std::vector<std::int32_t>> t;
    for (const auto& x : models::generate(m, prompts, rng, o)) t.push_back(x.tokens);
    return t;
  };
  const models::sampling_options hot{.temperature = 1.5, .max_new_tokens = 12, .top_k = 50, .top_p = 0.95, .min_p = 0.01,
                                     .repetition_penalty = 1.1};
  CHECK(run(5, 4, hot) == run(5, 1, hot));
  CHECK(run(5, 4, hot) == run(5, 3, hot));
  CHECK(run(5, 4, hot) != run(6, 4, hot));
  auto uncached = hot;  // every prefix recomputed each step: the same samples
  uncached.use_cache = false;
  CHECK(run(5, 4, hot) == run(5, 2, uncached));
  // Per-prompt seeds: a prompt's sample depends on its own seed only.
  auto seeded = hot;
  seeded.seeds = {11, 12, 13, 14};
  const auto a = run(0, 4, seeded);
  seeded.seeds = {99, 12, 98, 14};
  const auto b = run(1, 2, seeded);
  CHECK(a[1] == b[1]);
  CHECK(a[3] == b[3]);
  CHECK(a[0] != b[0]);
  // top_k = 1 is greedy.
  auto k1 = hot;
  k1.top_k = 1;
  k1.repetition_penalty = 1.0;
  const auto ref = greedy_reference()["llama"]["greedy"].get<std::vector<std::vector<std::int32_t>>>();
  const auto g = run(3, 4, k1);
  for (std::size_t i = 0; i < g.size(); ++i)
    CHECK(g[i] == std::vector<std::int32_t>(ref[i].begin(), ref[i].begin() + 12));
  // A stop sequence (the greedy continuation's tokens 2..3) ends it there, kept; a callback too.
  std::mt19937_64 rng(1);
  const std::vector<std::int32_t> stop(ref[0].begin() + 2, ref[0].begin() + 4);
  auto s = models::generate(m, {prompts[0]}, rng, {.temperature = 0.0, .max_new_tokens = 12, .stop_sequences = {stop}});
  CHECK(s[0].finish == models::finish_reason::stop);
  CHECK(s[0].tokens == std::vector<std::int32_t>(ref[0].begin(), ref[0].begin() + 4));
  s = models::generate(m, {prompts[0]}, rng,
                       {.temperature = 0.0, .max_new_tokens = 12,
                        .stop = [](std::size_t, const std::vector<std::int32_t>& t) { return t.size() == 5; }});
  CHECK(s[0].tokens.size() == 5);
  CHECK(s[0].finish == models::finish_reason::stop);
  // eos: the greedy continuation's 3rd token as the end token.
  s = models::generate(m, {prompts[0]}, rng, {.temperature = 0.0, .max_new_tokens = 12, .eos_id = ref[0][2]});
  CHECK(s[0].finish == models::finish_reason::eos);
  CHECK(s[0].stopped);
  CHECK(s[0].tokens.back() == ref[0][2]);
  CHECK_THROWS_AS(models::generate(m, prompts, rng, {.seeds = {1, 2}}), config_error);
  CHECK_THROWS_AS(models::generate(m, prompts, rng, {.top_p = 0.0}), config_error);
  CHECK_THROWS_AS(models::generate(m, prompts, rng, {.repetition_penalty = 0.0}), config_error);
}
