// benchmarks/prefopt_bench.cpp — prefopt's side of the PyTorch comparison (driven by run.py).
//
//   prefopt_bench sgemm   --n 1024 [--warmup 2 --reps 5]
//   prefopt_bench dpo     --model DIR --pairs FILE --layout two_rows|prefix [--warmup 2 --reps 5]
//   prefopt_bench lm_head --rows 2048 --hidden 768 --vocab 32000 [--chunk auto|all|ROWS] [--fused 0|1] [--warmup --reps]
//   prefopt_bench profile, profile_head (as dpo, lm_head, on timed_backend.hpp: adds per-op milliseconds)
//
// Each prints one JSON object: per-repetition seconds, their median, the peak resident memory of
// the measured region over its start (bench_support.hpp), and values that run.py checks against
// PyTorch (loss and log-probs; LM-head sums), so a fast wrong answer cannot pass unnoticed.
// Threads: OMP_NUM_THREADS (prefopt's OpenMP loops and OpenBLAS's OpenMP build share it).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <type_traits>
#include <nlohmann/json.hpp>

#include "bench_support.hpp"
#include "dpo_spec.hpp"
#include "prefopt/backends/eigen/openblas_kernels.hpp"
#include "timed_backend.hpp"
#include "prefopt/backends/eigen.hpp"
#include "prefopt/losses/evaluate.hpp"
#include "prefopt/losses/sigmoid.hpp"
#include "prefopt/models/transformer_io.hpp"

using namespace prefopt;
using json = nlohmann::json;
using backend = backends::eigen;

namespace {

json common(const char* name, const bench::timings& t, const bench::peak_probe& probe) {
  return {{"case", name},
          {"impl", "prefopt"},
          {"threads", omp_get_max_threads()},
          {"times_s", t.wall},
          {"median_s", bench::median(t.wall)},
          {"cpu_s", t.cpu},
          {"median_cpu_s", bench::median(t.cpu)},
          {"peak_delta_kb", probe.peak_delta_kb()},
          {"rss_at_start_kb", probe.base_kb()},
          {"peak_reset_ok", probe.reset_ok()}};
}

// With the timed backend: milliseconds per repetition of each op, slowest first.
template <class Backend> void add_op_report(json& j, const bench::timings& t) {
  if constexpr (std::is_same_v<Backend, bench::timed_eigen>) {
    const double reps = double(t.wall.size());
    std::vector<std::pair<std::string, bench::op_time>> ops(bench::op_table().begin(), bench::op_table().end());
    std::sort(ops.begin(), ops.end(), [](const auto& x, const auto& y) { return x.second.seconds > y.second.seconds; });
    json table = json::array();
    for (const auto& [name, o] : ops)
      table.push_back({{"op", name}, {"calls_per_step", double(o.calls) / reps}, {"ms_per_step", 1e3 * o.seconds / reps},
                       {"cpu_ms_per_step", 1e3 * o.cpu_seconds / reps},
                       {"gflops_rate", o.flops > 0 ? o.flops / o.seconds * 1e-9 : 0.0}});
    j["ops"] = table;
  }
}

// C [n × n] = A·B through the backend's gemm (Eigen → OpenBLAS).
json run_sgemm(const bench::args& a) {
  const int n = a.num("n", 1024);
  const backend be;
  const auto A = bench::values(std::size_t(n) * n, 11, 1.0f), B = bench::values(std::size_t(n) * n, 12, 1.0f);
  std::vector<float> C(std::size_t(n) * n);
  bench::peak_probe probe;
  probe.start();
  const auto t = bench::time_runs(a.num("warmup", 2), a.num("reps", 5), [&] {
    be.gemm({.m = n, .n = n, .k = n, .lda = n, .ldb = n, .ldc = n}, A, B, C);
  });
  json j = common("sgemm", t, probe);
  j["n"] = n;
  j["gflops"] = 2.0 * n * double(n) * n / bench::median(t.wall) * 1e-9;
  return j;
}

// One DPO step: zero_grad, forward, TRL's sigmoid loss against fixed reference log-probs, backward.
// With the timed backend (`profile`), the op table of the timed repetitions is added.
template <class Backend> json run_dpo(const bench::args& a) {
  const bench::dpo_spec spec = bench::read_dpo_spec(a.str("pairs"));
  const auto& pairs = spec.pairs;
  const auto& ref = spec.reference_logps;
  const double beta = spec.beta;
  const std::string layout = a.str("layout");
  if (layout != "two_rows" && layout != "prefix") throw std::invalid_argument("--layout two_rows|prefix");
  auto m = models::from_pretrained<models::gpt2<Backend>>(Backend{}, a.str("model"));
  const models::token_batch batch = models::pack_pairs(pairs, layout == "prefix");
  const std::size_t n = pairs.size();
  models::sequence_logps out;
  double loss = 0.0;
  auto step = [&] {
    m.zero_grad();
    m.forward(batch, out, {});
    pair_batch<double> b;
    b.policy_chosen.assign(out.logp.begin(), out.logp.begin() + std::ptrdiff_t(n));
    b.policy_rejected.assign(out.logp.begin() + std::ptrdiff_t(n), out.logp.end());
    b.reference_chosen.assign(ref.begin(), ref.begin() + std::ptrdiff_t(n));
    b.reference_rejected.assign(ref.begin() + std::ptrdiff_t(n), ref.end());
    const auto r = evaluate(losses::sigmoid{.beta = beta}, b);
    loss = r.loss;
    std::vector<double> d(r.d_policy_chosen);
    d.insert(d.end(), r.d_policy_rejected.begin(), r.d_policy_rejected.end());
    m.backward(std::span<const double>(d));
  };
  bench::peak_probe probe;
  probe.start();
  const int warmup = a.num("warmup", 2);
  for (int i = 0; i < warmup; ++i) step();
  bench::op_table().clear();
  const auto t = bench::time_runs(0, a.num("reps", 5), step);
  json j = common("dpo", t, probe);
  add_op_report<Backend>(j, t);
  j["layout"] = layout;
  j["tokens"] = batch.size();
  j["rows"] = batch.rows();
  j["predictions"] = batch.predict_from.size();
  j["loss"] = loss;
  j["logps"] = out.logp;
  j["grad_sum_squares"] = m.backend().sum_squares(m.gradients());
  return j;
}

// The fused chunked LM head alone: forward (row statistics) + backward (dh, dW) on [rows × hidden].
// --fused 1: lm_head_chunked::fused, each row its own group, d loss / d logp handed over per chunk
// (known in advance here, as for the mean NLL): no logits recomputed.
template <class Backend> json run_lm_head(const bench::args& a) {
  const int rows = a.num("rows", 2048), C = a.num("hidden", 768), V = a.num("vocab", 32000);
  const bool fused = a.num("fused", 0) != 0;
  const std::string chunk = a.str("chunk", "auto");
  const std::size_t R = std::size_t(rows);
  Backend be;
  const auto h = bench::values(R * C, 1, 1.0f), w = bench::values(std::size_t(V) * C, 2, 0.1f);
  std::vector<std::int32_t> targets(R);
  for (std::size_t r = 0; r < R; ++r) targets[r] = std::int32_t(bench::mix(r, 3) % std::uint32_t(V));
  const std::vector<float> dlogp(R, -1.0f / float(rows));  // d(mean NLL) / d logp
  std::vector<float> lse(R), logp(R), dh(R * C);
  models::lm_head_chunked<Backend> head(chunk == "auto" ? 0 : chunk == "all" ? rows : std::stoi(chunk));
  host_buffer<float> dw;
  std::vector<int> bounds(R + 1);
  for (std::size_t r = 0; r <= R; ++r) bounds[r] = int(r);
  std::vector<float> dlogp_given(R);
  auto hand_over = [&](std::size_t g0, std::size_t g1) {  // groups are rows
    std::copy(dlogp.begin() + std::ptrdiff_t(g0), dlogp.begin() + std::ptrdiff_t(g1), dlogp_given.begin() + std::ptrdiff_t(g0));
  };
  bench::peak_probe probe;
  probe.start();
  const int warmup = a.num("warmup", 2);
  auto step = [&] {
    if (dw.size() != std::size_t(V) * C) dw = host_buffer<float>(std::size_t(V) * C);
    be.fill(dw.span(), 0.0f);  // as zero_grad
    if (fused) {
      head.fused(be, h, w, targets, bounds, C, V, {lse, logp, {}, {}, {}, {}}, dlogp_given, hand_over, dh, dw.span());
      return;
    }
    head.forward(be, h, w, targets, rows, C, V, {lse, logp, {}, {}, {}, {}}, true);
    head.backward(be, h, w, targets, lse, dlogp, rows, C, V, dh, dw.span());
  };
  for (int i = 0; i < warmup; ++i) step();
  bench::op_table().clear();
  const auto t = bench::time_runs(0, a.num("reps", 5), step);
  json j = common("lm_head", t, probe);
  add_op_report<Backend>(j, t);
  j.update({{"rows", rows}, {"hidden", C}, {"vocab", V}, {"chunk", head.rows_per_chunk(V)}, {"fused", fused},
            {"head_peak_floats", head.peak_floats(rows, V)}});
  double sum = 0.0;
  for (float x : logp) sum += x;
  j["logp_sum"] = sum;
  j["dh_sum_squares"] = be.sum_squares(dh);
  j["dw_sum_squares"] = be.sum_squares(dw.span());
  return j;
}

} // namespace

int main(int argc, char** argv) {
  prefopt::backends::use_better_blas_kernels(argv);  // as the prefopt program does
  try {
    if (argc < 2) throw std::invalid_argument("usage: prefopt_bench sgemm|dpo|lm_head --key value ...");
    const std::string cmd = argv[1];
    const bench::args a(argc, argv, 2);
    json j;
    if (cmd == "sgemm") j = run_sgemm(a);
    else if (cmd == "dpo") j = run_dpo<backend>(a);
    else if (cmd == "profile") j = run_dpo<bench::timed_eigen>(a);
    else if (cmd == "lm_head") j = run_lm_head<backend>(a);
    else if (cmd == "profile_head") j = run_lm_head<bench::timed_eigen>(a);
    else throw std::invalid_argument("unknown subcommand '" + cmd + "'");
    std::cout << j.dump() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "prefopt_bench: " << e.what() << "\n";
    return 1;
  }
}
