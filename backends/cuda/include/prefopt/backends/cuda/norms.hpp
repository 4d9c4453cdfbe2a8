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
    const std::size_t T =
        op_checks::layernorm_forward(x.size(), w.size(), b.size(), C, out.size(), mean.size(), rstd.size()).rows;
    check(cuda_kernels::layernorm_forward(x.data(), w.data(), b.data(), T, C, eps, out.data(), mean.data(), rstd.data(),
                                          stream()),
          "layernorm_forward");
  }
  void layernorm_backward(std::span<const float> dout, std::span<const float> x, std::span<const float> w,
                          std::span<const float> mean, std::span<const float> rstd, int C, std::span<float> dx,
                          std::span<float> dw, std::span<float> db) const {
    const std::size_t T = op_checks::layernorm_backward(dout.size(), x.size(), w.size(), mean.size(), rstd.size(), C,
                                                          dx.size(), dw.size(), db.size()).rows;
    check(cuda_kernels::layernorm_backward(dout.data(), x.data(), w.data(), mean.data(), rstd.data(), T, C, dx.data(),
                                           dw.data(), db.data(), stream()),
          "layernorm_backward");
  }
  void rmsnorm_forward(std::span<const float> x, std::span<const float> w, int C, float eps, std::span<float> out,
                       std::span<float> rstd) const {
    const std::size_t T = op_checks::rmsnorm_forward(x.size(), w.size(), C, out.size(), rstd.size()).rows;
    check(cuda_kernels::rmsnorm_forward(x.data(), w.data(), T, C, eps, out.data(), rstd.data(), stream()),
          "rmsnorm_forward");
  }
  void rmsnorm_backward(std::span<const float> dout, std::span<const float> x, std::span<const float> w,
                        std::span<const float> rstd, int C, std::span<float> dx, std::span<float> dw) const {
    const std::size_t T =
        op_checks::rmsnorm_backward(dout.size(), x.size(), w.size(), rstd.size(), C, dx.size(), dw.size()).rows;
    check(cuda_kernels::rmsnorm_backward(dout.data(), x.data(), w.data(), rstd.data(), T, C, dx.data(), dw.data(),
                                         stream()),
          "rmsnorm_backward");
  }

private:
  cudaStream_t stream() const { return static_cast<const Self&>(*this).ctx().stream(); }
};

} // namespace prefopt::backends::cuda_detail
