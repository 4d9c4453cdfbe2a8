// The smallest program a user writes: one DPO loss evaluation and one backend op.
#include <cstdio>
#include <prefopt/backends/eigen.hpp>
#include <prefopt/losses.hpp>

int main() {
  prefopt::pair_batch<double> b{.policy_chosen = {-1.0}, .policy_rejected = {-2.0},
                                .reference_chosen = {-1.5}, .reference_rejected = {-1.5}};
  const auto r = prefopt::evaluate(prefopt::losses::sigmoid{.beta = 0.1}, b);
  prefopt::backends::eigen be;
  auto buf = be.allocate<float>(3);
  be.fill(buf.span(), 2.0f);
  std::printf("loss %.6f, sum of squares %.1f\n", r.loss, be.sum_squares(buf.span()));
  return r.loss > 0.0 && be.sum_squares(buf.span()) == 12.0 ? 0 : 1;
}
