// backends/cuda/src/launch.cuh — what the kernel files share: grid sizes and block reductions.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace prefopt::backends::cuda_kernels::detail {

inline constexpr int threads = 256;  // every kernel's block size (the reductions below assume it)

// Blocks for n elements, one element per thread, grid-stride beyond the cap.
inline unsigned blocks_for(std::size_t n) {
  const std::size_t b = (n + threads - 1) / threads;
  return unsigned(b == 0 ? 1 : (b > 65535u * 8u ? 65535u * 8u : b));
}
#define PREFOPT_GRID_STRIDE(i, n)                                                                   \
  for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n);                \
       i += std::size_t(gridDim.x) * blockDim.x)

// Sum of one value per thread over the block, as a tree (stride 128, 64, ..., 1) in shared
// memory; every thread gets the result. `buf` holds `threads` values.
template <class T> __device__ T block_sum(T v, T* buf) {
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int stride = threads / 2; stride > 0; stride >>= 1) {
    if (int(threadIdx.x) < stride) buf[threadIdx.x] += buf[threadIdx.x + stride];
    __syncthreads();
  }
  const T r = buf[0];
  __syncthreads();
  return r;
}
__device__ inline float block_max(float v, float* buf) {
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int stride = threads / 2; stride > 0; stride >>= 1) {
    if (int(threadIdx.x) < stride) buf[threadIdx.x] = fmaxf(buf[threadIdx.x], buf[threadIdx.x + stride]);
    __syncthreads();
  }
  const float r = buf[0];
  __syncthreads();
  return r;
}

// Records element i as bad (the smallest index wins).
__device__ inline void mark_bad(std::int32_t* bad, std::size_t i) {
  atomicMin(bad, i > 0x7ffffffe ? 0x7ffffffe : std::int32_t(i));
}

} // namespace prefopt::backends::cuda_kernels::detail
