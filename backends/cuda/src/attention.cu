// backends/cuda/src/attention.cu — causal attention over the packed segment layout with GQA,
// keeping the probabilities (the op contract of core/transformer_ops.hpp: probs holds row r's
// block of Hq·L_r² values, head-major, query-major).
//
// Forward, one block per (token t, query head h): scores s_j = q_t·k_j/√D of the keys t may see
// (device_math::attention_visible, j ≤ i) written into t's probability row, max-shifted softmax
// (sum in double), then out_t = Σ_j P_j v_j with threads over the head dimension.
// Backward, one block per (token t, query head h): dP_j = dout_t·v_j, dS_j = P_j(dP_j − Σ P·dP)
// into the dS scratch, dq_t = Σ_j dS_j k_j/√D. Then one block per (key token s, kv head g):
// dv_s = Σ_{h of g} Σ_{i ≥ s} P_{h,i,s} dout_i, dk_s = Σ_{h of g} Σ_i dS_{h,i,s} q_i/√D — each
// output written by one thread, no atomics, the same numbers at every launch.
#include <cmath>

#include "launch.cuh"
#include "prefopt/backends/cuda/kernels.hpp"
#include "prefopt/core/device_math.hpp"

namespace prefopt::backends::cuda_kernels {
using detail::threads;
namespace dm = prefopt::device_math;

namespace {
struct place {
  std::size_t o, L, i;  // row start, row length, index of the token in its row
  const float* probs_row;
};

__global__ void attention_forward_k(attention_args a, const float* q, const float* k, const float* v, float* out,
                                    float* probs) {
  __shared__ float fbuf[threads];
  __shared__ double dbuf[threads];
  const std::size_t t = blockIdx.x, h = blockIdx.y;
  const std::size_t Hq = std::size_t(a.q_heads), Hkv = std::size_t(a.kv_heads), D = std::size_t(a.head_dim);
  const std::size_t g = h / (Hq / Hkv);
  const std::int32_t r = a.token_row[t];
  const std::size_t o = std::size_t(a.row_offsets[r]), L = std::size_t(a.row_offsets[r + 1]) - o, i = t - o;
  float* P = probs + a.prob_offset[r] + (h * L + i) * L;
  float* ot = out + (t * Hq + h) * D;
  const std::int32_t sq = a.segment[t];
  if (sq < 0) {  // padding: attends to nothing, output 0
    for (std::size_t j = threadIdx.x; j < L; j += threads) P[j] = 0.0f;
    for (std::size_t d = threadIdx.x; d < D; d += threads) ot[d] = 0.0f;
    return;
  }
  const float scale = 1.0f / ::sqrtf(float(D));
  const float* qt = q + (t * Hq + h) * D;
  float mx = -INFINITY;
  for (std::size_t j = threadIdx.x; j < L; j += threads) {
    float sj = -INFINITY;
    if (j <= i && dm::attention_visible(sq, a.segment[o + j])) {
      const float* kj = k + ((o + j) * Hkv + g) * D;
      float dot = 0.0f;
      for (std::size_t d = 0; d < D; ++d) dot += qt[d] * kj[d];
      sj = scale * dot;
      mx = fmaxf(mx, sj);
    }
    P[j] = sj;
  }
  mx = detail::block_max(mx, fbuf);  // finite: the query sees itself
  double sum = 0.0;
  for (std::size_t j = threadIdx.x; j < L; j += threads) {
    const float e = P[j] == -INFINITY ? 0.0f : ::expf(P[j] - mx);
    P[j] = e;
    sum += double(e);
  }
  const float inv = float(1.0 / detail::block_sum(sum, dbuf));
  for (std::size_t j = threadIdx.x; j < L; j += threads) P[j] *= inv;
  __syncthreads();  // P complete and visible to the whole block
  for (std::size_t d = threadIdx.x; d < D; d += threads) {
    float acc = 0.0f;
    for (std::size_t j = 0; j <= i; ++j) acc += P[j] * v[((o + j) * Hkv + g) * D + d];
    ot[d] = acc;
  }
}

__global__ void attention_backward_q_k(attention_args a, const float* dout, const float* k, const float* v,
                                       const float* probs, float* dscores, float* dq) {
  __shared__ double dbuf[threads];
  const std::size_t t = blockIdx.x, h = blockIdx.y;
  const std::size_t Hq = std::size_t(a.q_heads), Hkv = std::size_t(a.kv_heads), D = std::size_t(a.head_dim);
  const std::size_t g = h / (Hq / Hkv);
  const std::int32_t r = a.token_row[t];
  const std::size_t o = std::size_t(a.row_offsets[r]), L = std::size_t(a.row_offsets[r + 1]) - o, i = t - o;
  const std::size_t row = a.prob_offset[r] + (h * L + i) * L;
  const float* P = probs + row;
  float* dS = dscores + row;
  const float* dot_ = dout + (t * Hq + h) * D;
  double rs = 0.0;
  for (std::size_t j = threadIdx.x; j < L; j += threads) {
    float dp = 0.0f;
    if (P[j] != 0.0f) {
      const float* vj = v + ((o + j) * Hkv + g) * D;
      for (std::size_t d = 0; d < D; ++d) dp += dot_[d] * vj[d];
    }
    dS[j] = dp;
    rs += double(P[j]) * double(dp);
  }
  const float rowsum = float(detail::block_sum(rs, dbuf));
  for (std::size_t j = threadIdx.x; j < L; j += threads) dS[j] = P[j] * (dS[j] - rowsum);
  __syncthreads();
  const float scale = 1.0f / ::sqrtf(float(D));
  for (std::size_t d = threadIdx.x; d < D; d += threads) {
    float acc = 0.0f;
    for (std::size_t j = 0; j <= i && j < L; ++j) acc += dS[j] * k[((o + j) * Hkv + g) * D + d];
    dq[(t * Hq + h) * D + d] = scale * acc;
  }
}

__global__ void attention_backward_kv_k(attention_args a, const float* dout, const float* q, const float* probs,
                                        const float* dscores, float* dk, float* dv) {
  const std::size_t s = blockIdx.x, g = blockIdx.y;
  const std::size_t Hq = std::size_t(a.q_heads), Hkv = std::size_t(a.kv_heads), D = std::size_t(a.head_dim);
  const std::size_t group = Hq / Hkv;
  const std::int32_t r = a.token_row[s];
  const std::size_t o = std::size_t(a.row_offsets[r]), L = std::size_t(a.row_offsets[r + 1]) - o, jj = s - o;
  const float scale = 1.0f / ::sqrtf(float(D));
  for (std::size_t d = threadIdx.x; d < D; d += threads) {
    float acc_v = 0.0f, acc_k = 0.0f;
    for (std::size_t h = g * group; h < (g + 1) * group; ++h) {
      const std::size_t block = a.prob_offset[r] + h * L * L;
      for (std::size_t i = jj; i < L; ++i) {
        const std::size_t e = block + i * L + jj;
        acc_v += probs[e] * dout[((o + i) * Hq + h) * D + d];
        acc_k += dscores[e] * q[((o + i) * Hq + h) * D + d];
      }
    }
    dv[(s * Hkv + g) * D + d] = acc_v;
    dk[(s * Hkv + g) * D + d] = scale * acc_k;
  }
}
} // namespace

cudaError_t attention_forward(const attention_args& a, const float* q, const float* k, const float* v, float* out,
                              float* probs, cudaStream_t s) {
  if (a.tokens == 0) return cudaGetLastError();
  const dim3 grid(unsigned(a.tokens), unsigned(a.q_heads));
  attention_forward_k<<<grid, threads, 0, s>>>(a, q, k, v, out, probs);
  return cudaGetLastError();
}
cudaError_t attention_backward(const attention_args& a, const float* dout, const float* q, const float* k, const float* v,
                               const float* probs, float* dscores, float* dq, float* dk, float* dv, cudaStream_t s) {
  if (a.tokens == 0) return cudaGetLastError();
  attention_backward_q_k<<<dim3(unsigned(a.tokens), unsigned(a.q_heads)), threads, 0, s>>>(a, dout, k, v, probs,
                                                                                          dscores, dq);
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  attention_backward_kv_k<<<dim3(unsigned(a.tokens), unsigned(a.kv_heads)), threads, 0, s>>>(a, dout, q, probs,
                                                                                            dscores, dk, dv);
  return cudaGetLastError();
}

} // namespace prefopt::backends::cuda_kernels
