// prefopt/backends/cuda/map_pairs.cuh — the elementwise-loss kernel of backends::cuda::map_pairs.
//
// The backend (g++-compiled) calls cuda_detail::launch_map_pairs<L, T>; the kernel library
// instantiates it for every shipped elementwise loss (backends/cuda/src/losses.cu). A loss of your
// own: include this header in one of your .cu files and instantiate it there, e.g.
//   template cudaError_t prefopt::backends::cuda_detail::launch_map_pairs(const my_loss&,
//       const prefopt::pair_view<float>&, cudaStream_t);
// The kernel is one thread per pair over the loss's PREFOPT_HD pair()/scores() code.
#pragma once

#include <cuda_runtime.h>

#include "prefopt/backends/cuda/map_pairs.hpp"
#include "prefopt/losses/concepts.hpp"

namespace prefopt::backends::cuda_detail {

template <class L, class T> __global__ void map_pairs_kernel(L loss, pair_view<T> v) {
  const std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= v.n) return;
  const pair_output<T> o = losses::detail::pair_of(loss, v.input(i));
  v.per_pair[i] = o.value;
  v.d_chosen[i] = o.d_chosen;
  v.d_rejected[i] = o.d_rejected;
}

template <class L, class T> cudaError_t launch_map_pairs(const L& loss, const pair_view<T>& v, cudaStream_t s) {
  if (v.n == 0) return cudaGetLastError();
  constexpr unsigned threads = 128;
  map_pairs_kernel<L, T><<<unsigned((v.n + threads - 1) / threads), threads, 0, s>>>(loss, v);
  return cudaGetLastError();
}

} // namespace prefopt::backends::cuda_detail
