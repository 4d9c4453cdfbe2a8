// tools/prefopt/backend_choice.hpp — which backend a command runs on: eigen (the CPU) or cuda
// (one NVIDIA GPU, where this program is built with the CUDA backend and a device is visible),
// with one error for each missing part, the same for `prefopt train/eval` (config field
// 'backend', as `prefopt reward train` and `prefopt iterate` read it too) and the --backend flag of
// `prefopt logps`, `prefopt generate`, `prefopt reward score` and `prefopt demo`.
#pragma once

#include <string>

#include "prefopt/backends/eigen.hpp"
#include "prefopt/core/bf16.hpp"
#include "prefopt/core/error.hpp"
#ifdef PREFOPT_CLI_CUDA
#include "prefopt/backends/cuda.hpp"
#endif

namespace prefopt::cli {

#ifdef PREFOPT_CLI_CUDA
inline void require_cuda_device(const std::string& field) {
  if (!backends::cuda::device_available())
    throw config_error(field, "cuda: no CUDA device is visible to this process (check nvidia-smi and CUDA_VISIBLE_DEVICES)");
}
#else
[[noreturn]] inline void no_cuda_backend(const std::string& field) {
  throw config_error(field, "cuda: this prefopt was built without the CUDA backend (configure with "
                            "-DPREFOPT_ENABLE_CUDA=ON where the CUDA toolkit is installed)");
}
#endif

// Throws for a `name` no command can run on (unknown, built without CUDA, no GPU visible): on_backend's
// check, which a command may also make before it reads its data or writes anything.
inline void check_backend(const std::string& name, const std::string& field) {
  if (name == "eigen") return;
  if (name == "cuda") {
#ifdef PREFOPT_CLI_CUDA
    require_cuda_device(field);
    return;
#else
    no_cuda_backend(field);
#endif
  }
  throw config_error(field, "'" + name + "' is not one of eigen (CPU), cuda (one NVIDIA GPU)");
}

// fn(backend) on the backend named `name`, its matrix products at precision `p`; `field` names
// the flag in errors. fn's cuda instantiation belongs in a translation unit of its own
// (logps_cuda.cpp, demo_cuda.cpp, loop_cuda.cpp): the caller's declares it extern.
template <class Fn> auto on_backend(const std::string& name, precision p, const std::string& field, Fn&& fn) {
  check_backend(name, field);  // eigen, or cuda where it is built and a GPU is visible
#ifdef PREFOPT_CLI_CUDA
  if (name == "cuda") {
    backends::cuda be;
    be.matmul_precision = p;
    return fn(be);
  }
#endif
  backends::eigen be;
  be.matmul_precision = p;
  return fn(be);
}

} // namespace prefopt::cli
