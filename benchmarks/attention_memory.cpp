// benchmarks/attention_memory.cpp — peak memory and time of one attention layer, forward + backward,
// on the eigen backend (float32), GPT-2-small heads by default (12 query and key/value heads of 64).
//
//   prefopt_attention_bench --tokens 4096 [--rows 1] [--heads 12] [--kv-heads 12] [--head-dim 64]
//                           [--reps 0]
//   prefopt_attention_bench --model 1 --tokens 2048
// The first form prints one JSON line:
//   peak_mib:     peak resident memory of forward + backward above what it started with (q, k, v,
//                 dout, out, dq, dk, dv already allocated and touched): the buffer forward keeps for
//                 backward (the log-sum-exp, T·Hq floats) plus every scratch the two ops use;
//   saved_mib:    the size of that kept buffer alone;
//   io_mib:       the activations and gradients allocated before the measurement;
//   wall_s/cpu_s: median wall and CPU seconds of forward + backward over --reps repetitions (after
//                 one warm-up), when --reps > 0;
//   checksum:     Σ out + Σ dq + Σ dk + Σ dv, so that two builds can be seen to compute the same thing.
// The second form runs a whole GPT-2 small (12 layers, width 768, 12 heads, vocab 50257, random
// weights as Hugging Face initializes them) on one row of `tokens` tokens, prompt and completion
// halves, forward (activations kept) + backward of the completion's log-prob, and prints peak_mib
// over the process after the model and its gradient buffer exist, and the log-prob (checksum).
// Each call measures one process: run one process per size (peak resident memory never falls).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
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
void fill(std::vector<float>& x, std::uint64_t seed) {
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = prefopt::bench::value(i, seed, 2.0f);
}

int run_model(int L) {
  prefopt::models::transformer_config c;
  c.vocab_size = 50257, c.hidden = 768, c.layers = 12, c.heads = c.kv_heads = 12, c.head_dim = 64;
  c.intermediate = 3072, c.max_positions = std::max(L, 1024);
  c.attention_bias = c.o_bias = c.mlp_bias = true;
  prefopt::models::gpt2<prefopt::backends::eigen> m(prefopt::backends::eigen{}, c);
  prefopt::models::init_weights(m, 7);
  m.zero_grad();
  std::vector<std::int32_t> prompt(std::size_t(L / 2)), completion(std::size_t(L - L / 2));
  for (std::size_t i = 0; i < prompt.size(); ++i) prompt[i] = std::int32_t(prefopt::bench::mix(i, 1) % 50257);
  for (std::size_t i = 0; i < completion.size(); ++i) completion[i] = std::int32_t(prefopt::bench::mix(i, 2) % 50257);
  prefopt::models::token_batch b;
  b.add_row(prompt, {&completion}, {0});
  prefopt::bench::peak_probe probe;
  probe.start();
  prefopt::models::sequence_logps out;
  m.forward(b, out);
  const std::vector<double> d{1.0};
  m.backward(d);
  std::printf("{\"model\": \"gpt2-small\", \"tokens_per_row\": %d, \"peak_mib\": %.1f, \"peak_reset_ok\": %s, "
              "\"logp\": %.6f}\n",
              L, double(probe.peak_delta_kb()) / 1024.0, probe.reset_ok() ? "true" : "false", out.logp[0]);
  return 0;
}
} // namespace

int main(int argc, char** argv) {
  if (arg(argc, argv, "--model", 0) != 0) return run_model(arg(argc, argv, "--tokens", 1024));
  const int L = arg(argc, argv, "--tokens", 1024), rows = arg(argc, argv, "--rows", 1);
  const int Hq = arg(argc, argv, "--heads", 12), Hkv = arg(argc, argv, "--kv-heads", Hq);
  const int D = arg(argc, argv, "--head-dim", 64), reps = arg(argc, argv, "--reps", 0);
  const int T = L * rows;
  const std::size_t QD = std::size_t(T) * Hq * D, KD = std::size_t(T) * Hkv * D;
  std::vector<std::int32_t> offsets(std::size_t(rows) + 1), segment(std::size_t(T), 0);
  for (int r = 0; r <= rows; ++r) offsets[std::size_t(r)] = r * L;
  const prefopt::attention_layout lay{rows, L, offsets, segment};
  const prefopt::attention_shape sh{T, Hq, Hkv, D};
  std::vector<float> q(QD), k(KD), v(KD), dout(QD), out(QD), dq(QD), dk(KD), dv(KD);
  fill(q, 1), fill(k, 2), fill(v, 3), fill(dout, 4);
  std::fill(out.begin(), out.end(), 0.0f), std::fill(dq.begin(), dq.end(), 0.0f);
  std::fill(dk.begin(), dk.end(), 0.0f), std::fill(dv.begin(), dv.end(), 0.0f);
  const prefopt::backends::eigen be;
  const std::size_t saved_size = prefopt::attention_lse_size(std::size_t(T), Hq);

  prefopt::bench::peak_probe probe;
  probe.start();
  double checksum = 0.0;
  {
    std::vector<float> saved(saved_size);
    be.attention_forward(q, k, v, lay, sh, out, saved);
    be.attention_backward(dout, q, k, v, out, saved, lay, sh, dq, dk, dv);
    for (const auto* x : {&out, &dq, &dk, &dv})
      for (float e : *x) checksum += double(e);
  }
  const double peak_mib = double(probe.peak_delta_kb()) / 1024.0;

  double wall = 0.0, cpu = 0.0;
  if (reps > 0) {
    std::vector<float> saved(saved_size);
    auto t = prefopt::bench::time_runs(1, reps, [&] {
      be.attention_forward(q, k, v, lay, sh, out, saved);
      be.attention_backward(dout, q, k, v, out, saved, lay, sh, dq, dk, dv);
    });
    std::sort(t.wall.begin(), t.wall.end()), std::sort(t.cpu.begin(), t.cpu.end());
    wall = t.wall[t.wall.size() / 2], cpu = t.cpu[t.cpu.size() / 2];
  }
  const double mib = 1.0 / (1024.0 * 1024.0);
  std::printf("{\"tokens_per_row\": %d, \"rows\": %d, \"heads\": %d, \"kv_heads\": %d, \"head_dim\": %d, "
              "\"peak_mib\": %.1f, \"peak_reset_ok\": %s, \"saved_mib\": %.3f, \"io_mib\": %.1f, \"wall_s\": %.4f, "
              "\"cpu_s\": %.4f, \"checksum\": %.6e}\n",
              L, rows, Hq, Hkv, D, peak_mib, probe.reset_ok() ? "true" : "false", double(saved_size) * 4.0 * mib,
              double(4 * QD + 4 * KD) * 4.0 * mib, wall, cpu, checksum);
  return 0;
}
