// benchmarks/generate_bench.cpp — tokens/s of models::generate with and without the KV cache.
//
//   prefopt_generate_bench [--layers 4 --hidden 256 --heads 4 --vocab 8192] [--rows 1] [--prompt 16]
//                          [--new 32,128,512] [--no-cache-max 512]
// A GPT-2-shaped model with random weights (Hugging Face's initialization, seed 42), greedy
// decoding of `rows` prompts of `prompt` tokens, no end token, so every continuation has exactly
// `new` tokens. One JSON line per (new, cache): wall and CPU seconds of the whole generate call
// (prefill included) and new tokens per wall second over all rows. Without the cache every step
// recomputes each whole prefix, so its time grows as new² (and attention as new³); with the cache
// each step runs one token per row, linear in new apart from attention's O(length) per token.
// Both runs must produce the same tokens (checked; a mismatch exits 1).
// --layers 12 --hidden 768 --heads 12 --vocab 50257 is GPT-2 small.
#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_support.hpp"
#include "prefopt/backends/eigen.hpp"
#include "prefopt/models/generate.hpp"
#include "prefopt/models/init.hpp"
#include "prefopt/models/transformer.hpp"

namespace {
std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return argv[i + 1];
  return fallback;
}
int iarg(int argc, char** argv, const std::string& name, int fallback) { return std::stoi(arg(argc, argv, name, std::to_string(fallback))); }
} // namespace

int main(int argc, char** argv) {
  using B = prefopt::backends::eigen;
  prefopt::models::transformer_config c;
  c.vocab_size = iarg(argc, argv, "--vocab", 8192);
  c.hidden = iarg(argc, argv, "--hidden", 256);
  c.layers = iarg(argc, argv, "--layers", 4);
  c.heads = c.kv_heads = iarg(argc, argv, "--heads", 4);
  c.head_dim = c.hidden / c.heads;
  c.intermediate = 4 * c.hidden;
  c.max_positions = 1024;
  c.attention_bias = c.o_bias = c.mlp_bias = true;
  const int rows = iarg(argc, argv, "--rows", 1), prompt = iarg(argc, argv, "--prompt", 16);
  const int no_cache_max = iarg(argc, argv, "--no-cache-max", 512);
  std::vector<int> lengths;
  std::stringstream ss(arg(argc, argv, "--new", "32,128,512"));
  for (std::string x; std::getline(ss, x, ',');) lengths.push_back(std::stoi(x));
  prefopt::models::gpt2<B> m(B{}, c);
  prefopt::models::init_weights(m, 42);
  std::vector<std::vector<std::int32_t>> prompts(static_cast<std::size_t>(rows));
  std::mt19937_64 pick(1);
  for (auto& p : prompts)
    for (int i = 0; i < prompt; ++i) p.push_back(std::int32_t(pick() % std::uint64_t(c.vocab_size)));
  for (int n : lengths) {
    std::vector<std::vector<std::int32_t>> first;
    for (bool cache : {true, false}) {
      if (!cache && n > no_cache_max) continue;
      std::mt19937_64 rng(0);
      const double c0 = prefopt::bench::cpu_seconds();
      const auto t0 = std::chrono::steady_clock::now();
      const auto s = prefopt::models::generate(m, prompts, rng,
                                               {.temperature = 0.0, .max_new_tokens = n, .batch_rows = rows, .use_cache = cache});
      const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double cpu = prefopt::bench::cpu_seconds() - c0;
      std::vector<std::vector<std::int32_t>> got;
      for (const auto& x : s) got.push_back(x.tokens);
      if (first.empty()) first = got;
      else if (got != first) {
        std::fprintf(stderr, "the cached and uncached continuations differ at %d new tokens\n", n);
        return 1;
      }
      std::printf("{\"layers\": %d, \"hidden\": %d, \"vocab\": %d, \"rows\": %d, \"prompt\": %d, \"new_tokens\": %d, "
                  "\"cache\": %s, \"wall_s\": %.3f, \"cpu_s\": %.3f, \"tokens_per_s\": %.1f}\n",
                  c.layers, c.hidden, c.vocab_size, rows, prompt, n, cache ? "true" : "false", wall, cpu,
                  double(n) * rows / wall);
      std::fflush(stdout);
    }
  }
  return 0;
}
