// prefopt/backends/cuda/common.hpp — cuda backend internals: errors, the device context, owning
// device buffers.
//
// Plain C++ over the CUDA runtime API (g++ compiles it; only the kernels in backends/cuda/src go
// through nvcc). Every CUDA or cuBLASLt call is checked: a failure throws cuda_error naming the op
// and the runtime's error string.
//
// Memory: stream-ordered allocation from the device's default memory pool (cudaMallocAsync /
// cudaFreeAsync, the CUDA runtime's own caching allocator) with the pool's release threshold set
// to "never", so freed blocks stay in the pool: after a training step's first run, every later
// allocation of the same sizes is served from the pool without a cudaMalloc or a device
// synchronization. A hand-written size-class allocator would duplicate exactly this.
// One context (device, stream, cuBLASLt handle, GEMM plans, workspace) is shared by every copy of
// a backend object, so models built from copies of one backend run on one stream in order.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "prefopt/core/error.hpp"
#include "prefopt/core/host_backend.hpp"

namespace prefopt::backends {

// A CUDA runtime or cuBLASLt failure: where = the backend op, why = the library's error string.
class cuda_error : public error {
  using error::error;
};

namespace cuda_detail {

using op_checks::positive;
using op_checks::require_optional;
using op_checks::require_size;
using op_checks::rows_of;
using op_checks::span_of;

inline void check(cudaError_t e, const char* op) {
  if (e != cudaSuccess)
    throw cuda_error(std::string("cuda backend op '") + op + "'",
                     std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e));
}
inline void check(cublasStatus_t s, const char* op) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw cuda_error(std::string("cuda backend op '") + op + "'",
                     std::string(cublasLtGetStatusName(s)) + ": " + cublasLtGetStatusString(s));
}

// One cuBLASLt matmul set-up for a shape, transposes and operand alignments (see blas.hpp).
struct gemm_plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
};
// transa, transb, m, n, k, lda, ldb, ldc, alignment of A, B, C (bytes), A and B in bf16
using gemm_key = std::tuple<bool, bool, int, int, int, int, int, int, int, int, int, bool>;

class context {
public:
  static constexpr std::size_t workspace_bytes = std::size_t(32) << 20;  // cuBLASLt workspace

  explicit context(int device) : device_(device) {
    check(cudaSetDevice(device), "context: cudaSetDevice");
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "context: cudaStreamCreate");
    cudaMemPool_t pool = nullptr;
    check(cudaDeviceGetDefaultMemPool(&pool, device), "context: cudaDeviceGetDefaultMemPool");
    std::uint64_t keep = std::numeric_limits<std::uint64_t>::max();
    check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep), "context: cudaMemPoolSetAttribute");
    check(cublasLtCreate(&lt_), "context: cublasLtCreate");
    check(cudaMallocAsync(&workspace_, workspace_bytes, stream_), "context: workspace");
    check(cudaMallocAsync(reinterpret_cast<void**>(&flag_), sizeof(std::int32_t), stream_), "context: flag");
  }
  context(const context&) = delete;
  context& operator=(const context&) = delete;
  // Destruction must not throw: errors here are ignored (the process keeps running without them).
  ~context() {
    for (auto& [key, p] : plans_) {
      cublasLtMatrixLayoutDestroy(p.a);
      cublasLtMatrixLayoutDestroy(p.b);
      cublasLtMatrixLayoutDestroy(p.c);
      cublasLtMatmulDescDestroy(p.desc);
    }
    cudaFreeAsync(workspace_, stream_);
    cudaFreeAsync(flag_, stream_);
    cudaStreamSynchronize(stream_);
    cublasLtDestroy(lt_);
    cudaStreamDestroy(stream_);
  }

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  cublasLtHandle_t lt() const { return lt_; }
  void* workspace() const { return workspace_; }
  std::int32_t* flag() const { return flag_; }  // one device int the checking kernels write
  std::map<gemm_key, gemm_plan>& plans() { return plans_; }
  void synchronize(const char* op) const { check(cudaStreamSynchronize(stream_), op); }

  // The context of `device` shared by every default-constructed backend in this process.
  static std::shared_ptr<context> shared(int device = 0) {
    static std::map<int, std::weak_ptr<context>> all;
    auto& w = all[device];
    auto c = w.lock();
    if (!c) {
      c = std::make_shared<context>(device);
      w = c;
    }
    return c;
  }

private:
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  void* workspace_ = nullptr;
  std::int32_t* flag_ = nullptr;
  std::map<gemm_key, gemm_plan> plans_;
};

// Owning device memory from the context's pool, freed in stream order. span() views device
// memory: pass it to the backend's ops; read it on the host only through download().
template <class T> class device_buffer {
  static_assert(std::is_trivially_copyable_v<T>, "device_buffer holds trivially copyable elements");

public:
  device_buffer() = default;
  device_buffer(std::shared_ptr<context> ctx, std::size_t n) : ctx_(std::move(ctx)), size_(n) {
    if (n) check(cudaMallocAsync(reinterpret_cast<void**>(&data_), n * sizeof(T), ctx_->stream()), "allocate");
  }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  device_buffer(device_buffer&& o) noexcept
      : ctx_(std::move(o.ctx_)), data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  device_buffer& operator=(device_buffer&& o) noexcept {
    if (this != &o) {
      release();
      ctx_ = std::move(o.ctx_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ~device_buffer() { release(); }

  [[nodiscard]] T* data() noexcept { return data_; }
  [[nodiscard]] const T* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::span<T> span() noexcept { return {data_, size_}; }
  [[nodiscard]] std::span<const T> span() const noexcept { return {data_, size_}; }

private:
  void release() noexcept {
    if (data_) cudaFreeAsync(data_, ctx_->stream());  // no throw from a destructor; the pool takes it back
    data_ = nullptr;
    size_ = 0;
  }
  std::shared_ptr<context> ctx_;
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

} // namespace cuda_detail
} // namespace prefopt::backends

namespace prefopt::backends::cuda_detail {

// Index checks on the device: reset the context's flag, run kernels that record the first bad
// element, then read the flag back (one small synchronous copy) and throw like the CPU backends.
inline void reset_flag(context& c, const char* op);
inline void throw_if_flagged(context& c, const char* op, const char* arg, const std::string& what);

} // namespace prefopt::backends::cuda_detail

#include "prefopt/backends/cuda/kernels.hpp"

namespace prefopt::backends::cuda_detail {

inline void reset_flag(context& c, const char* op) {
  check(cuda_kernels::fill_i32(c.flag(), 1, std::numeric_limits<std::int32_t>::max(), c.stream()), op);
}
inline void throw_if_flagged(context& c, const char* op, const char* arg, const std::string& what) {
  std::int32_t first = 0;
  check(cudaMemcpyAsync(&first, c.flag(), sizeof first, cudaMemcpyDeviceToHost, c.stream()), op);
  c.synchronize(op);
  if (first != std::numeric_limits<std::int32_t>::max())
    throw shape_error(std::string("backend op '") + op + "': argument '" + arg + "'",
                      "element " + std::to_string(first) + " " + what);
}

} // namespace prefopt::backends::cuda_detail
