// prefopt/backends/xtensor.hpp — the numpy-like CPU backend over xtensor + xtensor-blas.
//
// Written for clarity: each op reads like the numpy expression it computes, so this backend is
// the reference the others are checked against (and the door for numpy-minded research code).
// Products go through xtensor-blas (BLAS). Ops are documented in core/backend.hpp and
// core/transformer_ops.hpp; the transformer ops live in xtensor/ (one header per family), mixed
// in as bases of `xtensor`.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <xtensor-blas/xlinalg.hpp>
#include <xtensor/xadapt.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xreducer.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include "prefopt/backends/xtensor/attention.hpp"
#include "prefopt/backends/xtensor/common.hpp"
#include "prefopt/backends/xtensor/lm_head.hpp"
#include "prefopt/backends/xtensor/norms.hpp"
#include "prefopt/backends/xtensor/pointwise.hpp"
#include "prefopt/core/backend.hpp"
#include "prefopt/core/bf16.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/core/host_backend.hpp"
#include "prefopt/core/host_bf16.hpp"
#include "prefopt/core/transformer_ops.hpp"
#include "prefopt/losses/concepts.hpp"

namespace prefopt::backends {

struct xtensor : host_backend_base,
                 host_bf16_gemm<xtensor>,
                 xdetail::xtensor_pointwise_ops,
                 xdetail::xtensor_norm_ops,
                 xdetail::xtensor_attention_ops,
                 xdetail::xtensor_lm_head_ops {
  static constexpr std::string_view name = "xtensor";

  // ---- precision (core/bf16.hpp) ---------------------------------------------------------
  // bf16: gemm and attention round copies of their inputs to bf16 and compute in fp32, as the
  // eigen backend's emulation (for checking, not speed); gemm_bf16 takes operands given as bf16
  // bits (matmul_precision, gemm, convert_to_bf16, gemm_bf16: core/host_bf16.hpp over gemm_fp32).

  // ---- blas: C = alpha · op(A) @ op(B) + beta · C ------------------------------------------
  void gemm_fp32(const gemm_args& g, std::span<const float> a, std::span<const float> b, std::span<float> c) const {
    const int ar = g.trans_a ? g.k : g.m, ac = g.trans_a ? g.m : g.k;
    const int br = g.trans_b ? g.n : g.k, bc = g.trans_b ? g.k : g.n;
    xdetail::require_size(a.size(), op_checks::span_of(ar, ac, g.lda), "gemm", "A");
    xdetail::require_size(b.size(), op_checks::span_of(br, bc, g.ldb), "gemm", "B");
    xdetail::require_size(c.size(), op_checks::span_of(g.m, g.n, g.ldc), "gemm", "C");
    if (g.m == 0 || g.n == 0) return;
    auto C = xdetail::matrix(c.data(), g.m, g.n, g.ldc);
    if (g.k == 0) {
      C = (g.beta == 0.0f) ? xt::xtensor<float, 2>(xt::zeros<float>({g.m, g.n})) : xt::xtensor<float, 2>(g.beta * C);
      return;
    }
    xt::xtensor<float, 2> A = xdetail::matrix(a.data(), ar, ac, g.lda);
    xt::xtensor<float, 2> B = xdetail::matrix(b.data(), br, bc, g.ldb);
    xt::xtensor<float, 2> opA = g.trans_a ? xt::xtensor<float, 2>(xt::transpose(A)) : A;
    xt::xtensor<float, 2> opB = g.trans_b ? xt::xtensor<float, 2>(xt::transpose(B)) : B;
    xt::xtensor<float, 2> AB = xt::linalg::dot(opA, opB);
    if (g.beta == 0.0f) C = g.alpha * AB;
    else C = g.alpha * AB + g.beta * C;
  }
  // ---- attention (xtensor/attention.hpp), its inputs rounded first under bf16 -----------
  void attention_forward(std::span<const float> q, std::span<const float> k, std::span<const float> v,
                         const attention_layout& lay, const attention_shape& sh, std::span<float> out,
                         std::span<float> lse) const {
    if (matmul_precision != precision::bf16) return xtensor_attention_ops::attention_forward(q, k, v, lay, sh, out, lse);
    xtensor_attention_ops::attention_forward(round_bf16_copy(q), round_bf16_copy(k), round_bf16_copy(v), lay, sh, out, lse);
  }
  void attention_backward(std::span<const float> dout, std::span<const float> q, std::span<const float> k,
                          std::span<const float> v, std::span<const float> out, std::span<const float> lse,
                          const attention_layout& lay, const attention_shape& sh, std::span<float> dq,
                          std::span<float> dk, std::span<float> dv) const {
    if (matmul_precision != precision::bf16)
      return xtensor_attention_ops::attention_backward(dout, q, k, v, out, lse, lay, sh, dq, dk, dv);
    xtensor_attention_ops::attention_backward(round_bf16_copy(dout), round_bf16_copy(q), round_bf16_copy(k),
                                              round_bf16_copy(v), out, lse, lay, sh, dq, dk, dv);
  }

  void axpy(float alpha, std::span<const float> x, std::span<float> y) const {
    xdetail::require_size(y.size(), x.size(), "axpy", "y");
    auto Y = xdetail::vector(y.data(), x.size());
    Y += alpha * xdetail::vector(x.data(), x.size());
  }
  void scale(std::span<float> x, float alpha) const {
    auto X = xdetail::vector(x.data(), x.size());
    X *= alpha;
  }
  double dot(std::span<const float> x, std::span<const float> y) const {
    xdetail::require_size(y.size(), x.size(), "dot", "y");
    auto X = xt::cast<double>(xdetail::vector(x.data(), x.size()));
    auto Y = xt::cast<double>(xdetail::vector(y.data(), x.size()));
    return x.empty() ? 0.0 : double(xt::sum(X * Y)());
  }
  double sum_squares(std::span<const float> x) const { return dot(x, x); }

  // ---- softmax: logp = x − logsumexp(x, axis=1) --------------------------------------------
  void log_softmax_rows(int rows, int cols, std::span<const float> x, std::span<float> out) const {
    xdetail::require_size(x.size(), std::size_t(rows) * cols, "log_softmax_rows", "x");
    xdetail::require_size(out.size(), std::size_t(rows) * cols, "log_softmax_rows", "out");
    if (rows == 0 || cols == 0) return;
    auto X = xdetail::matrix(x.data(), rows, cols, cols);
    auto O = xdetail::matrix(out.data(), rows, cols, cols);
    xt::xtensor<double, 2> xd = xt::cast<double>(X);
    xt::xtensor<double, 2> mx = xt::amax(xd, {1}, xt::keep_dims);
    xt::xtensor<double, 2> lse = mx + xt::log(xt::sum(xt::exp(xd - mx), {1}, xt::keep_dims));
    O = xt::cast<float>(xd - lse);
  }
  // dx = dy − softmax(x) · sum(dy, axis=1)
  void log_softmax_rows_backward(int rows, int cols, std::span<const float> logp, std::span<const float> dy,
                                 std::span<float> dx) const {
    const std::size_t n = std::size_t(rows) * cols;
    xdetail::require_size(logp.size(), n, "log_softmax_rows_backward", "logp");
    xdetail::require_size(dy.size(), n, "log_softmax_rows_backward", "dy");
    xdetail::require_size(dx.size(), n, "log_softmax_rows_backward", "dx");
    if (rows == 0 || cols == 0) return;
    auto L = xdetail::matrix(logp.data(), rows, cols, cols);
    auto DY = xdetail::matrix(dy.data(), rows, cols, cols);
    auto DX = xdetail::matrix(dx.data(), rows, cols, cols);
    xt::xtensor<double, 2> s = xt::sum(xt::cast<double>(DY), {1}, xt::keep_dims);
    DX = xt::cast<float>(xt::cast<double>(DY) - xt::exp(xt::cast<double>(L)) * s);
  }

  // ---- optimizers, as torch.optim writes them ----------------------------------------------
  void adamw_step(std::span<float> p, std::span<const float> g, std::span<float> m, std::span<float> v,
                  const adamw_args& a) const {
    const std::size_t n = p.size();
    xdetail::require_size(g.size(), n, "adamw_step", "grads");
    xdetail::require_size(m.size(), n, "adamw_step", "m");
    xdetail::require_size(v.size(), n, "adamw_step", "v");
    auto P = xdetail::vector(p.data(), n);
    auto G = xdetail::vector(g.data(), n);
    auto M = xdetail::vector(m.data(), n);
    auto V = xdetail::vector(v.data(), n);
    P -= a.lr * a.weight_decay * P;
    M = a.beta1 * M + (1.0f - a.beta1) * G;
    V = a.beta2 * V + (1.0f - a.beta2) * G * G;
    P -= a.lr * (M / a.bias_correction1) / (xt::sqrt(V / a.bias_correction2) + a.eps);
  }
  void sgd_step(std::span<float> p, std::span<const float> g, std::span<float> buf, const sgd_args& a) const {
    const std::size_t n = p.size();
    xdetail::require_size(g.size(), n, "sgd_step", "grads");
    auto P = xdetail::vector(p.data(), n);
    xt::xtensor<float, 1> d = xdetail::vector(g.data(), n);
    if (a.weight_decay != 0.0f) d += a.weight_decay * P;
    if (a.momentum != 0.0f) {
      xdetail::require_size(buf.size(), n, "sgd_step", "momentum buffer");
      auto B = xdetail::vector(buf.data(), n);
      if (a.first_step) B = d;
      else B = a.momentum * B + (1.0f - a.dampening) * d;
      if (a.nesterov) d = d + a.momentum * B;
      else d = B;
    }
    P -= a.lr * d;
  }
};

static_assert(Backend<xtensor>);
static_assert(backend_ops::transformer<xtensor>);

} // namespace prefopt::backends
