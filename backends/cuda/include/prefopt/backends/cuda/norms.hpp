// prefopt/backends/cuda/norms.hpp — cuda backend: LayerNorm and RMSNorm, forward and backward.
//
// Kernels in backends/cuda/src/transformer.cu over core/device_math.hpp: one block per row for the
// row statistics (double sums), one thread per column for dw/db (double sums over the rows).
#pragma once

#include <span>

#include "prefopt/backends/cuda/common.hpp"

namespace prefopt::backends::cuda_detail {

template <class Self> struct cuda_norm_ops {
  void layernorm_forward(std::span<const float> x, std::span<const float> w, std::span<const float> b, int C, float eps,
                         std::span<float> out, std::span<float> mean, std::span<float> rstd) const {
    const char* op = "layernorm_forward";
    const std::size_t c = positive(C, op, "C"), T = rows_of(x.size(), c, op, "x");
    require_size(w.size(), c, op, "w");
    require_size(b.size(), c, op, "b");
    require_size(out.size(), T * c, op, "out");
    require_size(mean.size(), T, op, "mean");
    require_size(rstd.size(), T, op, "rstd");
    check(cuda_kernels::layernorm_forward(x.data(), w.data(), b.data(), T, C, eps, out.data(), mean.data(), rstd.data(),
                                          stream()),
          op);
  }
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
    check(cuda_kernels::layernorm_backward(dout.data(), x.data(), w.data(), mean.data(), rstd.data(), T, C, dx.data(),
                                           dw.data(), db.data(), stream()),
          op);
  }
  void rmsnorm_forward(std::span<const float> x, std::span<const float> w, int C, float eps, std::span<float> out,
                       std::span<float> rstd) const {
    const char* op = "rmsnorm_forward";
    const std::size_t c = positive(C, op, "C"), T = rows_of(x.size(), c, op, "x");
    require_size(w.size(), c, op, "w");
    require_size(out.size(), T * c, op, "out");
    require_size(rstd.size(), T, op, "rstd");
    check(cuda_kernels::rmsnorm_forward(x.data(), w.data(), T, C, eps, out.data(), rstd.data(), stream()), op);
  }
  void rmsnorm_backward(std::span<const float> dout, std::span<const float> x, std::span<const float> w,
                        std::span<const float> rstd, int C, std::span<float> dx, std::span<float> dw) const {
    const char* op = "rmsnorm_backward";
    const std::size_t c = positive(C, op, "C"), T = rows_of(dout.size(), c, op, "dout");
    require_size(x.size(), T * c, op, "x");
    require_size(w.size(), c, op, "w");
    require_size(rstd.size(), T, op, "rstd");
    require_size(dx.size(), T * c, op, "dx");
    require_size(dw.size(), c, op, "dw");
    check(cuda_kernels::rmsnorm_backward(dout.data(), x.data(), w.data(), rstd.data(), T, C, dx.data(), dw.data(), stream()),
          op);
  }

private:
  cudaStream_t stream() const { return static_cast<const Self&>(*this).ctx().stream(); }
};

} // namespace prefopt::backends::cuda_detail
