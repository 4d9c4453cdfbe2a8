// backends/cuda/src/lm_head.cu — LM-head row statistics and the logits gradient.
//
// Statistics: one block per row; thread j keeps device_math::softmax_stats over the vocabulary
// entries j, j + 256, ... (its tile), and the block merges the 256 partial statistics as a tree
// in shared memory (the partial log-sum-exp merge); top1: each thread ORs device_math::beats_target
// over its tile and __syncthreads_or combines them. Backward: one thread per logit,
// dz = −g·e^(z − lse) (+ g at the target), in place when dlogits aliases logits.
#include <cmath>

#include "launch.cuh"
#include "prefopt/backends/cuda/kernels.hpp"
#include "prefopt/core/device_math.hpp"

namespace prefopt::backends::cuda_kernels {
using detail::threads;
namespace dm = prefopt::device_math;

namespace {
__global__ void lm_head_stats_k(const float* logits, const std::int32_t* targets, int V, float* lse, float* logp,
                                float* log_sum_sq, float* entropy, float* mean_logit, float* top1, std::int32_t* bad) {
  // Raw storage: a __shared__ array of a type with default member initializers is not allowed.
  __shared__ alignas(dm::softmax_stats) unsigned char raw[threads * sizeof(dm::softmax_stats)];
  dm::softmax_stats* part = reinterpret_cast<dm::softmax_stats*>(raw);
  const std::size_t r = blockIdx.x;
  const float* z = logits + r * std::size_t(V);
  dm::softmax_stats st;
  for (int j = threadIdx.x; j < V; j += threads) st.add(z[j]);
  part[threadIdx.x] = st;
  const std::int32_t target = targets[r];
  int beaten = 0;
  if (top1 && target >= 0 && target < V) {
    const float zt = z[target];
    for (int j = threadIdx.x; j < V && !beaten; j += threads) beaten = dm::beats_target(z[j], j, zt, target);
  }
  if (top1) beaten = __syncthreads_or(beaten);  // top1 is the same for every thread of the block
  __syncthreads();
  for (int stride = threads / 2; stride > 0; stride >>= 1) {
    if (int(threadIdx.x) < stride) part[threadIdx.x].merge(part[threadIdx.x + stride]);
    __syncthreads();
  }
  if (threadIdx.x != 0) return;
  const dm::softmax_stats& all = part[0];
  const double l = all.lse();
  const std::int32_t tr = targets[r];
  lse[r] = float(l);
  if (tr >= V) detail::mark_bad(bad, r);
  logp[r] = tr >= 0 && tr < V ? float(double(z[tr]) - l) : 0.0f;
  if (log_sum_sq) log_sum_sq[r] = float(all.log_sum_sq());
  if (entropy) entropy[r] = float(all.entropy());
  if (mean_logit) mean_logit[r] = float(all.zsum / double(V));
  if (top1) top1[r] = tr >= 0 && tr < V && dm::target_is_top1(beaten != 0, z[tr]) ? 1.0f : 0.0f;
}
__global__ void lm_head_backward_k(const float* logits, const std::int32_t* targets, const float* lse, const float* dlogp,
                                   int rows, int V, float* dlogits, std::int32_t* bad) {
  const std::size_t n = std::size_t(rows) * std::size_t(V);
  PREFOPT_GRID_STRIDE(e, n) {
    const std::size_t r = e / std::size_t(V);
    const std::int32_t j = std::int32_t(e % std::size_t(V)), tr = targets[r];
    if (tr >= V && j == 0) detail::mark_bad(bad, r);
    if (tr < 0 || tr >= V) {
      dlogits[e] = 0.0f;
      continue;
    }
    const float g = dlogp[r];
    float d = -g * ::expf(logits[e] - lse[r]);
    if (j == tr) d += g;
    dlogits[e] = d;
  }
}
} // namespace

cudaError_t lm_head_stats(const float* logits, const std::int32_t* targets, int rows, int V, float* lse, float* logp,
                          float* log_sum_sq, float* entropy, float* mean_logit, float* top1, std::int32_t* bad,
                          cudaStream_t s) {
  if (rows > 0)
    lm_head_stats_k<<<unsigned(rows), threads, 0, s>>>(logits, targets, V, lse, logp, log_sum_sq, entropy, mean_logit,
                                                       top1, bad);
  return cudaGetLastError();
}
cudaError_t lm_head_backward(const float* logits, const std::int32_t* targets, const float* lse, const float* dlogp,
                             int rows, int V, float* dlogits, std::int32_t* bad, cudaStream_t s) {
  const std::size_t n = std::size_t(rows) * std::size_t(V);
  if (n) lm_head_backward_k<<<detail::blocks_for(n), threads, 0, s>>>(logits, targets, lse, dlogp, rows, V, dlogits, bad);
  return cudaGetLastError();
}

} // namespace prefopt::backends::cuda_kernels
