// backends/cuda/src/losses.cu — map_pairs kernels for every shipped single-type elementwise loss,
// float and double. Composite losses (mixtures, constraints, f-divergence wrappers) are class
// templates over user choices: instantiate them where they are named (see map_pairs.cuh).
#include "prefopt/backends/cuda/map_pairs.cuh"
#include "prefopt/losses.hpp"

namespace prefopt::backends::cuda_detail {

#define PREFOPT_CUDA_LOSS(L)                                                                     \
  template cudaError_t launch_map_pairs<losses::L, float>(const losses::L&, const pair_view<float>&, cudaStream_t);  \
  template cudaError_t launch_map_pairs<losses::L, double>(const losses::L&, const pair_view<double>&, cudaStream_t);

PREFOPT_CUDA_LOSS(sigmoid)
PREFOPT_CUDA_LOSS(hinge)
PREFOPT_CUDA_LOSS(ipo)
PREFOPT_CUDA_LOSS(exo_pair)
PREFOPT_CUDA_LOSS(nca_pair)
PREFOPT_CUDA_LOSS(robust)
PREFOPT_CUDA_LOSS(bco_pair)
PREFOPT_CUDA_LOSS(sppo_hard)
PREFOPT_CUDA_LOSS(apo_zero)
PREFOPT_CUDA_LOSS(apo_down)
PREFOPT_CUDA_LOSS(discopop)
PREFOPT_CUDA_LOSS(sigmoid_norm)
PREFOPT_CUDA_LOSS(sft)
PREFOPT_CUDA_LOSS(probabilistic)
PREFOPT_CUDA_LOSS(simpo)
PREFOPT_CUDA_LOSS(cpo)
PREFOPT_CUDA_LOSS(orpo)
#undef PREFOPT_CUDA_LOSS

} // namespace prefopt::backends::cuda_detail
