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
    const char* op = "layernorm_forward";
    const std::size_t c = positive(C, op, "C"), T = rows_of(x.size(), c, op, "x");
    require_size(w.size(), c, op, "w");
    require_size(b.size(), c, op, "b");
    require_size(out.size(), T * c, op, "out");
    require_size(mean.size(), T, op, "mean");
    require_size(rstd.size(), T, op, "rstd");
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
    const char* op = "layernorm_backward";
    const std::size_t c = positive(C, op, "C"), T = rows_of(dout.size(), c, op, "dout");
    require_size(x.size(), T * c, op, "x");
    require_size(w.size(), c, op, "w");
    require_size(mean.size(), T, op, "mean");
    require_size(rstd.size(), T, op, "rstd");
    require_size(dx.size(), T * c, op, "dx");
    require_size(dw.size(), c, op, "dw");
    require_size(db.size(), c, op, "db");
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
    const char* op = "rmsnorm_forward";
    const std::size_t c = positive(C, op, "C"), T = rows_of(x.size(), c, op, "x");
    require_size(w.size(), c, op, "w");
    require_size(out.size(), T * c, op, "out");
    require_size(rstd.size(), T, op, "rstd");
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
    const char* op = "rmsnorm_backward";
    const std::size_t c = positive(C, op, "C"), T = rows_of(dout.size(), c, op, "dout");
    require_size(x.size(), T * c, op, "x");
    require_size(w.size(), c, op, "w");
    require_size(rstd.size(), T, op, "rstd");
    require_size(dx.size(), T * c, op, "dx");
    require_size(dw.size(), c, op, "dw");
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
