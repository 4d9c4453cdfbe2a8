// Transformer ops, LM head (core/transformer_ops.hpp): lm_head_stats and lm_head_backward on every
// CPU backend. Expected values: double loops over each row of logits written from the definitions
// (transformer_ops_reference.hpp); dlogits: central differences of Σ_r dlogp_r·logp_r of that
// definition. Rows as wide as GPT-2's vocabulary (50257) with the maximum moving late in the row
// check the running-max rescaling.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "backends/transformer_ops_reference.hpp"
#include "support/backends.hpp"

using namespace prefopt;
using namespace prefopt::test::ref;
using test::cspan;
using test::mspan;

namespace {
constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();

struct stats_out {
  fvec lse, logp, log_sum_sq, entropy, mean_logit;
  explicit stats_out(std::size_t rows, bool all = true)
      : lse(rows, nan_f), logp(rows, nan_f), log_sum_sq(all ? rows : 0, nan_f), entropy(all ? rows : 0, nan_f),
        mean_logit(all ? rows : 0, nan_f) {}
  lm_head_stats spans() { return {mspan(lse), mspan(logp), mspan(log_sum_sq), mspan(entropy), mspan(mean_logit)}; }
};
} // namespace

TEST_CASE_TEMPLATE("lm_head_stats: lse, logp (0 without target), log Σp², entropy, mean logit", B,
                   PREFOPT_CPU_BACKENDS) {
  B be;
  struct size {
    int rows, V;
  };
  for (const size sz : {size{6, 37}, size{3, 50257}, size{70, 1000}}) {
    CAPTURE(sz.V);
    const std::size_t R = std::size_t(sz.rows), V = std::size_t(sz.V);
    fvec z = randn(R * V, 70, 4.0f);
    for (std::size_t j = 0; j < V; ++j) z[V + j] += 1000.0f;                          // row 1: large offset
    for (std::size_t j = 0; j < V; ++j) z[2 * V + j] += 30.0f * float(j) / float(V);  // row 2: max grows along the row
    if (R > 3) z[3 * V + 5] = 60.0f;                                                  // row 3: peaked
    ivec targets(R);
    for (std::size_t r = 0; r < R; ++r) targets[r] = std::int32_t((r * 7919) % V);
    targets[0] = -1;
    targets[2] = std::int32_t(V - 1);
    stats_out out(R);
    be.lm_head_stats(cspan(z), cspan(targets), sz.rows, sz.V, out.spans());
    const lm_stats want = lm_head(to_double(z), targets, R, V);
    CHECK(max_rel(out.lse, want.lse) < 1e-6);
    CHECK(max_rel(out.logp, want.logp) < 1e-6);
    CHECK(out.logp[0] == 0.0f);
    CHECK(max_rel(out.log_sum_sq, want.log_sum_sq) < 1e-6);
    CHECK(max_rel(out.entropy, want.entropy) < 1e-6);
    CHECK(max_rel(out.mean_logit, want.mean_logit) < 1e-6);

    stats_out only(R, false);  // optional statistics skipped when their spans are empty
    be.lm_head_stats(cspan(z), cspan(targets), sz.rows, sz.V, only.spans());
    CHECK(only.lse == out.lse);
    CHECK(only.logp == out.logp);
  }
}

TEST_CASE_TEMPLATE("lm_head_backward (=) matches differences of Σ dlogp·logp; rows without target are zero", B,
                   PREFOPT_CPU_BACKENDS) {
  B be;
  const int rows = 5, V = 41;
  const std::size_t R = rows, n = V;
  const fvec z = randn(R * n, 80, 3.0f), dlogp = randn(R, 81);
  const ivec targets{4, -1, 40, 0, 17};
  stats_out st(R);
  be.lm_head_stats(cspan(z), cspan(targets), rows, V, st.spans());
  fvec dz(R * n, nan_f);
  be.lm_head_backward(cspan(z), cspan(targets), cspan(st.lse), cspan(dlogp), rows, V, mspan(dz));
  const vec num = numeric_gradient(
      [&](const vec& x) { return dot(to_double(dlogp), lm_head(x, targets, R, n).logp); }, to_double(z));
  CHECK(max_rel(dz, num) < 1e-6);
  for (std::size_t j = 0; j < n; ++j) CHECK(dz[n + j] == 0.0f);
  double row_sum = 0.0;  // Σ_v dlogits = dlogp·(1 − 1) = 0
  for (std::size_t j = 0; j < n; ++j) row_sum += dz[j];
  CHECK(std::abs(row_sum) < 1e-6);

  const ivec bad{4, -1, 41, 0, 17};
  CHECK_THROWS_WITH_AS(be.lm_head_stats(cspan(z), cspan(bad), rows, V, st.spans()), doctest::Contains("'targets'"),
                       shape_error);
  CHECK_THROWS_AS(be.lm_head_backward(cspan(z), cspan(bad), cspan(st.lse), cspan(dlogp), rows, V, mspan(dz)),
                  shape_error);
  fvec short_entropy(2);
  lm_head_stats s = st.spans();
  s.entropy = mspan(short_entropy);
  CHECK_THROWS_WITH_AS(be.lm_head_stats(cspan(z), cspan(targets), rows, V, s), doctest::Contains("stats.entropy"),
                       shape_error);
}
