// prefopt/backends/cuda/optim.hpp — cuda backend: AdamW and SGD, one fused pass over the flat
// parameter buffer (optim/update_rules.hpp per element, in backends/cuda/src/blas1.cu).
// Global-norm clipping is optim/clip.hpp over sum_squares and scale (blas.hpp).
#pragma once

#include <span>

#include "prefopt/backends/cuda/common.hpp"

namespace prefopt::backends::cuda_detail {

template <class Self> struct cuda_optim_ops {
  void adamw_step(std::span<float> p, std::span<const float> g, std::span<float> m, std::span<float> v,
                  const adamw_args& a) const {
    require_size(g.size(), p.size(), "adamw_step", "grads");
    require_size(m.size(), p.size(), "adamw_step", "m");
    require_size(v.size(), p.size(), "adamw_step", "v");
    check(cuda_kernels::adamw(p.data(), g.data(), m.data(), v.data(), p.size(), a, stream()), "adamw_step");
  }
  void sgd_step(std::span<float> p, std::span<const float> g, std::span<float> buf, const sgd_args& a) const {
    require_size(g.size(), p.size(), "sgd_step", "grads");
    if (a.momentum != 0.0f) require_size(buf.size(), p.size(), "sgd_step", "momentum buffer");
    check(cuda_kernels::sgd(p.data(), g.data(), a.momentum != 0.0f ? buf.data() : nullptr, p.size(), a, stream()),
          "sgd_step");
  }

private:
  cudaStream_t stream() const { return static_cast<const Self&>(*this).ctx().stream(); }
};

} // namespace prefopt::backends::cuda_detail
