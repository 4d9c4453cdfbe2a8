// backends/cuda/src/cached_attention.cu — new tokens against a key/value cache (generation): one
// thread per (token, query head) running core/cached_attention.hpp's item function, the code the
// CPU backends and their tests run.
#include "launch.cuh"
#include "prefopt/backends/cuda/kernels.hpp"
#include "prefopt/core/cached_attention.hpp"

namespace prefopt::backends::cuda_kernels {

namespace {
__global__ void cached_attention_k(flash::cached_attention a, const float* q, const float* k, const float* v, float* out) {
  PREFOPT_GRID_STRIDE(e, a.tokens * std::size_t(a.q_heads)) flash::cached_attention_item(a, e, q, k, v, out);
}
} // namespace

cudaError_t cached_attention(const flash::cached_attention& a, const float* q, const float* k_cache, const float* v_cache,
                             float* out, cudaStream_t s) {
  const std::size_t n = a.tokens * std::size_t(a.q_heads);
  if (n) cached_attention_k<<<detail::blocks_for(n), detail::threads, 0, s>>>(a, q, k_cache, v_cache, out);
  return cudaGetLastError();
}

} // namespace prefopt::backends::cuda_kernels
