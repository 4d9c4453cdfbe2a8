// prefopt/backends/cuda.hpp — the GPU backend: cuBLASLt GEMMs and prefopt's own kernels.
//
//   using backend = prefopt::backends::cuda;           // fp32 storage; matmul_precision: fp32 or bf16
//   auto policy = prefopt::models::from_pretrained<prefopt::models::gpt2<backend>>(backend{}, dir);
//
// Buffers are device memory (host_memory = false): models and trainers read them on the host only
// through download(). Every op is queued on the backend's stream; download, dot, sum_squares and
// the ops that check indices on the device (embedding, gather/scatter, LM head, attention's
// layout) wait for it. Copies of a backend object share one context (device, stream, cuBLASLt
// handle, GEMM plans, memory pool; cuda/common.hpp), so work from every model built from it runs
// in order. A backend object is used from one host thread at a time.
// Op groups, one header each: cuda/blas.hpp (gemm, blas-1, softmax, indexing), cuda/norms.hpp,
// cuda/pointwise.hpp, cuda/attention.hpp, cuda/lm_head.hpp, cuda/optim.hpp; the kernels are
// compiled once into prefopt_cuda_kernels (backends/cuda/src). map_pairs runs a loss's PREFOPT_HD
// code in a kernel (cuda/map_pairs.cuh).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <type_traits>

#include "prefopt/backends/cuda/attention.hpp"
#include "prefopt/backends/cuda/blas.hpp"
#include "prefopt/backends/cuda/common.hpp"
#include "prefopt/backends/cuda/lm_head.hpp"
#include "prefopt/backends/cuda/map_pairs.hpp"
#include "prefopt/backends/cuda/norms.hpp"
#include "prefopt/backends/cuda/optim.hpp"
#include "prefopt/backends/cuda/pointwise.hpp"
#include "prefopt/core/backend.hpp"
#include "prefopt/core/bf16.hpp"
#include "prefopt/core/transformer_ops.hpp"
#include "prefopt/losses/concepts.hpp"

namespace prefopt::backends {

class cuda : public cuda_detail::cuda_blas_ops<cuda>,
             public cuda_detail::cuda_norm_ops<cuda>,
             public cuda_detail::cuda_pointwise_ops<cuda>,
             public cuda_detail::cuda_attention_ops<cuda>,
             public cuda_detail::cuda_lm_head_ops<cuda>,
             public cuda_detail::cuda_optim_ops<cuda> {
public:
  static constexpr std::string_view name = "cuda";
  static constexpr bool host_memory = false;

  // bf16 (core/bf16.hpp): gemm multiplies bf16 copies of A and B in cuBLASLt (fp32 compute and
  // output); gemm_bf16 reads operands already in bf16 (a model's weight copy, its stored norm
  // outputs: core/bf16.hpp) directly and converts only the fp32 one; attention
  // reads bf16-rounded Q, K, V (and dO). Master weights, gradients and optimizer state stay fp32.
  precision matmul_precision = precision::fp32;
  template <class T> using buffer = cuda_detail::device_buffer<T>;

  // The process's shared context of device 0 (created on first use).
  cuda() : ctx_(cuda_detail::context::shared(0)) {}
  // The shared context of another device.
  explicit cuda(int device) : ctx_(cuda_detail::context::shared(device)) {}

  // Whether this process sees a CUDA device (false without a GPU or a driver).
  static bool device_available() {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  }

  // The device's total memory in bytes (the budget `prefopt train` checks a run's estimate against).
  std::size_t memory_bytes() const {
    std::size_t free = 0, total = 0;
    cuda_detail::check(cudaMemGetInfo(&free, &total), "memory_bytes");
    return total;
  }

  cuda_detail::context& ctx() const { return *ctx_; }
  const std::shared_ptr<cuda_detail::context>& shared_context() const { return ctx_; }

  // ---- memory ------------------------------------------------------------------------------
  // New buffers are zero-filled (as the CPU backends' are), in stream order.
  template <class T> buffer<T> allocate(std::size_t n) const {
    buffer<T> b(ctx_, n);
    if (n) cuda_detail::check(cudaMemsetAsync(b.data(), 0, n * sizeof(T), ctx_->stream()), "allocate");
    return b;
  }
  // host → device; returns when the host memory may be reused (the copy has completed).
  template <class T> void upload(std::type_identity_t<std::span<const T>> host, std::span<T> dst) const {
    cuda_detail::require_size(dst.size(), host.size(), "upload", "dst");
    if (host.empty()) return;
    cuda_detail::check(cudaMemcpyAsync(dst.data(), host.data(), host.size_bytes(), cudaMemcpyHostToDevice, ctx_->stream()),
                       "upload");
    ctx_->synchronize("upload");
  }
  // device → host, after all queued work.
  template <class T> void download(std::type_identity_t<std::span<const T>> src, std::span<T> host) const {
    cuda_detail::require_size(host.size(), src.size(), "download", "host");
    if (src.empty()) return;
    cuda_detail::check(cudaMemcpyAsync(host.data(), src.data(), src.size_bytes(), cudaMemcpyDeviceToHost, ctx_->stream()),
                       "download");
    ctx_->synchronize("download");
  }
  template <class T> void copy(std::type_identity_t<std::span<const T>> src, std::span<T> dst) const {
    cuda_detail::require_size(dst.size(), src.size(), "copy", "dst");
    if (src.empty()) return;
    cuda_detail::check(cudaMemcpyAsync(dst.data(), src.data(), src.size_bytes(), cudaMemcpyDeviceToDevice, ctx_->stream()),
                       "copy");
  }
  void fill(std::span<float> dst, float value) const {
    cuda_detail::check(cuda_kernels::fill_f32(dst.data(), dst.size(), value, ctx_->stream()), "fill");
  }
  void fill(std::span<std::int32_t> dst, std::int32_t value) const {
    cuda_detail::check(cuda_kernels::fill_i32(dst.data(), dst.size(), value, ctx_->stream()), "fill");
  }
  void synchronize() const { ctx_->synchronize("synchronize"); }

  // ---- losses: one thread per pair over the loss's PREFOPT_HD code ---------------------------
  // The kernel is instantiated for the shipped losses in the kernel library; for a loss of your
  // own, instantiate cuda_detail::launch_map_pairs in a .cu file (cuda/map_pairs.cuh).
  template <losses::ElementwiseLoss L, class T> void map_pairs(const L& loss, const pair_view<T>& v) const {
    cuda_detail::check(cuda_detail::launch_map_pairs(loss, v, ctx_->stream()), "map_pairs");
  }

private:
  std::shared_ptr<cuda_detail::context> ctx_;
};

static_assert(Backend<cuda>);
static_assert(backend_ops::transformer<cuda>);

} // namespace prefopt::backends
