// backends/cuda/src/blas1.cu — fill, axpy, scale, dot partial sums, row softmax, gather/scatter,
// bf16 rounding (core/bf16.hpp), optimizer updates: one thread per element (grid-stride) or one block per row.
#include <cmath>

#include "launch.cuh"
#include "prefopt/backends/cuda/kernels.hpp"
#include "prefopt/core/bf16.hpp"
#include "prefopt/optim/update_rules.hpp"

namespace prefopt::backends::cuda_kernels {
using detail::threads;

namespace {
template <class T> __global__ void fill_k(T* p, std::size_t n, T value) {
  PREFOPT_GRID_STRIDE(i, n) p[i] = value;
}
__global__ void axpy_k(float a, const float* x, float* y, std::size_t n) {
  PREFOPT_GRID_STRIDE(i, n) y[i] += a * x[i];
}
__global__ void scale_k(float* x, std::size_t n, float a) {
  PREFOPT_GRID_STRIDE(i, n) x[i] *= a;
}
__global__ void scale_matrix_k(float* c, int m, int n, int ldc, float beta) {
  const std::size_t total = std::size_t(m) * std::size_t(n);
  PREFOPT_GRID_STRIDE(e, total) {
    float& x = c[(e / std::size_t(n)) * std::size_t(ldc) + e % std::size_t(n)];
    x = beta == 0.0f ? 0.0f : beta * x;
  }
}
__global__ void to_bf16_k(const float* x, std::uint16_t* y, std::size_t n) {
  PREFOPT_GRID_STRIDE(i, n) y[i] = prefopt::to_bf16(x[i]);
}
__global__ void round_bf16_k(const float* x, float* y, std::size_t n) {
  PREFOPT_GRID_STRIDE(i, n) y[i] = prefopt::round_bf16(x[i]);
}
__global__ void dot_k(const float* x, const float* y, std::size_t n, double* partial) {
  __shared__ double buf[threads];
  double s = 0.0;
  PREFOPT_GRID_STRIDE(i, n) s += double(x[i]) * double(y ? y[i] : x[i]);
  s = detail::block_sum(s, buf);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}
// One block per row: out = x − (max + log Σ e^(x − max)), the sum in double as the CPU backends.
__global__ void log_softmax_k(int cols, const float* x, float* out) {
  __shared__ float fbuf[threads];
  __shared__ double dbuf[threads];
  const float* xr = x + std::size_t(blockIdx.x) * cols;
  float* o = out + std::size_t(blockIdx.x) * cols;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < cols; j += threads) mx = fmaxf(mx, xr[j]);
  mx = detail::block_max(mx, fbuf);
  double s = 0.0;
  for (int j = threadIdx.x; j < cols; j += threads) s += ::exp(double(xr[j] - mx));
  s = detail::block_sum(s, dbuf);
  const float lse = mx + float(::log(s));
  for (int j = threadIdx.x; j < cols; j += threads) o[j] = xr[j] - lse;
}
__global__ void log_softmax_backward_k(int cols, const float* logp, const float* dy, float* dx) {
  __shared__ double dbuf[threads];
  const std::size_t o = std::size_t(blockIdx.x) * cols;
  double s = 0.0;
  for (int j = threadIdx.x; j < cols; j += threads) s += double(dy[o + j]);
  s = detail::block_sum(s, dbuf);
  for (int j = threadIdx.x; j < cols; j += threads) dx[o + j] = dy[o + j] - ::expf(logp[o + j]) * float(s);
}
__global__ void gather_k(const float* src, std::size_t n_src, const std::int32_t* idx, std::size_t n, float* dst,
                         std::int32_t* bad) {
  PREFOPT_GRID_STRIDE(i, n) {
    const std::int32_t j = idx[i];
    if (j < 0 || std::size_t(j) >= n_src) {
      detail::mark_bad(bad, i);
      dst[i] = 0.0f;
    } else {
      dst[i] = src[j];
    }
  }
}
// One thread, in index order: repeated indices add up exactly as on the CPU.
__global__ void scatter_add_k(const float* src, const std::int32_t* idx, std::size_t n, float* dst, std::size_t n_dst,
                              std::int32_t* bad) {
  for (std::size_t i = 0; i < n; ++i) {
    const std::int32_t j = idx[i];
    if (j < 0 || std::size_t(j) >= n_dst) {
      detail::mark_bad(bad, i);
      return;
    }
    dst[j] += src[i];
  }
}
__global__ void adamw_k(float* p, const float* g, float* m, float* v, std::size_t n, adamw_args a) {
  PREFOPT_GRID_STRIDE(i, n) optim::rules::adamw(p[i], g[i], m[i], v[i], a);
}
__global__ void sgd_k(float* p, const float* g, float* buf, std::size_t n, sgd_args a) {
  PREFOPT_GRID_STRIDE(i, n) {
    float dummy = 0.0f;
    optim::rules::sgd(p[i], g[i], buf ? buf[i] : dummy, a);
  }
}
} // namespace

cudaError_t fill_f32(float* p, std::size_t n, float value, cudaStream_t s) {
  if (n) fill_k<<<detail::blocks_for(n), threads, 0, s>>>(p, n, value);
  return cudaGetLastError();
}
cudaError_t fill_i32(std::int32_t* p, std::size_t n, std::int32_t value, cudaStream_t s) {
  if (n) fill_k<<<detail::blocks_for(n), threads, 0, s>>>(p, n, value);
  return cudaGetLastError();
}
cudaError_t axpy(float a, const float* x, float* y, std::size_t n, cudaStream_t s) {
  if (n) axpy_k<<<detail::blocks_for(n), threads, 0, s>>>(a, x, y, n);
  return cudaGetLastError();
}
cudaError_t scale(float* x, std::size_t n, float a, cudaStream_t s) {
  if (n) scale_k<<<detail::blocks_for(n), threads, 0, s>>>(x, n, a);
  return cudaGetLastError();
}
cudaError_t scale_matrix(float* c, int m, int n, int ldc, float beta, cudaStream_t s) {
  const std::size_t total = std::size_t(m) * std::size_t(n);
  if (total) scale_matrix_k<<<detail::blocks_for(total), threads, 0, s>>>(c, m, n, ldc, beta);
  return cudaGetLastError();
}
cudaError_t to_bf16(const float* x, std::uint16_t* y, std::size_t n, cudaStream_t s) {
  if (n) to_bf16_k<<<detail::blocks_for(n), threads, 0, s>>>(x, y, n);
  return cudaGetLastError();
}
cudaError_t round_bf16(const float* x, float* y, std::size_t n, cudaStream_t s) {
  if (n) round_bf16_k<<<detail::blocks_for(n), threads, 0, s>>>(x, y, n);
  return cudaGetLastError();
}
int reduce_blocks(std::size_t n) {
  const std::size_t b = (n + threads - 1) / threads;
  return int(b == 0 ? 1 : (b > 1024 ? 1024 : b));
}
cudaError_t dot_partials(const float* x, const float* y, std::size_t n, double* partial, cudaStream_t s) {
  dot_k<<<reduce_blocks(n), threads, 0, s>>>(x, y, n, partial);
  return cudaGetLastError();
}
cudaError_t log_softmax_rows(int rows, int cols, const float* x, float* out, cudaStream_t s) {
  if (rows > 0 && cols > 0) log_softmax_k<<<rows, threads, 0, s>>>(cols, x, out);
  return cudaGetLastError();
}
cudaError_t log_softmax_rows_backward(int rows, int cols, const float* logp, const float* dy, float* dx, cudaStream_t s) {
  if (rows > 0 && cols > 0) log_softmax_backward_k<<<rows, threads, 0, s>>>(cols, logp, dy, dx);
  return cudaGetLastError();
}
cudaError_t gather(const float* src, std::size_t n_src, const std::int32_t* idx, std::size_t n, float* dst,
                   std::int32_t* bad, cudaStream_t s) {
  if (n) gather_k<<<detail::blocks_for(n), threads, 0, s>>>(src, n_src, idx, n, dst, bad);
  return cudaGetLastError();
}
cudaError_t scatter_add(const float* src, const std::int32_t* idx, std::size_t n, float* dst, std::size_t n_dst,
                        std::int32_t* bad, cudaStream_t s) {
  if (n) scatter_add_k<<<1, 1, 0, s>>>(src, idx, n, dst, n_dst, bad);
  return cudaGetLastError();
}
cudaError_t adamw(float* p, const float* g, float* m, float* v, std::size_t n, const adamw_args& a, cudaStream_t s) {
  if (n) adamw_k<<<detail::blocks_for(n), threads, 0, s>>>(p, g, m, v, n, a);
  return cudaGetLastError();
}
cudaError_t sgd(float* p, const float* g, float* buf, std::size_t n, const sgd_args& a, cudaStream_t s) {
  if (n) sgd_k<<<detail::blocks_for(n), threads, 0, s>>>(p, g, buf, n, a);
  return cudaGetLastError();
}

} // namespace prefopt::backends::cuda_kernels
