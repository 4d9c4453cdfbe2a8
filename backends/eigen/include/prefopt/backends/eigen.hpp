// prefopt/backends/eigen.hpp — the fast CPU backend: Eigen maps over flat host buffers.
//
// Large products go to the system BLAS (OpenBLAS) through Eigen when the build defines
// EIGEN_USE_BLAS (the prefopt::eigen target does when a BLAS is found); elementwise loops use
// OpenMP when available. Every op is documented in core/backend.hpp, core/transformer_ops.hpp
// and docs/backend.md. The transformer ops live in eigen/ (one header per family), mixed in as
// bases of `eigen`.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "prefopt/backends/eigen/attention.hpp"
#include "prefopt/backends/eigen/common.hpp"
#include "prefopt/backends/eigen/lm_head.hpp"
#include "prefopt/backends/eigen/norms.hpp"
#include "prefopt/backends/eigen/pointwise.hpp"
#include "prefopt/core/backend.hpp"
#include "prefopt/core/bf16.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/core/host_backend.hpp"
#include "prefopt/core/host_bf16.hpp"
#include "prefopt/core/transformer_ops.hpp"
#include "prefopt/losses/concepts.hpp"
#include "prefopt/optim/update_rules.hpp"

namespace prefopt::backends {

struct eigen : host_backend_base,
               host_bf16_gemm<eigen>,
               detail::eigen_pointwise_ops,
               detail::eigen_norm_ops,
               detail::eigen_attention_ops,
               detail::eigen_lm_head_ops {
  static constexpr std::string_view name = "eigen";

  // ---- precision (core/bf16.hpp) ---------------------------------------------------------
  // bf16: gemm and attention round their inputs to bf16 first and compute in fp32 — an
  // emulation of the GPU's bf16 path, there to check it (each call copies its operands; it is
  // slower than fp32, never faster). A model's weight copy and stored norm outputs (core/bf16.hpp)
  // arrive as bf16 bits through gemm_bf16, widened exactly instead of rounded again
  // (matmul_precision, gemm, convert_to_bf16, gemm_bf16: core/host_bf16.hpp over gemm_fp32).

  // ---- blas ------------------------------------------------------------------------------
  using row_matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using cmap = Eigen::Map<const row_matrix, Eigen::Unaligned, Eigen::OuterStride<>>;
  using mmap = Eigen::Map<row_matrix, Eigen::Unaligned, Eigen::OuterStride<>>;

  void gemm_fp32(const gemm_args& g, std::span<const float> a, std::span<const float> b, std::span<float> c) const {
    const int ar = g.trans_a ? g.k : g.m, ac = g.trans_a ? g.m : g.k;
    const int br = g.trans_b ? g.n : g.k, bc = g.trans_b ? g.k : g.n;
    detail::require_size(a.size(), detail::span_of(ar, ac, g.lda), "gemm", "A");
    detail::require_size(b.size(), detail::span_of(br, bc, g.ldb), "gemm", "B");
    detail::require_size(c.size(), detail::span_of(g.m, g.n, g.ldc), "gemm", "C");
    if (g.m == 0 || g.n == 0) return;
    cmap A(a.data(), ar, ac, Eigen::OuterStride<>(g.lda));
    cmap B(b.data(), br, bc, Eigen::OuterStride<>(g.ldb));
    mmap C(c.data(), g.m, g.n, Eigen::OuterStride<>(g.ldc));
    if (g.beta == 0.0f) C.setZero();
    else if (g.beta != 1.0f) C *= g.beta;
    if (g.k == 0) return;
    if (!g.trans_a && !g.trans_b) C.noalias() += g.alpha * A * B;
    else if (g.trans_a && !g.trans_b) C.noalias() += g.alpha * A.transpose() * B;
    else if (!g.trans_a && g.trans_b) C.noalias() += g.alpha * A * B.transpose();
    else C.noalias() += g.alpha * A.transpose() * B.transpose();
  }

  // ---- attention (eigen/attention.hpp), its inputs rounded first under bf16 -------------
  void attention_forward(std::span<const float> q, std::span<const float> k, std::span<const float> v,
                         const attention_layout& lay, const attention_shape& sh, std::span<float> out,
                         std::span<float> lse) const {
    fixed_blas_threads();  // its tiles' products may run on OpenBLAS's threads (core/blas_threads.hpp)
    if (matmul_precision != precision::bf16) return eigen_attention_ops::attention_forward(q, k, v, lay, sh, out, lse);
    const std::vector<float> rq = round_bf16_copy(q), rk = round_bf16_copy(k), rv = round_bf16_copy(v);
    eigen_attention_ops::attention_forward(rq, rk, rv, lay, sh, out, lse);
  }
  void attention_backward(std::span<const float> dout, std::span<const float> q, std::span<const float> k,
                          std::span<const float> v, std::span<const float> out, std::span<const float> lse,
                          const attention_layout& lay, const attention_shape& sh, std::span<float> dq,
                          std::span<float> dk, std::span<float> dv) const {
    fixed_blas_threads();
    if (matmul_precision != precision::bf16)
      return eigen_attention_ops::attention_backward(dout, q, k, v, out, lse, lay, sh, dq, dk, dv);
    const std::vector<float> rd = round_bf16_copy(dout), rq = round_bf16_copy(q), rk = round_bf16_copy(k), rv = round_bf16_copy(v);
    eigen_attention_ops::attention_backward(rd, rq, rk, rv, out, lse, lay, sh, dq, dk, dv);
  }

  void axpy(float alpha, std::span<const float> x, std::span<float> y) const {
    detail::require_size(y.size(), x.size(), "axpy", "y");
    vec(y).head(Eigen::Index(x.size())) += alpha * cvec(x);
  }
  void scale(std::span<float> x, float alpha) const { vec(x) *= alpha; }
  double dot(std::span<const float> x, std::span<const float> y) const {
    detail::require_size(y.size(), x.size(), "dot", "y");
    return cvec(x).cast<double>().dot(cvec(y.first(x.size())).cast<double>());
  }
  double sum_squares(std::span<const float> x) const { return cvec(x).cast<double>().squaredNorm(); }

  // ---- softmax ---------------------------------------------------------------------------
  void log_softmax_rows(int rows, int cols, std::span<const float> x, std::span<float> out) const {
    detail::require_size(x.size(), std::size_t(rows) * std::size_t(cols), "log_softmax_rows", "x");
    detail::require_size(out.size(), std::size_t(rows) * std::size_t(cols), "log_softmax_rows", "out");
#pragma omp parallel for if (rows > 64)
    for (int r = 0; r < rows; ++r) {
      const float* xr = x.data() + std::size_t(r) * cols;
      float* o = out.data() + std::size_t(r) * cols;
      float mx = -INFINITY;
      for (int j = 0; j < cols; ++j) mx = std::max(mx, xr[j]);
      double s = 0.0;
      for (int j = 0; j < cols; ++j) s += std::exp(double(xr[j] - mx));
      const float lse = mx + float(std::log(s));
      for (int j = 0; j < cols; ++j) o[j] = xr[j] - lse;
    }
  }
  void log_softmax_rows_backward(int rows, int cols, std::span<const float> logp, std::span<const float> dy,
                                 std::span<float> dx) const {
    const std::size_t n = std::size_t(rows) * std::size_t(cols);
    detail::require_size(logp.size(), n, "log_softmax_rows_backward", "logp");
    detail::require_size(dy.size(), n, "log_softmax_rows_backward", "dy");
    detail::require_size(dx.size(), n, "log_softmax_rows_backward", "dx");
#pragma omp parallel for if (rows > 64)
    for (int r = 0; r < rows; ++r) {
      const std::size_t o = std::size_t(r) * cols;
      double s = 0.0;
      for (int j = 0; j < cols; ++j) s += dy[o + j];
      for (int j = 0; j < cols; ++j) dx[o + j] = dy[o + j] - std::exp(logp[o + j]) * float(s);
    }
  }

  // ---- optimizers ------------------------------------------------------------------------
  void adamw_step(std::span<float> p, std::span<const float> g, std::span<float> m, std::span<float> v,
                  const adamw_args& a) const {
    detail::require_size(g.size(), p.size(), "adamw_step", "grads");
    detail::require_size(m.size(), p.size(), "adamw_step", "m");
    detail::require_size(v.size(), p.size(), "adamw_step", "v");
    const std::ptrdiff_t n = std::ptrdiff_t(p.size());
#pragma omp parallel for if (n > 65536)
    for (std::ptrdiff_t i = 0; i < n; ++i) optim::rules::adamw(p[i], g[i], m[i], v[i], a);
  }
  void sgd_step(std::span<float> p, std::span<const float> g, std::span<float> buf, const sgd_args& a) const {
    detail::require_size(g.size(), p.size(), "sgd_step", "grads");
    if (a.momentum != 0.0f) detail::require_size(buf.size(), p.size(), "sgd_step", "momentum buffer");
    const std::ptrdiff_t n = std::ptrdiff_t(p.size());
    float dummy = 0.0f;
    for (std::ptrdiff_t i = 0; i < n; ++i) optim::rules::sgd(p[i], g[i], a.momentum != 0.0f ? buf[i] : dummy, a);
  }

private:
  static Eigen::Map<Eigen::VectorXf> vec(std::span<float> x) { return {x.data(), Eigen::Index(x.size())}; }
  static Eigen::Map<const Eigen::VectorXf> cvec(std::span<const float> x) {
    return {x.data(), Eigen::Index(x.size())};
  }
};

static_assert(Backend<eigen>);
static_assert(backend_ops::transformer<eigen>);

} // namespace prefopt::backends
