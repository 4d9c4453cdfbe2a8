// prefopt/backends/eigen/norms.hpp — eigen backend: LayerNorm and RMSNorm, forward and backward.
//
// One row per iteration (OpenMP over rows); row moments accumulate in double, results are float
// as in PyTorch: LayerNorm out = (x − μ)·rstd·w + b, rstd = 1/sqrt(var + eps), biased variance;
// RMSNorm (LlamaRMSNorm) out = w·(x·rstd), rstd = 1/sqrt(mean(x²) + eps). Weight gradients sum
// over rows in double, one thread per column block (add_column_sums).
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <span>

#include "prefopt/backends/eigen/common.hpp"

namespace prefopt::backends::detail {

struct eigen_norm_ops {
  // x, w, b, C, eps → out, mean, rstd
  void layernorm_forward(std::span<const float> x, std::span<const float> w, std::span<const float> b, int C,
                         float eps, std::span<float> out, std::span<float> mean, std::span<float> rstd) const {
    const op_checks::row_dims d =
        op_checks::layernorm_forward(x.size(), w.size(), b.size(), C, out.size(), mean.size(), rstd.size());
    const std::size_t T = d.rows, c = d.cols;
    const Eigen::Index n = Eigen::Index(c);
    const carray_map W(w.data(), n), Bv(b.data(), n);
    const std::ptrdiff_t rows = std::ptrdiff_t(T);
#pragma omp parallel for schedule(static) if (x.size() > parallel_grain)
    for (std::ptrdiff_t t = 0; t < rows; ++t) {
      const carray_map X(x.data() + std::size_t(t) * c, n);
      const double mu = X.cast<double>().sum() / double(c);
      const float var = float((X.cast<double>() - mu).square().sum() / double(c));
      const float m = float(mu), r = 1.0f / std::sqrt(var + eps);
      array_map(out.data() + std::size_t(t) * c, n) = (X - m) * r * W + Bv;
      mean[std::size_t(t)] = m;
      rstd[std::size_t(t)] = r;
    }
  }
  // dout, x, w, mean, rstd, C → dx +=, dw +=, db +=
  void layernorm_backward(std::span<const float> dout, std::span<const float> x, std::span<const float> w,
                          std::span<const float> mean, std::span<const float> rstd, int C, std::span<float> dx,
                          std::span<float> dw, std::span<float> db) const {
    const op_checks::row_dims d = op_checks::layernorm_backward(dout.size(), x.size(), w.size(), mean.size(),
                                                                rstd.size(), C, dx.size(), dw.size(), db.size());
    const std::size_t T = d.rows, c = d.cols;
    const Eigen::Index n = Eigen::Index(c);
    const carray_map W(w.data(), n);
    const std::ptrdiff_t rows = std::ptrdiff_t(T);
    // dx += rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dout·w, x̂ = (x − μ)·rstd
#pragma omp parallel for schedule(static) if (x.size() > parallel_grain)
    for (std::ptrdiff_t t = 0; t < rows; ++t) {
      const std::size_t o = std::size_t(t) * c;
      const carray_map X(x.data() + o, n), G(dout.data() + o, n);
      const float m = mean[std::size_t(t)], r = rstd[std::size_t(t)];
      const float a = float((G * W).cast<double>().sum() / double(c));
      const float bb = float((G * W * (X - m) * r).cast<double>().sum() / double(c));
      array_map(dx.data() + o, n) += r * (G * W - a - (X - m) * r * bb);
    }
    add_column_sums(T, c, dw.data(), [&](std::size_t t, std::size_t c0, std::size_t len) {
      const Eigen::Index l = Eigen::Index(len);
      return carray_map(dout.data() + t * c + c0, l) * (carray_map(x.data() + t * c + c0, l) - mean[t]) * rstd[t];
    });
    add_column_sums(T, c, db.data(), [&](std::size_t t, std::size_t c0, std::size_t len) {
      return carray_map(dout.data() + t * c + c0, Eigen::Index(len));
    });
  }

  // x, w, C, eps → out, rstd
  void rmsnorm_forward(std::span<const float> x, std::span<const float> w, int C, float eps, std::span<float> out,
                       std::span<float> rstd) const {
    const op_checks::row_dims d = op_checks::rmsnorm_forward(x.size(), w.size(), C, out.size(), rstd.size());
    const std::size_t T = d.rows, c = d.cols;
    const Eigen::Index n = Eigen::Index(c);
    const carray_map W(w.data(), n);
    const std::ptrdiff_t rows = std::ptrdiff_t(T);
#pragma omp parallel for schedule(static) if (x.size() > parallel_grain)
    for (std::ptrdiff_t t = 0; t < rows; ++t) {
      const carray_map X(x.data() + std::size_t(t) * c, n);
      const float var = float(X.cast<double>().square().sum() / double(c));
      const float r = 1.0f / std::sqrt(var + eps);
      array_map(out.data() + std::size_t(t) * c, n) = W * (X * r);
      rstd[std::size_t(t)] = r;
    }
  }
  // dout, x, w, rstd, C → dx +=, dw +=
  void rmsnorm_backward(std::span<const float> dout, std::span<const float> x, std::span<const float> w,
                        std::span<const float> rstd, int C, std::span<float> dx, std::span<float> dw) const {
    const op_checks::row_dims d =
        op_checks::rmsnorm_backward(dout.size(), x.size(), w.size(), rstd.size(), C, dx.size(), dw.size());
    const std::size_t T = d.rows, c = d.cols;
    const Eigen::Index n = Eigen::Index(c);
    const carray_map W(w.data(), n);
    const std::ptrdiff_t rows = std::ptrdiff_t(T);
    // dx += rstd·(g − x̂·mean(g·x̂)), g = dout·w, x̂ = x·rstd
#pragma omp parallel for schedule(static) if (x.size() > parallel_grain)
    for (std::ptrdiff_t t = 0; t < rows; ++t) {
      const std::size_t o = std::size_t(t) * c;
      const carray_map X(x.data() + o, n), G(dout.data() + o, n);
      const float r = rstd[std::size_t(t)];
      const float bb = float((G * W * X * r).cast<double>().sum() / double(c));
      array_map(dx.data() + o, n) += r * (G * W - X * r * bb);
    }
    add_column_sums(T, c, dw.data(), [&](std::size_t t, std::size_t c0, std::size_t len) {
      const Eigen::Index l = Eigen::Index(len);
      return carray_map(dout.data() + t * c + c0, l) * carray_map(x.data() + t * c + c0, l) * rstd[t];
    });
  }
};

} // namespace prefopt::backends::detail
