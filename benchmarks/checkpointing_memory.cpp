// benchmarks/checkpointing_memory.cpp — peak memory of a GPT-2-small training forward + backward
// with and without activation checkpointing (transformer::set_gradient_checkpointing), eigen
// backend, float32.
//
//   prefopt_checkpointing_bench --tokens 4096 --checkpointing 1
// One row of `tokens` tokens (prompt and completion halves), 12 layers, width 768, 12 heads, vocab
// 50257, Hugging Face's random initialization; forward with activations kept + backward of the
// completion's log-prob. Prints one JSON line:
//   peak_mib:      peak resident memory of forward + backward above the process with the model and
//                  its gradient buffer allocated (bench_support.hpp's probe: VmHWM − VmRSS);
//   allocated_mib: bytes the model asked the backend for during forward + backward (every
//                  activation, workspace and head buffer; a counting wrapper around eigen's allocate);
//   cpu_s:         CPU seconds of forward + backward (all threads);
//   logp, grad_fnv: the log-prob and an FNV-1a hash of the gradient buffer's bytes, equal with and
//                  without checkpointing when the gradients are bit-equal.
// One process per measurement: peak resident memory never falls.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_support.hpp"
#include "prefopt/backends/eigen.hpp"
#include "prefopt/models/init.hpp"
#include "prefopt/models/transformer.hpp"

namespace {
int arg(int argc, char** argv, const std::string& name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return std::stoi(argv[i + 1]);
  return fallback;
}

// eigen, counting the bytes of every buffer it hands out (the model's allocations).
struct counting_eigen : prefopt::backends::eigen {
  static inline std::size_t bytes = 0;
  template <class T> prefopt::host_buffer<T> allocate(std::size_t n) const {
    bytes += n * sizeof(T);
    return prefopt::backends::eigen::allocate<T>(n);
  }
};
} // namespace

int main(int argc, char** argv) {
  const int L = arg(argc, argv, "--tokens", 1024);
  const bool checkpointing = arg(argc, argv, "--checkpointing", 0) != 0;
  prefopt::models::transformer_config c;
  c.vocab_size = 50257, c.hidden = 768, c.layers = 12, c.heads = c.kv_heads = 12, c.head_dim = 64;
  c.intermediate = 3072, c.max_positions = std::max(L, 1024);
  c.attention_bias = c.o_bias = c.mlp_bias = true;
  prefopt::models::gpt2<counting_eigen> m(counting_eigen{}, c);
  prefopt::models::init_weights(m, 7);
  m.set_gradient_checkpointing(checkpointing);
  m.zero_grad();
  std::vector<std::int32_t> prompt(std::size_t(L / 2)), completion(std::size_t(L - L / 2));
  for (std::size_t i = 0; i < prompt.size(); ++i) prompt[i] = std::int32_t(prefopt::bench::mix(i, 1) % 50257);
  for (std::size_t i = 0; i < completion.size(); ++i) completion[i] = std::int32_t(prefopt::bench::mix(i, 2) % 50257);
  prefopt::models::token_batch b;
  b.add_row(prompt, {&completion}, {0});
  const std::size_t bytes_before = counting_eigen::bytes;
  prefopt::bench::peak_probe probe;
  probe.start();
  const double cpu0 = prefopt::bench::cpu_seconds();
  prefopt::models::sequence_logps out;
  m.forward(b, out);
  const std::vector<double> d{1.0};
  m.backward(d);
  const double cpu = prefopt::bench::cpu_seconds() - cpu0;
  const long peak_kb = probe.peak_delta_kb();
  std::vector<float> g(m.gradients().size());
  m.backend().download(m.gradients(), std::span<float>(g));
  std::uint64_t h = 1469598103934665603ull;
  const auto* p = reinterpret_cast<const unsigned char*>(g.data());
  for (std::size_t i = 0; i < g.size() * sizeof(float); ++i) h = (h ^ p[i]) * 1099511628211ull;
  std::printf("{\"model\": \"gpt2-small\", \"tokens\": %d, \"checkpointing\": %s, \"peak_mib\": %.1f, \"peak_reset_ok\": %s, "
              "\"allocated_mib\": %.1f, \"cpu_s\": %.2f, \"logp\": %.6f, \"grad_fnv\": \"%016llx\"}\n",
              L, checkpointing ? "true" : "false", double(peak_kb) / 1024.0, probe.reset_ok() ? "true" : "false",
              double(counting_eigen::bytes - bytes_before) / (1024.0 * 1024.0), cpu, out.logp[0], (unsigned long long)h);
  return 0;
}
