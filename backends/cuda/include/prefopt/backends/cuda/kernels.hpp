// prefopt/backends/cuda/kernels.hpp — the launchers of the cuda backend's kernels.
//
// Defined in backends/cuda/src/*.cu (compiled once by nvcc into prefopt_cuda_kernels); declared
// here as plain C++ so the backend's headers compile with any host compiler. Each launcher queues
// its kernel(s) on `s` and returns cudaGetLastError(); it never synchronizes. Sizes are checked by
// the callers (the backend's op headers) before a launch; kernels that read indices (ids,
// targets) also check them on the device and record the first bad element in `bad` (an int the
// caller set to INT32_MAX), never reading or writing out of bounds.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "prefopt/core/backend.hpp"
#include "prefopt/core/cached_attention.hpp"
#include "prefopt/core/flash_attention.hpp"
#include "prefopt/core/flash_attention_tiled.hpp"

namespace prefopt::backends::cuda_kernels {

// ---- memory and blas-1 -------------------------------------------------------------------
cudaError_t fill_f32(float* p, std::size_t n, float value, cudaStream_t s);
cudaError_t fill_i32(std::int32_t* p, std::size_t n, std::int32_t value, cudaStream_t s);
cudaError_t axpy(float a, const float* x, float* y, std::size_t n, cudaStream_t s);       // y += a·x
cudaError_t scale(float* x, std::size_t n, float a, cudaStream_t s);                      // x *= a
cudaError_t scale_matrix(float* c, int m, int n, int ldc, float beta, cudaStream_t s);    // C = beta·C (beta 0: C = 0)
// bf16 (core/bf16.hpp): y = to_bf16(x) as bf16 bits; round: y = round_bf16(x) as floats (y may be x).
cudaError_t to_bf16(const float* x, std::uint16_t* y, std::size_t n, cudaStream_t s);
cudaError_t round_bf16(const float* x, float* y, std::size_t n, cudaStream_t s);
// partial[b] = Σ over block b's elements of x·y (y null: x²), double; blocks = reduce_blocks(n).
int reduce_blocks(std::size_t n);
cudaError_t dot_partials(const float* x, const float* y, std::size_t n, double* partial, cudaStream_t s);

// ---- softmax and indexing ----------------------------------------------------------------
cudaError_t log_softmax_rows(int rows, int cols, const float* x, float* out, cudaStream_t s);
cudaError_t log_softmax_rows_backward(int rows, int cols, const float* logp, const float* dy, float* dx, cudaStream_t s);
cudaError_t gather(const float* src, std::size_t n_src, const std::int32_t* idx, std::size_t n, float* dst,
                   std::int32_t* bad, cudaStream_t s);
cudaError_t scatter_add(const float* src, const std::int32_t* idx, std::size_t n, float* dst, std::size_t n_dst,
                        std::int32_t* bad, cudaStream_t s);

// ---- optimizers (optim/update_rules.hpp per element) --------------------------------------
cudaError_t adamw(float* p, const float* g, float* m, float* v, std::size_t n, const adamw_args& a, cudaStream_t s);
cudaError_t sgd(float* p, const float* g, float* buf, std::size_t n, const sgd_args& a, cudaStream_t s);

// ---- transformer ops (core/transformer_ops.hpp) -------------------------------------------
cudaError_t embedding_forward(const std::int32_t* ids, std::size_t T, const float* table, std::size_t vocab, int C,
                              float* out, std::int32_t* bad, cudaStream_t s);
cudaError_t embedding_backward(const std::int32_t* ids, std::size_t T, const float* dout, int C, float* dtable,
                               std::size_t vocab, std::int32_t* bad, cudaStream_t s);
cudaError_t bias_forward(const float* bias, int N, float* out, std::size_t T, cudaStream_t s);
cudaError_t bias_backward(const float* dout, std::size_t T, int N, float* dbias, cudaStream_t s);
cudaError_t layernorm_forward(const float* x, const float* w, const float* b, std::size_t T, int C, float eps, float* out,
                              float* mean, float* rstd, cudaStream_t s);
cudaError_t layernorm_backward(const float* dout, const float* x, const float* w, const float* mean, const float* rstd,
                               std::size_t T, int C, float* dx, float* dw, float* db, cudaStream_t s);
cudaError_t rmsnorm_forward(const float* x, const float* w, std::size_t T, int C, float eps, float* out, float* rstd,
                            cudaStream_t s);
cudaError_t rmsnorm_backward(const float* dout, const float* x, const float* w, const float* rstd, std::size_t T, int C,
                             float* dx, float* dw, cudaStream_t s);
cudaError_t gelu_forward(const float* x, float* out, std::size_t n, cudaStream_t s);
cudaError_t gelu_backward(const float* x, const float* dout, float* dx, std::size_t n, cudaStream_t s);
cudaError_t swiglu_forward(const float* gate, const float* up, float* out, std::size_t n, cudaStream_t s);
cudaError_t swiglu_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup,
                            std::size_t n, cudaStream_t s);
cudaError_t rope(float* x, const std::int32_t* positions, std::size_t T, int heads, int head_dim, const float* inv_freq,
                 float sign, cudaStream_t s);
cudaError_t dropout(const float* x, float* out, std::size_t n, float p, std::uint64_t seed, cudaStream_t s);

// FlashAttention over the packed layout with GQA, FlashAttention-2's block-tiled split
// (core/flash_attention_tiled.hpp: query/key tiles staged in shared memory, one thread per query
// or key, no atomics): out and lse [T × Hq] only, nothing of size L²; backward recomputes the
// probabilities from lse. row_offsets (rows + 1) and segment (T): device memory, checked on the
// host before the launch. delta: scratch of T·Hq floats. head_dim ≤ max_head_dim (64 and 128 run
// with register accumulators, other sizes on a generic path).
using attention_args = flash::packed_attention;
using flash::max_head_dim;
cudaError_t flash_attention_forward(const attention_args& a, const float* q, const float* k, const float* v, float* out,
                                    float* lse, cudaStream_t s);
cudaError_t flash_attention_backward(const attention_args& a, const float* dout, const float* q, const float* k,
                                     const float* v, const float* out, const float* lse, float* delta, float* dq, float* dk,
                                     float* dv, cudaStream_t s);

// New tokens against a key/value cache (core/cached_attention.hpp, one thread per token and query
// head); slot and position in device memory, checked on the host. head_dim ≤ max_head_dim.
cudaError_t cached_attention(const flash::cached_attention& a, const float* q, const float* k_cache, const float* v_cache,
                             float* out, cudaStream_t s);

// LM head (lse_stats over tiles of the vocabulary, device_math::softmax_stats); optional
// outputs may be null.
cudaError_t lm_head_stats(const float* logits, const std::int32_t* targets, int rows, int V, float* lse, float* logp,
                          float* log_sum_sq, float* entropy, float* mean_logit, float* top1, std::int32_t* bad,
                          cudaStream_t s);
cudaError_t lm_head_backward(const float* logits, const std::int32_t* targets, const float* lse, const float* dlogp,
                             int rows, int V, float* dlogits, std::int32_t* bad, cudaStream_t s);

} // namespace prefopt::backends::cuda_kernels
