// prefopt/backends/cuda/map_pairs.hpp — the declaration the backend calls; the definition is in
// map_pairs.cuh (nvcc), instantiated for the shipped losses in the kernel library.
#pragma once

#include <cuda_runtime_api.h>

#include "prefopt/core/backend.hpp"

namespace prefopt::backends::cuda_detail {
template <class L, class T> cudaError_t launch_map_pairs(const L& loss, const pair_view<T>& v, cudaStream_t s);
} // namespace prefopt::backends::cuda_detail
