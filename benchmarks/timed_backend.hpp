// benchmarks/timed_backend.hpp — the eigen backend with a stopwatch around every transformer op.
//
// timed_eigen derives from backends::eigen and hides each op the transformer calls with a wrapper
// that adds the op's wall and CPU time to a per-process table (gemms keyed by their shape, so a slow
// shape stands out). The model is a template over its backend, so models::gpt2<timed_eigen> runs
// the very same code with the timers in place. Used by `prefopt_bench profile`.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <time.h>

#include "prefopt/backends/eigen.hpp"

namespace prefopt::bench {

struct op_time {
  long calls = 0;
  double seconds = 0.0, cpu_seconds = 0.0;  // wall, and CPU of the whole process (all threads)
  double flops = 0.0;
};
inline double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}
inline std::map<std::string, op_time>& op_table() {
  static std::map<std::string, op_time> t;
  return t;
}
template <class F> void timed(const std::string& name, double flops, F&& f) {
  const double c = process_cpu_seconds();
  const auto a = std::chrono::steady_clock::now();
  f();
  auto& e = op_table()[name];
  ++e.calls;
  e.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
  e.cpu_seconds += process_cpu_seconds() - c;
  e.flops += flops;
}

struct timed_eigen : backends::eigen {
  using base = backends::eigen;
  void gemm(const gemm_args& g, std::span<const float> a, std::span<const float> b, std::span<float> c) const {
    const std::string name = std::string("gemm ") + (g.trans_a ? "T" : "N") + (g.trans_b ? "T" : "N") + " " +
                             std::to_string(g.m) + "x" + std::to_string(g.n) + "x" + std::to_string(g.k);
    timed(name, 2.0 * g.m * double(g.n) * g.k, [&] { base::gemm(g, a, b, c); });
  }
  template <class T> void fill(std::span<T> dst, std::type_identity_t<T> v) const {
    timed("fill", 0, [&] { base::fill(dst, v); });
  }
  template <class T> void copy(std::type_identity_t<std::span<const T>> s, std::span<T> d) const {
    timed("copy", 0, [&] { base::copy(s, d); });
  }
#define PREFOPT_TIMED(op)                                                                 \
  template <class... A> void op(A&&... a) const {                                         \
    timed(#op, 0, [&] { base::op(std::forward<A>(a)...); });                              \
  }
  PREFOPT_TIMED(embedding_forward)
  PREFOPT_TIMED(embedding_backward)
  PREFOPT_TIMED(add_inplace)
  PREFOPT_TIMED(bias_forward)
  PREFOPT_TIMED(bias_backward)
  PREFOPT_TIMED(gelu_forward)
  PREFOPT_TIMED(gelu_backward)
  PREFOPT_TIMED(layernorm_forward)
  PREFOPT_TIMED(layernorm_backward)
  PREFOPT_TIMED(attention_forward)
  PREFOPT_TIMED(attention_backward)
  PREFOPT_TIMED(lm_head_stats)
  PREFOPT_TIMED(lm_head_backward)
#undef PREFOPT_TIMED
};

} // namespace prefopt::bench
