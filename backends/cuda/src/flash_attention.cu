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
#include "prefopt/core/flash_attention.hpp"

namespace prefopt::backends::cuda_kernels {
namespace fa = prefopt::flash;

namespace {
constexpr int tile = 32;          // keys per tile
constexpr int flash_threads = 64; // threads per block (one (token, head) each)

struct row_place {
  std::size_t o;  // row start (token offset)
  int L, i;       // row length, position of the token in the row
};
__device__ inline row_place place_of(const attention_args& a, std::size_t t) {
  const std::int32_t r = a.token_row[t];
  const std::size_t o = std::size_t(a.row_offsets[r]);
  return {o, int(std::size_t(a.row_offsets[r + 1]) - o), int(t - o)};
}

__global__ void flash_forward_k(attention_args a, const float* q, const float* k, const float* v, float* out, float* lse) {
  const std::size_t Hq = std::size_t(a.q_heads), Hkv = std::size_t(a.kv_heads);
  const std::size_t e = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= a.tokens * Hq) return;
  const std::size_t t = e / Hq, h = e % Hq, g = h / (Hq / Hkv);
  const int D = a.head_dim, kv_stride = int(Hkv) * D;
  const row_place p = place_of(a, t);
  const float scale = 1.0f / ::sqrtf(float(D));
  const float* q_i = q + (t * Hq + h) * std::size_t(D);
  const std::int32_t seg_i = a.segment[t];
  fa::row_state st;
  float acc[max_head_dim];
  float s[tile];
  for (int d = 0; d < D; ++d) acc[d] = 0.0f;
  if (seg_i >= 0)
    for (int j0 = 0; j0 <= p.i; j0 += tile) {
      const int n = p.i + 1 - j0 < tile ? p.i + 1 - j0 : tile;
      const std::size_t first = (p.o + std::size_t(j0)) * Hkv + g;
      fa::forward_row_tile(st, acc, q_i, p.i, seg_i, k + first * std::size_t(D), v + first * std::size_t(D), kv_stride, j0,
                           a.segment + p.o + std::size_t(j0), n, D, scale, s);
    }
  fa::finalize_row(st, acc, D, out + (t * Hq + h) * std::size_t(D), lse + e);
}

__global__ void flash_delta_k(attention_args a, const float* dout, const float* out, float* delta) {
  const std::size_t Hq = std::size_t(a.q_heads), D = std::size_t(a.head_dim);
  const std::size_t e = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= a.tokens * Hq) return;
  delta[e] = fa::row_delta(dout + e * D, out + e * D, int(D));
}

__global__ void flash_dkdv_k(attention_args a, const float* dout, const float* q, const float* k, const float* v,
                             const float* lse, const float* delta, float* dk, float* dv) {
  const std::size_t Hq = std::size_t(a.q_heads), Hkv = std::size_t(a.kv_heads);
  const std::size_t e = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= a.tokens * Hkv) return;
  const std::size_t s = e / Hkv, g = e % Hkv, group = Hq / Hkv;
  const int D = a.head_dim, q_stride = int(Hq) * D;
  const row_place p = place_of(a, s);
  const float scale = 1.0f / ::sqrtf(float(D));
  float dkj[max_head_dim], dvj[max_head_dim];
  for (int d = 0; d < D; ++d) dkj[d] = dvj[d] = 0.0f;
  const float* k_j = k + e * std::size_t(D);
  const float* v_j = v + e * std::size_t(D);
  const std::int32_t seg_j = a.segment[s];
  float lse_t[tile], delta_t[tile];  // the tile's lse_i, Δ_i for head h, contiguous as the tile function reads them
  for (std::size_t h = g * group; h < (g + 1) * group; ++h)
    for (int i0 = p.i; i0 < p.L; i0 += tile) {
      const int m = p.L - i0 < tile ? p.L - i0 : tile;
      const std::size_t first = p.o + std::size_t(i0);  // the tile's first query token
      for (int ii = 0; ii < m; ++ii) {
        lse_t[ii] = lse[(first + std::size_t(ii)) * Hq + h];
        delta_t[ii] = delta[(first + std::size_t(ii)) * Hq + h];
      }
      fa::backward_key_column(k_j, v_j, p.i, seg_j, q + (first * Hq + h) * std::size_t(D),
                              dout + (first * Hq + h) * std::size_t(D), q_stride, i0, a.segment + first, lse_t, delta_t,
                              m, D, scale, dkj, dvj, nullptr, 0);
    }
  for (int d = 0; d < D; ++d) {
    dk[e * std::size_t(D) + std::size_t(d)] = dkj[d];
    dv[e * std::size_t(D) + std::size_t(d)] = dvj[d];
  }
}

__global__ void flash_dq_k(attention_args a, const float* dout, const float* q, const float* k, const float* v,
                           const float* lse, const float* delta, float* dq) {
  const std::size_t Hq = std::size_t(a.q_heads), Hkv = std::size_t(a.kv_heads);
  const std::size_t e = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= a.tokens * Hq) return;
  const std::size_t t = e / Hq, h = e % Hq, g = h / (Hq / Hkv);
  const int D = a.head_dim, kv_stride = int(Hkv) * D;
  const row_place p = place_of(a, t);
  const float scale = 1.0f / ::sqrtf(float(D));
  const float* q_i = q + e * std::size_t(D);
  const float* dout_i = dout + e * std::size_t(D);
  const std::int32_t seg_i = a.segment[t];
  float dqi[max_head_dim];
  float pr[tile], ds[tile];
  for (int d = 0; d < D; ++d) dqi[d] = 0.0f;
  if (seg_i >= 0)
    for (int j0 = 0; j0 <= p.i; j0 += tile) {
      const int n = p.i + 1 - j0 < tile ? p.i + 1 - j0 : tile;
      const std::size_t first = (p.o + std::size_t(j0)) * Hkv + g;
      const float* kt = k + first * std::size_t(D);
      const float* vt = v + first * std::size_t(D);
      fa::score_row(q_i, p.i, seg_i, kt, kv_stride, j0, a.segment + p.o + std::size_t(j0), n, D, scale, pr);
      fa::probs_from_scores(pr, n, lse[e]);
      for (int jj = 0; jj < n; ++jj) ds[jj] = pr[jj] == 0.0f ? 0.0f : fa::dot(dout_i, vt + jj * kv_stride, D);
      fa::dscores(pr, ds, n, delta[e]);
      fa::accumulate_dq(dqi, D, scale, ds, kt, kv_stride, n);
    }
  for (int d = 0; d < D; ++d) dq[e * std::size_t(D) + std::size_t(d)] = dqi[d];
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
