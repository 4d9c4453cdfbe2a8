// backends/cuda/src/flash_attention.cu — FlashAttention over the packed segment layout with GQA:
// thin kernels over core/flash_attention.hpp's tile functions (the same code the CPU tests run).
//
// Forward: one thread per (query token, query head) walks the key tiles of its row up to itself
// (forward_row_tile: scores, online softmax, P·V into a local accumulator), then finalize_row
// writes out and lse [T × Hq]. Nothing of size L² is stored.
// Backward (FlashAttention-2's split, no atomics): Δ_i = dO_i·o_i per (query, head); one thread
// per (key token, kv head) walks the queries of its row that may see it, for each query head of
// its group (backward_key_column → dk_j, dv_j); one thread per (query, head) recomputes P and dS
// tile by tile and forms dq_i (accumulate_dq). Every output has one writer.
// Local arrays bound the head dimension: head_dim ≤ max_head_dim (checked on the host).
#include "launch.cuh"
#include "prefopt/backends/cuda/kernels.hpp"
#include "prefopt/core/flash_attention_packed.hpp"

namespace prefopt::backends::cuda_kernels {
namespace fa = prefopt::flash;

namespace {
constexpr int flash_threads = 64;  // threads per block, one work item each

__global__ void flash_forward_k(attention_args a, const float* q, const float* k, const float* v, float* out, float* lse) {
  const std::size_t e = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e < a.tokens * std::size_t(a.q_heads)) fa::forward_item(a, e, q, k, v, out, lse);
}
__global__ void flash_delta_k(attention_args a, const float* dout, const float* out, float* delta) {
  const std::size_t e = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e < a.tokens * std::size_t(a.q_heads)) fa::delta_item(a, e, dout, out, delta);
}
__global__ void flash_dkdv_k(attention_args a, const float* dout, const float* q, const float* k, const float* v,
                             const float* lse, const float* delta, float* dk, float* dv) {
  const std::size_t e = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e < a.tokens * std::size_t(a.kv_heads)) fa::dkdv_item(a, e, dout, q, k, v, lse, delta, dk, dv);
}
__global__ void flash_dq_k(attention_args a, const float* dout, const float* q, const float* k, const float* v,
                           const float* lse, const float* delta, float* dq) {
  const std::size_t e = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e < a.tokens * std::size_t(a.q_heads)) fa::dq_item(a, e, dout, q, k, v, lse, delta, dq);
}

unsigned flash_blocks(std::size_t n) { return unsigned((n + flash_threads - 1) / flash_threads); }
} // namespace

cudaError_t flash_attention_forward(const attention_args& a, const float* q, const float* k, const float* v, float* out,
                                    float* lse, cudaStream_t s) {
  const std::size_t n = a.tokens * std::size_t(a.q_heads);
  if (n) flash_forward_k<<<flash_blocks(n), flash_threads, 0, s>>>(a, q, k, v, out, lse);
  return cudaGetLastError();
}
cudaError_t flash_attention_backward(const attention_args& a, const float* dout, const float* q, const float* k,
                                     const float* v, const float* out, const float* lse, float* delta, float* dq, float* dk,
                                     float* dv, cudaStream_t s) {
  const std::size_t nq = a.tokens * std::size_t(a.q_heads), nk = a.tokens * std::size_t(a.kv_heads);
  if (nq == 0) return cudaGetLastError();
  flash_delta_k<<<flash_blocks(nq), flash_threads, 0, s>>>(a, dout, out, delta);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  flash_dkdv_k<<<flash_blocks(nk), flash_threads, 0, s>>>(a, dout, q, k, v, lse, delta, dk, dv);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  flash_dq_k<<<flash_blocks(nq), flash_threads, 0, s>>>(a, dout, q, k, v, lse, delta, dq);
  return cudaGetLastError();
}

} // namespace prefopt::backends::cuda_kernels
