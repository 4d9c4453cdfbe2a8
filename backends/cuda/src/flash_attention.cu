// backends/cuda/src/flash_attention.cu — FlashAttention over the packed segment layout with GQA,
// FlashAttention-2's block-tiled work split: thin kernels over core/flash_attention_tiled.hpp
// (index computation, shared-memory staging, __syncthreads, calls to its per-thread functions).
//
// Forward: one block per (query tile of one packed row, query head), one thread per query; the Q
// tile and then each K/V tile of the row up to the tile's last query are staged in shared memory
// (coalesced), each thread runs the online softmax over the staged keys (forward_tile) with its
// accumulator in registers, then writes out and lse [T × Hq]. Nothing of size L² is stored.
// Backward (no atomics, one writer per output): Δ_i = dO_i·o_i per (query, head); one block per
// (key tile, kv head), one thread per key, walks the queries of every head of its group from the
// key tile's first position on (dkdv_tile); one block per (query tile, query head), one thread per
// query, walks the key tiles as forward does (dq_tile).
// Kernels are instantiated for head_dim 64 and 128 (registers) and a generic head_dim ≤ max_head_dim
// (local-memory accumulators). The same functions, in the same block/thread/tile order, run on
// the CPU in tests/core/flash_attention_tiled_test.cpp (tests/support/flash_attention_tiled_driver.hpp)
// against the eigen backend: compiled and CPU-checked in tiling order, not yet run on a GPU
// (tests/cuda/flash_attention_device_test.cu compares the kernels with that order on one).
// Dynamic shared memory reaches 129 KiB per block (dk/dv at head_dim 128, or 256 on the generic
// path): within sm_80's and sm_90's opt-in limits, above the 99 KiB of sm_86 and sm_89, where
// head_dim 128 takes the generic kernels (half-size tiles, 66 KiB) and head_dim 256 is an error.
#include <cuda_runtime.h>

#include <algorithm>

#include "prefopt/backends/cuda/kernels.hpp"
#include "prefopt/core/flash_attention_tiled.hpp"

namespace prefopt::backends::cuda_kernels {
namespace fl = prefopt::flash;
namespace ft = prefopt::flash::tiled;

namespace {

template <int DC>
__global__ void __launch_bounds__(ft::tiles<DC>::q) flash_forward_k(attention_args a, const float* q, const float* k,
                                                                      const float* v, float* out, float* lse) {
  using T = ft::tiles<DC>;
  extern __shared__ float smem[];
  const ft::tile_place tp = ft::place_tile(a, blockIdx.x, T::q);
  if (tp.count == 0) return;  // the whole block: the row is shorter
  const int d = DC > 0 ? DC : a.head_dim, h = int(blockIdx.y), g = h / (a.q_heads / a.kv_heads), tid = int(threadIdx.x);
  const std::size_t Hq = std::size_t(a.q_heads), Hkv = std::size_t(a.kv_heads), D = std::size_t(d);
  const ft::forward_smem sm = ft::forward_smem_at<DC>(smem, d);
  ft::stage_rows(sm.q, d + 1, q + ((tp.o + std::size_t(tp.start)) * Hq + std::size_t(h)) * D, Hq * D, tp.count, d, tid,
                 T::q);
  const int i = tp.start + tid;
  const std::int32_t seg_i = tid < tp.count ? a.segment[tp.o + std::size_t(i)] : -1;
  fl::row_state st;
  float acc[T::cap];
#pragma unroll
  for (int e = 0; e < T::cap; ++e) acc[e] = 0.0f;
  const float scale = fl::head_scale(d);
  const int last = tp.start + tp.count - 1;
  for (int j0 = 0; j0 <= last; j0 += T::k) {  // key tiles after the last query: invisible, skipped
    const int n = last + 1 - j0 < T::k ? last + 1 - j0 : T::k;
    const std::size_t first = tp.o + std::size_t(j0);
    __syncthreads();  // the previous tile is read
    ft::stage_rows(sm.k, d, k + (first * Hkv + std::size_t(g)) * D, Hkv * D, n, d, tid, T::q);
    ft::stage_rows(sm.v, d, v + (first * Hkv + std::size_t(g)) * D, Hkv * D, n, d, tid, T::q);
    ft::stage_column(sm.seg_k, T::k, a.segment + first, 1, n, std::int32_t(-1), tid, T::q);
    __syncthreads();
    if (seg_i >= 0 && j0 <= i)
      ft::forward_tile<DC, T::k>(st, acc, sm.q + tid * (d + 1), i, seg_i, sm.k, sm.v, j0, sm.seg_k, d, scale);
  }
  if (tid < tp.count) {
    const std::size_t e = (tp.o + std::size_t(i)) * Hq + std::size_t(h);
    ft::finalize<DC>(st, acc, d, out + e * D, lse + e);
  }
}

__global__ void flash_delta_k(std::size_t n, int d, const float* dout, const float* out, float* delta) {
  const std::size_t e = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e < n) delta[e] = fl::row_delta(dout + e * std::size_t(d), out + e * std::size_t(d), d);
}

template <int DC>
__global__ void __launch_bounds__(ft::tiles<DC>::kd)
    flash_dkdv_k(attention_args a, const float* dout, const float* q, const float* k, const float* v, const float* lse,
                 const float* delta, float* dk, float* dv) {
  using T = ft::tiles<DC>;
  extern __shared__ float smem[];
  const ft::tile_place tp = ft::place_tile(a, blockIdx.x, T::kd);
  if (tp.count == 0) return;
  const int d = DC > 0 ? DC : a.head_dim, g = int(blockIdx.y), group = a.q_heads / a.kv_heads, tid = int(threadIdx.x);
  const std::size_t Hq = std::size_t(a.q_heads), Hkv = std::size_t(a.kv_heads), D = std::size_t(d);
  const ft::dkdv_smem sm = ft::dkdv_smem_at<DC>(smem, d);
  const std::size_t first_key = tp.o + std::size_t(tp.start);
  ft::stage_rows(sm.k, d + 1, k + (first_key * Hkv + std::size_t(g)) * D, Hkv * D, tp.count, d, tid, T::kd);
  ft::stage_rows(sm.v, d + 1, v + (first_key * Hkv + std::size_t(g)) * D, Hkv * D, tp.count, d, tid, T::kd);
  float* dk_j = sm.dk + tid * (d + 1);  // this thread's own row
  for (int e = 0; e < d; ++e) dk_j[e] = 0.0f;
  float dv_j[T::cap];
#pragma unroll
  for (int e = 0; e < T::cap; ++e) dv_j[e] = 0.0f;
  const int j = tp.start + tid;
  const std::int32_t seg_j = tid < tp.count ? a.segment[tp.o + std::size_t(j)] : -1;
  const float scale = fl::head_scale(d);
  for (int h = g * group; h < (g + 1) * group; ++h)
    for (int i0 = tp.start; i0 < tp.L; i0 += T::qd) {  // queries before the first key see none of it
      const int m = tp.L - i0 < T::qd ? tp.L - i0 : T::qd;
      const std::size_t first = tp.o + std::size_t(i0);
      __syncthreads();  // the previous query tile is read
      ft::stage_rows(sm.q, d, q + (first * Hq + std::size_t(h)) * D, Hq * D, m, d, tid, T::kd);
      ft::stage_rows(sm.dout, d, dout + (first * Hq + std::size_t(h)) * D, Hq * D, m, d, tid, T::kd);
      ft::stage_column(sm.lse, T::qd, lse + first * Hq + std::size_t(h), Hq, m, float(INFINITY), tid, T::kd);
      ft::stage_column(sm.delta, T::qd, delta + first * Hq + std::size_t(h), Hq, m, 0.0f, tid, T::kd);
      ft::stage_column(sm.seg_q, T::qd, a.segment + first, 1, m, std::int32_t(-1), tid, T::kd);
      __syncthreads();
      if (seg_j >= 0)
        ft::dkdv_tile<DC>(dk_j, dv_j, sm.k + tid * (d + 1), sm.v + tid * (d + 1), j, seg_j, sm.q, sm.dout, m, i0,
                          sm.seg_q, sm.lse, sm.delta, d, scale);
    }
  if (tid < tp.count) {
    const std::size_t e = (first_key + std::size_t(tid)) * Hkv + std::size_t(g);
#pragma unroll
    for (int x = 0; x < T::cap; ++x)
      if (x < d) {
        dk[e * D + std::size_t(x)] = dk_j[x];
        dv[e * D + std::size_t(x)] = dv_j[x];
      }
  }
}

template <int DC>
__global__ void __launch_bounds__(ft::tiles<DC>::q)
    flash_dq_k(attention_args a, const float* dout, const float* q, const float* k, const float* v, const float* lse,
               const float* delta, float* dq) {
  using T = ft::tiles<DC>;
  extern __shared__ float smem[];
  const ft::tile_place tp = ft::place_tile(a, blockIdx.x, T::q);
  if (tp.count == 0) return;
  const int d = DC > 0 ? DC : a.head_dim, h = int(blockIdx.y), g = h / (a.q_heads / a.kv_heads), tid = int(threadIdx.x);
  const std::size_t Hq = std::size_t(a.q_heads), Hkv = std::size_t(a.kv_heads), D = std::size_t(d);
  const ft::dq_smem sm = ft::dq_smem_at<DC>(smem, d);
  const std::size_t first_q = tp.o + std::size_t(tp.start);
  ft::stage_rows(sm.q, d + 1, q + (first_q * Hq + std::size_t(h)) * D, Hq * D, tp.count, d, tid, T::q);
  ft::stage_rows(sm.dout, d + 1, dout + (first_q * Hq + std::size_t(h)) * D, Hq * D, tp.count, d, tid, T::q);
  const int i = tp.start + tid;
  const bool own = tid < tp.count;
  const std::size_t e = (tp.o + std::size_t(i)) * Hq + std::size_t(h);
  const std::int32_t seg_i = own ? a.segment[tp.o + std::size_t(i)] : -1;
  const float lse_i = own ? lse[e] : INFINITY, delta_i = own ? delta[e] : 0.0f;
  float dq_i[T::cap];
#pragma unroll
  for (int x = 0; x < T::cap; ++x) dq_i[x] = 0.0f;
  const float scale = fl::head_scale(d);
  const int last = tp.start + tp.count - 1;
  for (int j0 = 0; j0 <= last; j0 += T::k) {
    const int n = last + 1 - j0 < T::k ? last + 1 - j0 : T::k;
    const std::size_t first = tp.o + std::size_t(j0);
    __syncthreads();
    ft::stage_rows(sm.k, d, k + (first * Hkv + std::size_t(g)) * D, Hkv * D, n, d, tid, T::q);
    ft::stage_rows(sm.v, d, v + (first * Hkv + std::size_t(g)) * D, Hkv * D, n, d, tid, T::q);
    ft::stage_column(sm.seg_k, T::k, a.segment + first, 1, n, std::int32_t(-1), tid, T::q);
    __syncthreads();
    if (seg_i >= 0 && j0 <= i)
      ft::dq_tile<DC>(dq_i, sm.q + tid * (d + 1), sm.dout + tid * (d + 1), i, seg_i, lse_i, delta_i, sm.k, sm.v, n, j0,
                      sm.seg_k, d, scale);
  }
  if (own) {
#pragma unroll
    for (int x = 0; x < T::cap; ++x)
      if (x < d) dq[e * D + std::size_t(x)] = dq_i[x];
  }
}

// Blocks of `len` tokens for every row (rows shorter than the longest leave some idle).
unsigned grid_x(const attention_args& a, int len) {
  return a.max_row_length > 0 ? unsigned(a.rows) * unsigned(ft::tiles_per_row(a, len)) : 0u;
}

// The most dynamic shared memory one block may opt into on the current device (227 KiB on sm_90,
// 163 KiB on sm_80, 99 KiB on sm_86 and sm_89).
std::size_t smem_limit() {
  int dev = 0, bytes = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) {
    (void)cudaGetLastError();  // not this launch's error: fall back to the limit every device has
    return 48 * 1024;
  }
  return std::size_t(bytes);
}

// Dynamic shared memory above the default 48 KiB must be allowed per kernel.
template <class K> cudaError_t allow_smem(K kernel, std::size_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
}

template <int DC>
cudaError_t forward(const attention_args& a, const float* q, const float* k, const float* v, float* out, float* lse,
                    cudaStream_t s) {
  using T = ft::tiles<DC>;
  const unsigned bx = grid_x(a, T::q);
  if (bx == 0) return cudaGetLastError();
  const std::size_t bytes = ft::forward_smem_bytes<DC>(a.head_dim);
  if (const cudaError_t e = allow_smem(flash_forward_k<DC>, bytes); e != cudaSuccess) return e;
  flash_forward_k<DC><<<dim3(bx, unsigned(a.q_heads)), T::q, bytes, s>>>(a, q, k, v, out, lse);
  return cudaGetLastError();
}

template <int DC>
cudaError_t backward(const attention_args& a, const float* dout, const float* q, const float* k, const float* v,
                     const float* lse, const float* delta, float* dq, float* dk, float* dv, cudaStream_t s) {
  using T = ft::tiles<DC>;
  const unsigned bkv = grid_x(a, T::kd), bq = grid_x(a, T::q);
  if (bkv == 0 || bq == 0) return cudaGetLastError();
  const std::size_t kv_bytes = ft::dkdv_smem_bytes<DC>(a.head_dim), q_bytes = ft::dq_smem_bytes<DC>(a.head_dim);
  if (const cudaError_t e = allow_smem(flash_dkdv_k<DC>, kv_bytes); e != cudaSuccess) return e;
  if (const cudaError_t e = allow_smem(flash_dq_k<DC>, q_bytes); e != cudaSuccess) return e;
  flash_dkdv_k<DC><<<dim3(bkv, unsigned(a.kv_heads)), T::kd, kv_bytes, s>>>(a, dout, q, k, v, lse, delta, dk, dv);
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  flash_dq_k<DC><<<dim3(bq, unsigned(a.q_heads)), T::q, q_bytes, s>>>(a, dout, q, k, v, lse, delta, dq);
  return cudaGetLastError();
}

} // namespace

cudaError_t flash_attention_forward(const attention_args& a, const float* q, const float* k, const float* v, float* out,
                                    float* lse, cudaStream_t s) {
  if (a.tokens == 0) return cudaGetLastError();
  switch (a.head_dim) {
  case 64: return forward<64>(a, q, k, v, out, lse, s);
  case 128:  // the generic kernel's half-size tiles where a device's blocks cannot hold the full ones
    if (ft::forward_smem_bytes<128>(128) <= smem_limit()) return forward<128>(a, q, k, v, out, lse, s);
    return forward<0>(a, q, k, v, out, lse, s);
  default: return forward<0>(a, q, k, v, out, lse, s);
  }
}

cudaError_t flash_attention_backward(const attention_args& a, const float* dout, const float* q, const float* k,
                                     const float* v, const float* out, const float* lse, float* delta, float* dq, float* dk,
                                     float* dv, cudaStream_t s) {
  const std::size_t nq = a.tokens * std::size_t(a.q_heads);
  if (nq == 0) return cudaGetLastError();
  constexpr unsigned threads = 256;
  flash_delta_k<<<unsigned((nq + threads - 1) / threads), threads, 0, s>>>(nq, a.head_dim, dout, out, delta);
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  switch (a.head_dim) {
  case 64: return backward<64>(a, dout, q, k, v, lse, delta, dq, dk, dv, s);
  case 128:  // dk/dv's 129 KiB blocks exceed sm_86's and sm_89's 99 KiB: the generic kernels there
    if (std::max(ft::dkdv_smem_bytes<128>(128), ft::dq_smem_bytes<128>(128)) <= smem_limit())
      return backward<128>(a, dout, q, k, v, lse, delta, dq, dk, dv, s);
    return backward<0>(a, dout, q, k, v, lse, delta, dq, dk, dv, s);
  default: return backward<0>(a, dout, q, k, v, lse, delta, dq, dk, dv, s);
  }
}

} // namespace prefopt::backends::cuda_kernels
