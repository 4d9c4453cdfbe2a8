// The loss math is __host__ __device__ code: every elementwise loss and the optimizer update
// rules compile for the GPU and give the host's numbers there. Built only when the CUDA toolkit is
// found (PREFOPT_ENABLE_CUDA); the test skips itself (exit code 77) on a machine without a GPU.
#include <cstdio>
#include <cuda_runtime.h>

#include "prefopt/losses.hpp"
#include "prefopt/optim/update_rules.hpp"

using namespace prefopt;

template <class L> __global__ void map_loss(L loss, pair_view<double> v) {
  const std::size_t i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= v.n) return;
  const pair_output<double> o = losses::detail::pair_of(loss, v.input(i));
  v.per_pair[i] = o.value;
  v.d_chosen[i] = o.d_chosen;
  v.d_rejected[i] = o.d_rejected;
}

__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, std::size_t n, adamw_args a) {
  const std::size_t i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) optim::rules::adamw(p[i], g[i], m[i], v[i], a);
}

#define CHECK_CUDA(x)                                                                    \
  do {                                                                                   \
    const cudaError_t e = (x);                                                           \
    if (e != cudaSuccess) {                                                              \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e), __FILE__, __LINE__); \
      return 1;                                                                          \
    }                                                                                    \
  } while (0)

template <class L> int check(const L& loss, const char* name) {
  pair_batch<double> b{.policy_chosen = {-3, -5, -2.5, -40}, .policy_rejected = {-4, -4.5, -7, -2},
                       .reference_chosen = {-3.2, -5.5, -2, -30}, .reference_rejected = {-3.9, -4, -6, -3},
                       .chosen_tokens = {3, 5, 2, 9}, .rejected_tokens = {4, 4, 7, 1}};
  const loss_result<double> want = evaluate(loss, b);
  const std::size_t n = b.size();
  double* d = nullptr;
  int* t = nullptr;
  CHECK_CUDA(cudaMalloc(&d, sizeof(double) * 7 * n));
  CHECK_CUDA(cudaMalloc(&t, sizeof(int) * 2 * n));
  CHECK_CUDA(cudaMemcpy(d, b.policy_chosen.data(), sizeof(double) * n, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(d + n, b.policy_rejected.data(), sizeof(double) * n, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(d + 2 * n, b.reference_chosen.data(), sizeof(double) * n, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(d + 3 * n, b.reference_rejected.data(), sizeof(double) * n, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(t, b.chosen_tokens.data(), sizeof(int) * n, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(t + n, b.rejected_tokens.data(), sizeof(int) * n, cudaMemcpyHostToDevice));
  pair_view<double> v;
  v.n = n;
  v.pc = d, v.pr = d + n, v.rc = d + 2 * n, v.rr = d + 3 * n, v.nc = t, v.nr = t + n;
  v.batch = context_of(b);
  v.per_pair = d + 4 * n, v.d_chosen = d + 5 * n, v.d_rejected = d + 6 * n;
  map_loss<<<1, 32>>>(loss, v);
  CHECK_CUDA(cudaGetLastError());
  std::vector<double> got(3 * n);
  CHECK_CUDA(cudaMemcpy(got.data(), d + 4 * n, sizeof(double) * 3 * n, cudaMemcpyDeviceToHost));
  cudaFree(d);
  cudaFree(t);
  for (std::size_t i = 0; i < n; ++i) {
    const double e[3] = {want.per_pair[i], want.d_policy_chosen[i] * double(n), want.d_policy_rejected[i] * double(n)};
    for (int k = 0; k < 3; ++k)
      if (std::abs(got[k * n + i] - e[k]) > 1e-12 * (1.0 + std::abs(e[k]))) {
        std::printf("%s: pair %zu output %d: device %.17g host %.17g\n", name, i, k, got[k * n + i], e[k]);
        return 1;
      }
  }
  return 0;
}

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: skipped\n");
    return 77;
  }
  using namespace prefopt::losses;
  int bad = 0;
  bad += check(sigmoid{}, "sigmoid") + check(hinge{}, "hinge") + check(ipo{}, "ipo") + check(exo_pair{}, "exo_pair");
  bad += check(nca_pair{}, "nca_pair") + check(robust{.label_smoothing = 0.1}, "robust") + check(bco_pair{}, "bco_pair");
  bad += check(sppo_hard{}, "sppo_hard") + check(apo_zero{}, "apo_zero") + check(apo_down{}, "apo_down");
  bad += check(discopop{}, "discopop") + check(sigmoid_norm{}, "sigmoid_norm") + check(sft{}, "sft");
  bad += check(probabilistic{.label_smoothing = 0.2}, "probabilistic") + check(simpo{}, "simpo") + check(cpo{}, "cpo");
  bad += check(orpo{}, "orpo") + check(with_divergence(sigmoid{}, divergence::js), "sigmoid+js");
  bad += check(with_divergence(ipo{}, divergence::alpha, 0.3), "ipo+alpha");
  bad += check(0.8 * sigmoid{} + 0.2 * bco_pair{} + 1.0 * sft{}, "mpo");
  bad += check(constrain(sigmoid{}, chosen_floor{.lambda = 5}), "dpop");
  std::printf("%s: %d elementwise losses checked on the device\n", bad ? "FAILED" : "ok", 21);
  return bad ? 1 : 0;
}
