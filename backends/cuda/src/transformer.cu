// backends/cuda/src/transformer.cu — embedding, bias, LayerNorm, RMSNorm, GELU, SwiGLU, RoPE,
// dropout: thin kernels over core/device_math.hpp. Row statistics: one block per row, double
// partial sums per thread, a tree over the block. Column sums (dw, db, dbias) and the embedding
// gradient: one thread per column walking the rows in order, so the result does not depend on
// the launch and repeated ids add up in token order as on the CPU.
#include "launch.cuh"
#include "prefopt/backends/cuda/kernels.hpp"
#include "prefopt/core/device_math.hpp"
#include "prefopt/core/random.hpp"

namespace prefopt::backends::cuda_kernels {
using detail::threads;
namespace dm = prefopt::device_math;

namespace {
__global__ void embedding_forward_k(const std::int32_t* ids, std::size_t T, const float* table, std::size_t vocab, int C,
                                    float* out, std::int32_t* bad) {
  const std::size_t n = T * std::size_t(C);
  PREFOPT_GRID_STRIDE(e, n) {
    const std::size_t t = e / std::size_t(C), c = e % std::size_t(C);
    const std::int32_t id = ids[t];
    if (id < 0 || std::size_t(id) >= vocab) {
      detail::mark_bad(bad, t);
      out[e] = 0.0f;
    } else {
      out[e] = table[std::size_t(id) * std::size_t(C) + c];
    }
  }
}
__global__ void embedding_backward_k(const std::int32_t* ids, std::size_t T, const float* dout, int C, float* dtable,
                                     std::size_t vocab, std::int32_t* bad) {
  const std::size_t c = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= std::size_t(C)) return;
  for (std::size_t t = 0; t < T; ++t) {
    const std::int32_t id = ids[t];
    if (id < 0 || std::size_t(id) >= vocab) {
      detail::mark_bad(bad, t);
      continue;
    }
    dtable[std::size_t(id) * std::size_t(C) + c] += dout[t * std::size_t(C) + c];
  }
}
__global__ void bias_forward_k(const float* bias, int N, float* out, std::size_t T) {
  const std::size_t n = T * std::size_t(N);
  PREFOPT_GRID_STRIDE(e, n) out[e] += bias[e % std::size_t(N)];
}
// acc[c] += Σ_t dout[t,c]·(x[t,c] − mean[t])·rstd[t]  (x null: Σ_t dout[t,c]; mean null: μ = 0)
__global__ void column_sum_k(const float* dout, const float* x, const float* mean, const float* rstd, std::size_t T,
                             int C, float* acc) {
  const std::size_t c = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= std::size_t(C)) return;
  double s = 0.0;
  for (std::size_t t = 0; t < T; ++t) {
    const std::size_t e = t * std::size_t(C) + c;
    if (!x) s += double(dout[e]);
    else s += double(dout[e] * (x[e] - (mean ? mean[t] : 0.0f)) * rstd[t]);
  }
  acc[c] += float(s);
}
__global__ void layernorm_forward_k(const float* x, const float* w, const float* b, int C, float eps, float* out,
                                    float* mean, float* rstd) {
  __shared__ double buf[threads];
  const std::size_t o = std::size_t(blockIdx.x) * C;
  double s = 0.0;
  for (int j = threadIdx.x; j < C; j += threads) s += double(x[o + j]);
  const double mu = detail::block_sum(s, buf) / double(C);
  double q = 0.0;
  for (int j = threadIdx.x; j < C; j += threads) {
    const double d = double(x[o + j]) - mu;
    q += d * d;
  }
  q = detail::block_sum(q, buf);
  const float m = float(mu), r = dm::norm_rstd(q, std::size_t(C), eps);
  for (int j = threadIdx.x; j < C; j += threads) out[o + j] = (x[o + j] - m) * r * w[j] + b[j];
  if (threadIdx.x == 0) {
    mean[blockIdx.x] = m;
    rstd[blockIdx.x] = r;
  }
}
// dx += rstd·(g·w − a − x̂·b), a = mean(g·w), b = mean(g·w·x̂); mean null: RMSNorm (a = 0, μ = 0).
__global__ void norm_backward_dx_k(const float* dout, const float* x, const float* w, const float* mean,
                                   const float* rstd, int C, float* dx) {
  __shared__ double buf[threads];
  const std::size_t o = std::size_t(blockIdx.x) * C;
  const float m = mean ? mean[blockIdx.x] : 0.0f, r = rstd[blockIdx.x];
  double sa = 0.0, sb = 0.0;
  for (int j = threadIdx.x; j < C; j += threads) {
    const float gw = dout[o + j] * w[j];
    sa += double(gw);
    sb += double(gw * (x[o + j] - m) * r);
  }
  const float a = mean ? float(detail::block_sum(sa, buf) / double(C)) : 0.0f;
  const float bb = float(detail::block_sum(sb, buf) / double(C));
  for (int j = threadIdx.x; j < C; j += threads)
    dx[o + j] += dm::norm_dx(dout[o + j], w[j], (x[o + j] - m) * r, r, a, bb);
}
__global__ void rmsnorm_forward_k(const float* x, const float* w, int C, float eps, float* out, float* rstd) {
  __shared__ double buf[threads];
  const std::size_t o = std::size_t(blockIdx.x) * C;
  double q = 0.0;
  for (int j = threadIdx.x; j < C; j += threads) q += double(x[o + j]) * double(x[o + j]);
  q = detail::block_sum(q, buf);
  const float r = dm::norm_rstd(q, std::size_t(C), eps);
  for (int j = threadIdx.x; j < C; j += threads) out[o + j] = w[j] * (x[o + j] * r);
  if (threadIdx.x == 0) rstd[blockIdx.x] = r;
}
__global__ void gelu_forward_k(const float* x, float* out, std::size_t n) {
  PREFOPT_GRID_STRIDE(i, n) out[i] = dm::gelu(x[i]);
}
__global__ void gelu_backward_k(const float* x, const float* dout, float* dx, std::size_t n) {
  PREFOPT_GRID_STRIDE(i, n) dx[i] = dm::gelu_grad(x[i], dout[i]);
}
__global__ void swiglu_forward_k(const float* gate, const float* up, float* out, std::size_t n) {
  PREFOPT_GRID_STRIDE(i, n) out[i] = dm::swiglu(gate[i], up[i]);
}
__global__ void swiglu_backward_k(const float* gate, const float* up, const float* dout, float* dgate, float* dup,
                                  std::size_t n) {
  PREFOPT_GRID_STRIDE(i, n) {
    const dm::swiglu_grads g = dm::swiglu_grad(gate[i], up[i], dout[i]);
    dgate[i] = g.dgate;
    dup[i] = g.dup;
  }
}
// One thread per (token, head, pair index i < D/2).
__global__ void rope_k(float* x, const std::int32_t* positions, std::size_t T, int heads, int head_dim,
                       const float* inv_freq, float sign) {
  const std::size_t half = std::size_t(head_dim) / 2, n = T * std::size_t(heads) * half;
  PREFOPT_GRID_STRIDE(e, n) {
    const std::size_t i = e % half, th = e / half, t = th / std::size_t(heads), h = th % std::size_t(heads);
    float* x1 = x + (t * std::size_t(heads) + h) * std::size_t(head_dim);
    dm::rope_apply(x1[i], x1[half + i], dm::rope_rotation(positions[t], inv_freq[i], sign));
  }
}
__global__ void dropout_k(const float* x, float* out, std::size_t n, float p, std::uint64_t seed) {
  PREFOPT_GRID_STRIDE(i, n) out[i] = x[i] * dropout_multiplier(seed, i, p);
}
unsigned column_blocks(int C) { return unsigned((C + threads - 1) / threads); }
} // namespace

cudaError_t embedding_forward(const std::int32_t* ids, std::size_t T, const float* table, std::size_t vocab, int C,
                              float* out, std::int32_t* bad, cudaStream_t s) {
  const std::size_t n = T * std::size_t(C);
  if (n) embedding_forward_k<<<detail::blocks_for(n), threads, 0, s>>>(ids, T, table, vocab, C, out, bad);
  return cudaGetLastError();
}
cudaError_t embedding_backward(const std::int32_t* ids, std::size_t T, const float* dout, int C, float* dtable,
                               std::size_t vocab, std::int32_t* bad, cudaStream_t s) {
  if (T && C > 0) embedding_backward_k<<<column_blocks(C), threads, 0, s>>>(ids, T, dout, C, dtable, vocab, bad);
  return cudaGetLastError();
}
cudaError_t bias_forward(const float* bias, int N, float* out, std::size_t T, cudaStream_t s) {
  const std::size_t n = T * std::size_t(N);
  if (n) bias_forward_k<<<detail::blocks_for(n), threads, 0, s>>>(bias, N, out, T);
  return cudaGetLastError();
}
cudaError_t bias_backward(const float* dout, std::size_t T, int N, float* dbias, cudaStream_t s) {
  if (N > 0) column_sum_k<<<column_blocks(N), threads, 0, s>>>(dout, nullptr, nullptr, nullptr, T, N, dbias);
  return cudaGetLastError();
}
cudaError_t layernorm_forward(const float* x, const float* w, const float* b, std::size_t T, int C, float eps, float* out,
                              float* mean, float* rstd, cudaStream_t s) {
  if (T) layernorm_forward_k<<<unsigned(T), threads, 0, s>>>(x, w, b, C, eps, out, mean, rstd);
  return cudaGetLastError();
}
cudaError_t layernorm_backward(const float* dout, const float* x, const float* w, const float* mean, const float* rstd,
                               std::size_t T, int C, float* dx, float* dw, float* db, cudaStream_t s) {
  if (T) norm_backward_dx_k<<<unsigned(T), threads, 0, s>>>(dout, x, w, mean, rstd, C, dx);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  column_sum_k<<<column_blocks(C), threads, 0, s>>>(dout, x, mean, rstd, T, C, dw);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  column_sum_k<<<column_blocks(C), threads, 0, s>>>(dout, nullptr, nullptr, nullptr, T, C, db);
  return cudaGetLastError();
}
cudaError_t rmsnorm_forward(const float* x, const float* w, std::size_t T, int C, float eps, float* out, float* rstd,
                            cudaStream_t s) {
  if (T) rmsnorm_forward_k<<<unsigned(T), threads, 0, s>>>(x, w, C, eps, out, rstd);
  return cudaGetLastError();
}
cudaError_t rmsnorm_backward(const float* dout, const float* x, const float* w, const float* rstd, std::size_t T, int C,
                             float* dx, float* dw, cudaStream_t s) {
  if (T) norm_backward_dx_k<<<unsigned(T), threads, 0, s>>>(dout, x, w, nullptr, rstd, C, dx);
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  column_sum_k<<<column_blocks(C), threads, 0, s>>>(dout, x, nullptr, rstd, T, C, dw);
  return cudaGetLastError();
}
cudaError_t gelu_forward(const float* x, float* out, std::size_t n, cudaStream_t s) {
  if (n) gelu_forward_k<<<detail::blocks_for(n), threads, 0, s>>>(x, out, n);
  return cudaGetLastError();
}
cudaError_t gelu_backward(const float* x, const float* dout, float* dx, std::size_t n, cudaStream_t s) {
  if (n) gelu_backward_k<<<detail::blocks_for(n), threads, 0, s>>>(x, dout, dx, n);
  return cudaGetLastError();
}
cudaError_t swiglu_forward(const float* gate, const float* up, float* out, std::size_t n, cudaStream_t s) {
  if (n) swiglu_forward_k<<<detail::blocks_for(n), threads, 0, s>>>(gate, up, out, n);
  return cudaGetLastError();
}
cudaError_t swiglu_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup,
                            std::size_t n, cudaStream_t s) {
  if (n) swiglu_backward_k<<<detail::blocks_for(n), threads, 0, s>>>(gate, up, dout, dgate, dup, n);
  return cudaGetLastError();
}
cudaError_t rope(float* x, const std::int32_t* positions, std::size_t T, int heads, int head_dim, const float* inv_freq,
                 float sign, cudaStream_t s) {
  const std::size_t n = T * std::size_t(heads) * std::size_t(head_dim / 2);
  if (n) rope_k<<<detail::blocks_for(n), threads, 0, s>>>(x, positions, T, heads, head_dim, inv_freq, sign);
  return cudaGetLastError();
}
cudaError_t dropout(const float* x, float* out, std::size_t n, float p, std::uint64_t seed, cudaStream_t s) {
  if (n) dropout_k<<<detail::blocks_for(n), threads, 0, s>>>(x, out, n, p, seed);
  return cudaGetLastError();
}

} // namespace prefopt::backends::cuda_kernels
