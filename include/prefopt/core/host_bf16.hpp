// prefopt/core/host_bf16.hpp — precision bf16 on a host backend (eigen, xtensor): the emulation
// of the GPU's bf16 products (core/bf16.hpp) over the backend's own fp32 product,
// Self::gemm_fp32. It is there to check the GPU path, not for speed: each call copies its operands.
//   gemm            under bf16 rounds copies of A and B to bf16, then multiplies in fp32 (every
//                   product first keeps OpenBLAS's thread count fixed: core/blas_threads.hpp)
//   convert_to_bf16 the weight copy's bits (core/bf16.hpp, "The weight copy")
//   gemm_bf16       each operand fp32 (rounded as gemm does) or bf16 bits (a weight copy, a stored
//                   norm output), widened exactly; only the elements the product reads are copied
//                   (a weight operand may run to the end of the parameter buffer)
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "prefopt/core/backend.hpp"
#include "prefopt/core/bf16.hpp"
#include "prefopt/core/blas_threads.hpp"
#include "prefopt/core/op_checks.hpp"

namespace prefopt {

template <class Self> struct host_bf16_gemm {
  precision matmul_precision = precision::fp32;

  void gemm(const gemm_args& g, std::span<const float> a, std::span<const float> b, std::span<float> c) const {
    fixed_blas_threads();  // core/blas_threads.hpp: OpenBLAS's OpenMP threads must all start
    if (matmul_precision == precision::bf16) self().gemm_fp32(g, round_bf16_copy(a), round_bf16_copy(b), c);
    else self().gemm_fp32(g, a, b, c);
  }
  void convert_to_bf16(std::span<const float> x, std::span<std::uint16_t> y) const {
    op_checks::require_size(y.size(), x.size(), "convert_to_bf16", "y");
    prefopt::to_bf16(x, y);
  }
  // gemm under bf16 with each operand fp32 (rounded, as gemm does) or bf16 bits (widened exactly).
  void gemm_bf16(const gemm_args& g, gemm_operand a, gemm_operand b, std::span<float> c) const {
    const int ar = g.trans_a ? g.k : g.m, ac = g.trans_a ? g.m : g.k;
    const int br = g.trans_b ? g.n : g.k, bc = g.trans_b ? g.k : g.n;
    const std::size_t na = op_checks::span_of(ar, ac, g.lda), nb = op_checks::span_of(br, bc, g.ldb);
    op_checks::require_size(a.size(), na, "gemm_bf16", "A");
    op_checks::require_size(b.size(), nb, "gemm_bf16", "B");
    fixed_blas_threads();
    self().gemm_fp32(g, widened(a.first(na)), widened(b.first(nb)), c);
  }

private:
  const Self& self() const { return static_cast<const Self&>(*this); }
  static std::vector<float> widened(gemm_operand x) {
    return x.is_bf16() ? from_bf16_copy(x.bf16()) : round_bf16_copy(x.f32());
  }
};

} // namespace prefopt
