// prefopt/backends/xtensor/norms.hpp — xtensor backend: LayerNorm and RMSNorm, forward and backward.
//
// numpy style over the [T × C] rows, in double, rounded to float at the end:
//   LayerNorm: μ = mean(x), var = mean((x − μ)²), rstd = 1/sqrt(var + eps), out = (x − μ)·rstd·w + b
//   RMSNorm:   rstd = 1/sqrt(mean(x²) + eps), out = w·(x·rstd)
#pragma once

#include <cmath>
#include <span>
#include <xtensor/xmath.hpp>
#include <xtensor/xreducer.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include "prefopt/backends/xtensor/common.hpp"

namespace prefopt::backends::xdetail {

struct xtensor_norm_ops {
  void layernorm_forward(std::span<const float> x, std::span<const float> w, std::span<const float> b, int C,
                         float eps, std::span<float> out, std::span<float> mean, std::span<float> rstd) const {
    const op_checks::row_dims d =
        op_checks::layernorm_forward(x.size(), w.size(), b.size(), C, out.size(), mean.size(), rstd.size());
    const std::size_t T = d.rows, c = d.cols;
    if (T == 0) return;
    xt::xtensor<double, 2> X = xt::cast<double>(matrix(x.data(), T, c, c));
    xt::xtensor<double, 1> mu = xt::mean(X, {1});
    xt::xtensor<double, 1> var = xt::mean(xt::square(X - column(mu)), {1});
    xt::xtensor<float, 1> rs = 1.0f / xt::sqrt(xt::cast<float>(var) + eps);
    auto Out = matrix(out.data(), T, c, c);
    Out = xt::cast<float>((X - column(mu)) * column(xt::cast<double>(rs))) * vector(w.data(), c) + vector(b.data(), c);
    vector(mean.data(), T) = xt::cast<float>(mu);
    vector(rstd.data(), T) = rs;
  }
  // x̂ = (x − μ)·rstd, g = dout·w:  dx += rstd·(g − mean(g) − x̂·mean(g·x̂)), dw += Σ_t dout·x̂, db += Σ_t dout
  void layernorm_backward(std::span<const float> dout, std::span<const float> x, std::span<const float> w,
                          std::span<const float> mean, std::span<const float> rstd, int C, std::span<float> dx,
                          std::span<float> dw, std::span<float> db) const {
    const op_checks::row_dims d = op_checks::layernorm_backward(dout.size(), x.size(), w.size(), mean.size(),
                                                                rstd.size(), C, dx.size(), dw.size(), db.size());
    const std::size_t T = d.rows, c = d.cols;
    if (T == 0) return;
    xt::xtensor<double, 2> G = xt::cast<double>(matrix(dout.data(), T, c, c));
    xt::xtensor<double, 1> rs = xt::cast<double>(vector(rstd.data(), T));
    xt::xtensor<double, 2> xhat =
        (xt::cast<double>(matrix(x.data(), T, c, c)) - column(xt::cast<double>(vector(mean.data(), T)))) * column(rs);
    xt::xtensor<double, 2> g = G * xt::cast<double>(vector(w.data(), c));
    xt::xtensor<double, 1> mg = xt::mean(g, {1}), mgx = xt::mean(g * xhat, {1});
    matrix(dx.data(), T, c, c) += xt::cast<float>(column(rs) * (g - column(mg) - xhat * column(mgx)));
    vector(dw.data(), c) += xt::cast<float>(xt::sum(G * xhat, {0}));
    vector(db.data(), c) += xt::cast<float>(xt::sum(G, {0}));
  }

  void rmsnorm_forward(std::span<const float> x, std::span<const float> w, int C, float eps, std::span<float> out,
                       std::span<float> rstd) const {
    const op_checks::row_dims d = op_checks::rmsnorm_forward(x.size(), w.size(), C, out.size(), rstd.size());
    const std::size_t T = d.rows, c = d.cols;
    if (T == 0) return;
    auto X = matrix(x.data(), T, c, c);
    xt::xtensor<double, 1> ms = xt::mean(xt::square(xt::cast<double>(X)), {1});
    xt::xtensor<float, 1> rs = 1.0f / xt::sqrt(xt::cast<float>(ms) + eps);
    matrix(out.data(), T, c, c) = vector(w.data(), c) * (X * column(rs));
    vector(rstd.data(), T) = rs;
  }
  // x̂ = x·rstd, g = dout·w:  dx += rstd·(g − x̂·mean(g·x̂)), dw += Σ_t dout·x̂
  void rmsnorm_backward(std::span<const float> dout, std::span<const float> x, std::span<const float> w,
                        std::span<const float> rstd, int C, std::span<float> dx, std::span<float> dw) const {
    const op_checks::row_dims d =
        op_checks::rmsnorm_backward(dout.size(), x.size(), w.size(), rstd.size(), C, dx.size(), dw.size());
    const std::size_t T = d.rows, c = d.cols;
    if (T == 0) return;
    xt::xtensor<double, 2> G = xt::cast<double>(matrix(dout.data(), T, c, c));
    xt::xtensor<double, 1> rs = xt::cast<double>(vector(rstd.data(), T));
    xt::xtensor<double, 2> xhat = xt::cast<double>(matrix(x.data(), T, c, c)) * column(rs);
    xt::xtensor<double, 2> g = G * xt::cast<double>(vector(w.data(), c));
    xt::xtensor<double, 1> mgx = xt::mean(g * xhat, {1});
    matrix(dx.data(), T, c, c) += xt::cast<float>(column(rs) * (g - xhat * column(mgx)));
    vector(dw.data(), c) += xt::cast<float>(xt::sum(G * xhat, {0}));
  }
};

} // namespace prefopt::backends::xdetail
