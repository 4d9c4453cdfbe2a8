// prefopt/backends/cuda/blas.hpp — cuda backend: GEMM through cuBLASLt, blas-1, reductions.
//
// Row-major C = alpha·op(A)·op(B) + beta·C is the column-major product Cᵀ = op(B)ᵀ·op(A)ᵀ: the
// same buffers read column-major, B first, with the transposes kept (the usual trick). fp32
// storage and CUBLAS_COMPUTE_32F (no TF32), so products match the CPU's to float rounding.
// Under precision bf16 (core/bf16.hpp) A and B are converted to bf16 copies first (one kernel each,
// the same to_bf16 as the CPU emulation) and cuBLASLt multiplies CUDA_R_16BF operands with fp32
// compute and an fp32 C: the eigen backend's bf16 emulation up to the order of the fp32 sums.
// gemm_bf16 takes either operand as bf16 bits already (a model's weight copy, made once per
// forward pass; its stored norm outputs) and converts only an fp32 one.
// A cuBLASLt plan (descriptors + the heuristic's algorithm) is made once per shape, transposes and
// operand alignment and kept in the context; the workspace is the context's (32 MiB).
// dot and sum_squares: double partial sums per block on the device, added in double on the host.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "prefopt/backends/cuda/common.hpp"
#include "prefopt/core/bf16.hpp"

namespace prefopt::backends::cuda_detail {

// The alignment of a pointer in bytes, capped at 256 (cuBLASLt's default assumption).
inline int alignment_of(const void* p) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  int al = 256;
  while (al > 1 && a % std::uintptr_t(al) != 0) al /= 2;
  return al;
}

inline const gemm_plan& plan_for(context& c, const gemm_args& g, const void* a, const void* b, const void* cc,
                                 bool bf16 = false) {
  const gemm_key key{g.trans_a, g.trans_b, g.m, g.n, g.k, g.lda, g.ldb, g.ldc, alignment_of(a), alignment_of(b),
                     alignment_of(cc), bf16};
  const cudaDataType_t ab = bf16 ? CUDA_R_16BF : CUDA_R_32F;
  auto it = c.plans().find(key);
  if (it != c.plans().end()) return it->second;
  const char* op = "gemm";
  gemm_plan p;
  // Column-major: first operand = B buffer (bc × br as stored, ld = ldb), second = A (ac × ar, lda).
  const int ar = g.trans_a ? g.k : g.m, ac = g.trans_a ? g.m : g.k;
  const int br = g.trans_b ? g.n : g.k, bc = g.trans_b ? g.k : g.n;
  const cublasOperation_t op1 = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, op2 = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  check(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), op);
  check(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op1, sizeof op1), op);
  check(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op2, sizeof op2), op);
  check(cublasLtMatrixLayoutCreate(&p.a, ab, std::uint64_t(bc), std::uint64_t(br), std::int64_t(g.ldb)), op);
  check(cublasLtMatrixLayoutCreate(&p.b, ab, std::uint64_t(ac), std::uint64_t(ar), std::int64_t(g.lda)), op);
  check(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32F, std::uint64_t(g.n), std::uint64_t(g.m), std::int64_t(g.ldc)), op);
  cublasLtMatmulPreference_t pref = nullptr;
  check(cublasLtMatmulPreferenceCreate(&pref), op);
  const std::uint64_t ws = context::workspace_bytes;
  const std::uint32_t al1 = std::uint32_t(alignment_of(b)), al2 = std::uint32_t(alignment_of(a)),
                      alc = std::uint32_t(alignment_of(cc));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al1, sizeof al1);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al2, sizeof al2);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &alc, sizeof alc);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &alc, sizeof alc);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulAlgoGetHeuristic(c.lt(), p.desc, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  auto destroy = [&] {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatmulDescDestroy(p.desc);
  };
  if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
    destroy();
    check(st, op);
    throw cuda_error("cuda backend op 'gemm'", "cuBLASLt has no algorithm for m=" + std::to_string(g.m) + " n=" +
                                                   std::to_string(g.n) + " k=" + std::to_string(g.k));
  }
  p.algo = result.algo;
  return c.plans().emplace(key, p).first->second;
}

template <class Self> struct cuda_blas_ops {
  void gemm(const gemm_args& g, std::span<const float> a, std::span<const float> b, std::span<float> c) const {
    const char* op = "gemm";
    if (!prepare(g, a.size(), b.size(), c, op)) return;
    context& cx = self().ctx();
    if (self().matmul_precision == precision::bf16) {  // the elements the product reads, not the spans' tails
      const std::size_t na = span_of(g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k, g.lda),
                        nb = span_of(g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, g.ldb);
      device_buffer<std::uint16_t> a16(self().shared_context(), na), b16(self().shared_context(), nb);
      check(cuda_kernels::to_bf16(a.data(), a16.data(), na, cx.stream()), op);
      check(cuda_kernels::to_bf16(b.data(), b16.data(), nb, cx.stream()), op);
      run_bf16(g, a16.data(), b16.data(), c, op);
      return;
    }
    const float alpha = g.alpha, beta = g.beta;
    const gemm_plan& p = plan_for(cx, g, a.data(), b.data(), c.data());
    check(cublasLtMatmul(cx.lt(), p.desc, &alpha, b.data(), p.a, a.data(), p.b, &beta, c.data(), p.c, c.data(), p.c,
                         &p.algo, cx.workspace(), context::workspace_bytes, cx.stream()),
          op);
  }
  // precision bf16's weight copy (core/bf16.hpp, "The weight copy"): y = the bf16 bits of x, one kernel.
  void convert_to_bf16(std::span<const float> x, std::span<std::uint16_t> y) const {
    require_size(y.size(), x.size(), "convert_to_bf16", "y");
    check(cuda_kernels::to_bf16(x.data(), y.data(), x.size(), self().ctx().stream()), "convert_to_bf16");
  }
  // gemm under bf16 with each operand fp32 or bf16 bits (a weight's copy, a stored norm output):
  // cuBLASLt's bf16 path needs both in bf16, so an fp32 operand is converted (the elements the
  // product reads) and a bf16 one is read as it is.
  void gemm_bf16(const gemm_args& g, gemm_operand a, gemm_operand b, std::span<float> c) const {
    const char* op = "gemm_bf16";
    if (!prepare(g, a.size(), b.size(), c, op)) return;
    const std::size_t na = span_of(g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k, g.lda),
                      nb = span_of(g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, g.ldb);
    device_buffer<std::uint16_t> a16, b16;
    const std::uint16_t* pa = bf16_operand(a, na, a16, op);
    const std::uint16_t* pb = bf16_operand(b, nb, b16, op);
    run_bf16(g, pa, pb, c, op);
  }
  void axpy(float alpha, std::span<const float> x, std::span<float> y) const {
    require_size(y.size(), x.size(), "axpy", "y");
    check(cuda_kernels::axpy(alpha, x.data(), y.data(), x.size(), self().ctx().stream()), "axpy");
  }
  void scale(std::span<float> x, float alpha) const {
    check(cuda_kernels::scale(x.data(), x.size(), alpha, self().ctx().stream()), "scale");
  }
  double dot(std::span<const float> x, std::span<const float> y) const {
    require_size(y.size(), x.size(), "dot", "y");
    return reduce(x, y.data(), "dot");
  }
  double sum_squares(std::span<const float> x) const { return reduce(x, nullptr, "sum_squares"); }

  // ---- softmax -----------------------------------------------------------------------------
  void log_softmax_rows(int rows, int cols, std::span<const float> x, std::span<float> out) const {
    const char* op = "log_softmax_rows";
    const std::size_t n = std::size_t(std::max(rows, 0)) * std::size_t(std::max(cols, 0));
    require_size(x.size(), n, op, "x");
    require_size(out.size(), n, op, "out");
    check(cuda_kernels::log_softmax_rows(rows, cols, x.data(), out.data(), self().ctx().stream()), op);
  }
  void log_softmax_rows_backward(int rows, int cols, std::span<const float> logp, std::span<const float> dy,
                                 std::span<float> dx) const {
    const char* op = "log_softmax_rows_backward";
    const std::size_t n = std::size_t(std::max(rows, 0)) * std::size_t(std::max(cols, 0));
    require_size(logp.size(), n, op, "logp");
    require_size(dy.size(), n, op, "dy");
    require_size(dx.size(), n, op, "dx");
    check(cuda_kernels::log_softmax_rows_backward(rows, cols, logp.data(), dy.data(), dx.data(), self().ctx().stream()), op);
  }

  // ---- indexing ----------------------------------------------------------------------------
  void gather(std::span<const float> src, std::span<const std::int32_t> idx, std::span<float> dst) const {
    const char* op = "gather";
    require_size(dst.size(), idx.size(), op, "dst");
    if (idx.empty()) return;
    context& cx = self().ctx();
    reset_flag(cx, op);
    check(cuda_kernels::gather(src.data(), src.size(), idx.data(), idx.size(), dst.data(), cx.flag(), cx.stream()), op);
    throw_if_flagged(cx, op, "idx", "is outside [0, " + std::to_string(src.size()) + ")");
  }
  void scatter_add(std::span<const float> src, std::span<const std::int32_t> idx, std::span<float> dst) const {
    const char* op = "scatter_add";
    require_size(src.size(), idx.size(), op, "src");
    if (idx.empty()) return;
    context& cx = self().ctx();
    reset_flag(cx, op);
    check(cuda_kernels::scatter_add(src.data(), idx.data(), idx.size(), dst.data(), dst.size(), cx.flag(), cx.stream()), op);
    throw_if_flagged(cx, op, "idx", "is outside [0, " + std::to_string(dst.size()) + ")");
  }

private:
  const Self& self() const { return static_cast<const Self&>(*this); }
  // Shape checks; false when nothing is left to multiply (m or n is 0; k = 0 scales C by beta).
  bool prepare(const gemm_args& g, std::size_t na, std::size_t nb, std::span<float> c, const char* op) const {
    if (g.m < 0 || g.n < 0 || g.k < 0) op_checks::bad(op, "m, n, k", "must not be negative");
    const int ar = g.trans_a ? g.k : g.m, ac = g.trans_a ? g.m : g.k;
    const int br = g.trans_b ? g.n : g.k, bc = g.trans_b ? g.k : g.n;
    require_size(na, span_of(ar, ac, g.lda), op, "A");
    require_size(nb, span_of(br, bc, g.ldb), op, "B");
    require_size(c.size(), span_of(g.m, g.n, g.ldc), op, "C");
    if (g.m == 0 || g.n == 0) return false;
    // cuBLASLt (and the strided scale below) need each stored row to fit its leading dimension.
    if (g.ldc < g.n) op_checks::bad(op, "ldc", "is smaller than n");
    if (g.k > 0 && (g.lda < ac || g.ldb < bc))
      op_checks::bad(op, "lda, ldb", "a leading dimension is smaller than its matrix's row length");
    if (g.k == 0) {
      check(cuda_kernels::scale_matrix(c.data(), g.m, g.n, g.ldc, g.beta, self().ctx().stream()), op);
      return false;
    }
    return true;
  }
  // An operand's n elements as aligned bf16 bits: its own when it is bf16 and 16-byte aligned, else
  // a copy in tmp (converted from fp32, or bf16 at an offset that is not a multiple of 8 elements:
  // cuBLASLt's bf16 kernels may have no algorithm for 2-byte alignment).
  const std::uint16_t* bf16_operand(gemm_operand x, std::size_t n, device_buffer<std::uint16_t>& tmp, const char* op) const {
    if (x.is_bf16() && alignment_of(x.bf16().data()) >= 16) return x.bf16().data();
    context& cx = self().ctx();
    tmp = device_buffer<std::uint16_t>(self().shared_context(), n);
    if (x.is_bf16())
      check(cudaMemcpyAsync(tmp.data(), x.bf16().data(), n * sizeof(std::uint16_t), cudaMemcpyDeviceToDevice, cx.stream()), op);
    else
      check(cuda_kernels::to_bf16(x.f32().data(), tmp.data(), n, cx.stream()), op);
    return tmp.data();
  }
  // cuBLASLt on bf16 A and B (device bits), fp32 compute and C.
  void run_bf16(const gemm_args& g, const std::uint16_t* a16, const std::uint16_t* b16, std::span<float> c, const char* op) const {
    context& cx = self().ctx();
    const float alpha = g.alpha, beta = g.beta;
    const gemm_plan& p = plan_for(cx, g, a16, b16, c.data(), true);
    check(cublasLtMatmul(cx.lt(), p.desc, &alpha, b16, p.a, a16, p.b, &beta, c.data(), p.c, c.data(), p.c, &p.algo,
                         cx.workspace(), context::workspace_bytes, cx.stream()),
          op);
  }
  double reduce(std::span<const float> x, const float* y, const char* op) const {
    if (x.empty()) return 0.0;
    context& cx = self().ctx();
    const int blocks = cuda_kernels::reduce_blocks(x.size());
    device_buffer<double> partial(self().shared_context(), std::size_t(blocks));
    check(cuda_kernels::dot_partials(x.data(), y, x.size(), partial.data(), cx.stream()), op);
    std::vector<double> host(static_cast<std::size_t>(blocks));
    check(cudaMemcpyAsync(host.data(), partial.data(), host.size() * sizeof(double), cudaMemcpyDeviceToHost, cx.stream()),
          op);
    cx.synchronize(op);
    double s = 0.0;
    for (double v : host) s += v;
    return s;
  }
};

} // namespace prefopt::backends::cuda_detail
