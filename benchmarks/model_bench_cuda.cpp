// benchmarks/model_bench_cuda.cpp — prefopt_model_bench --backend cuda (built with PREFOPT_ENABLE_CUDA).
//
// Peak device memory: the cuda backend allocates every buffer from the device's default memory
// pool (cuda/common.hpp), whose high-water mark of memory in use (cudaMemPoolAttrUsedMemHigh) the
// CUDA runtime keeps; it is reset at the start of the measured region (after the weights are
// loaded), so it reports the most memory the step held at once, weights, gradients, activations
// and the cuBLASLt workspace included: what torch.cuda.max_memory_allocated reports on the PyTorch
// side after torch.cuda.reset_peak_memory_stats. The pool's reserved high-water mark and the
// device's used memory (cudaMemGetInfo: the CUDA context and cuBLASLt's own memory too) are
// reported beside it.
#include <cuda_runtime_api.h>

#include "model_bench.hpp"
#include "prefopt/backends/cuda.hpp"

namespace prefopt::bench {

namespace {

std::uint64_t pool_attribute(cudaMemPool_t pool, cudaMemPoolAttr attr) {
  std::uint64_t v = 0;
  backends::cuda_detail::check(cudaMemPoolGetAttribute(pool, attr, &v), "model_bench: cudaMemPoolGetAttribute");
  return v;
}

} // namespace

json run_cuda(const args& a) {
  if (!backends::cuda::device_available()) throw std::runtime_error("--backend cuda: no CUDA device visible");
  const auto b = backend_with_precision<backends::cuda>(a);
  using backends::cuda_detail::check;
  const int device = b.ctx().device();
  cudaMemPool_t pool = nullptr;
  check(cudaDeviceGetDefaultMemPool(&pool, device), "model_bench: cudaDeviceGetDefaultMemPool");
  device_hooks hooks;
  hooks.synchronize = [&] { b.ctx().synchronize("model_bench: synchronize"); };
  hooks.start_peak = [&] {
    std::uint64_t zero = 0;  // setting a high-water mark to 0 resets it to the current value
    check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero), "model_bench: reset UsedMemHigh");
    check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReservedMemHigh, &zero), "model_bench: reset ReservedMemHigh");
  };
  std::uint64_t used_at_start = 0;
  const auto start = hooks.start_peak;
  hooks.start_peak = [&, start] {
    start();
    used_at_start = pool_attribute(pool, cudaMemPoolAttrUsedMemCurrent);
  };
  hooks.memory = [&] {
    cudaDeviceProp p{};
    check(cudaGetDeviceProperties(&p, device), "model_bench: cudaGetDeviceProperties");
    std::size_t free = 0, total = 0;
    check(cudaMemGetInfo(&free, &total), "model_bench: cudaMemGetInfo");
    int driver = 0, runtime = 0;
    check(cudaDriverGetVersion(&driver), "model_bench: cudaDriverGetVersion");
    check(cudaRuntimeGetVersion(&runtime), "model_bench: cudaRuntimeGetVersion");
    return json{{"device", p.name},
                {"device_peak_bytes", pool_attribute(pool, cudaMemPoolAttrUsedMemHigh)},
                {"device_reserved_peak_bytes", pool_attribute(pool, cudaMemPoolAttrReservedMemHigh)},
                {"device_used_at_start_bytes", used_at_start},
                {"device_memory_used_bytes", total - free},
                {"device_memory_total_bytes", total},
                {"cuda_driver", driver},
                {"cuda_runtime", runtime}};
  };
  return run_any(b, a, hooks);
}

} // namespace prefopt::bench
