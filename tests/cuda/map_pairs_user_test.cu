// A loss the kernel library does not instantiate (a composite: MPO's mixture of three losses)
// mapped on the device through backends::cuda::map_pairs, instantiated here as a user does in
// their own .cu file (prefopt/backends/cuda/map_pairs.cuh). Exit code 77 without a GPU.
#include <cmath>
#include <cstdio>
#include <vector>

#include "prefopt/backends/cuda.hpp"
#include "prefopt/backends/cuda/map_pairs.cuh"
#include "prefopt/losses.hpp"

using namespace prefopt;
using loss_type = decltype(0.8 * losses::sigmoid{} + 0.2 * losses::bco_pair{} + 1.0 * losses::sft{});
template cudaError_t prefopt::backends::cuda_detail::launch_map_pairs(const loss_type&, const pair_view<double>&,
                                                                      cudaStream_t);

int main() {
  if (!backends::cuda::device_available()) {
    std::printf("no CUDA device: skipped\n");
    return 77;
  }
  const loss_type loss = 0.8 * losses::sigmoid{} + 0.2 * losses::bco_pair{} + 1.0 * losses::sft{};
  pair_batch<double> b{.policy_chosen = {-3, -5, -2.5, -40}, .policy_rejected = {-4, -4.5, -7, -2},
                       .reference_chosen = {-3.2, -5.5, -2, -30}, .reference_rejected = {-3.9, -4, -6, -3},
                       .chosen_tokens = {3, 5, 2, 9}, .rejected_tokens = {4, 4, 7, 1}};
  const loss_result<double> want = evaluate(loss, b);
  const std::size_t n = b.size();
  backends::cuda be;
  std::vector<double> cols;
  for (const auto* c : {&b.policy_chosen, &b.policy_rejected, &b.reference_chosen, &b.reference_rejected})
    cols.insert(cols.end(), c->begin(), c->end());
  std::vector<int> tokens(b.chosen_tokens.begin(), b.chosen_tokens.end());
  tokens.insert(tokens.end(), b.rejected_tokens.begin(), b.rejected_tokens.end());
  auto d = be.allocate<double>(cols.size()), o = be.allocate<double>(3 * n);
  auto t = be.allocate<int>(tokens.size());
  be.upload(std::span<const double>(cols), d.span());
  be.upload(std::span<const int>(tokens), t.span());
  pair_view<double> v;
  v.n = n;
  v.pc = d.data(), v.pr = d.data() + n, v.rc = d.data() + 2 * n, v.rr = d.data() + 3 * n;
  v.nc = t.data(), v.nr = t.data() + n;
  v.batch = context_of(b);
  v.per_pair = o.data(), v.d_chosen = o.data() + n, v.d_rejected = o.data() + 2 * n;
  be.map_pairs(loss, v);
  std::vector<double> got(3 * n);
  be.download(o.span(), std::span<double>(got));
  int bad = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double e[3] = {want.per_pair[i], want.d_policy_chosen[i] * double(n), want.d_policy_rejected[i] * double(n)};
    for (std::size_t k = 0; k < 3; ++k)
      if (std::abs(got[k * n + i] - e[k]) > 1e-12 * (1.0 + std::abs(e[k]))) {
        std::printf("pair %zu output %zu: device %.17g host %.17g\n", i, k, got[k * n + i], e[k]);
        ++bad;
      }
  }
  std::printf("%s: a user-instantiated mixture loss on the device\n", bad ? "FAILED" : "ok");
  return bad ? 1 : 0;
}
