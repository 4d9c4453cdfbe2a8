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
  fvec lse, logp, log_sum_sq, entropy, mean_logit, top1;
  explicit stats_out(std::size_t rows, bool all = true)
      : lse(rows, nan_f), logp(rows, nan_f), log_sum_sq(all ? rows : 0, nan_f), entropy(all ? rows : 0, nan_f),
        mean_logit(all ? rows : 0, nan_f), top1(all ? rows : 0, nan_f) {}
  lm_head_stats spans() {
    return {mspan(lse), mspan(logp), mspan(log_sum_sq), mspan(entropy), mspan(mean_logit), mspan(top1)};
  }
};
} // namespace

TEST_CASE_TEMPLATE("lm_head_stats: lse, logp (0 without target), log Σp², entropy, mean logit, top-1", B,
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
    if (R > 5) {
      targets[3] = 5;                                               // peaked at the target: top-1
      z[4 * V + 2] = 90.0f, z[4 * V + 3] = 90.0f, targets[4] = 3;   // ties an earlier maximum: not top-1
      z[5 * V + 2] = 90.0f, z[5 * V + 3] = 90.0f, targets[5] = 2;   // the first of two maxima: top-1
    }
    stats_out out(R);
    be.lm_head_stats(cspan(z), cspan(targets), sz.rows, sz.V, out.spans());
    const lm_stats want = lm_head(to_double(z), targets, R, V);
    CHECK(max_rel(out.lse, want.lse) < 1e-6);
    CHECK(max_rel(out.logp, want.logp) < 1e-6);
    CHECK(out.logp[0] == 0.0f);
    CHECK(max_rel(out.log_sum_sq, want.log_sum_sq) < 1e-6);
    CHECK(max_rel(out.entropy, want.entropy) < 1e-6);
    CHECK(max_rel(out.mean_logit, want.mean_logit) < 1e-6);
    CHECK(to_double(out.top1) == want.top1);
    CHECK(out.top1[0] == 0.0f);
    if (R > 5) CHECK(fvec(out.top1.begin() + 3, out.top1.begin() + 6) == fvec{1.0f, 0.0f, 1.0f});

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

TEST_CASE_TEMPLATE("lm_head with −∞ logits (a masked vocabulary): p = 0 adds nothing, every statistic is defined", B,
                   PREFOPT_CPU_BACKENDS) {
  B be;
  constexpr float ninf = -std::numeric_limits<float>::infinity();
  for (const int V : {37, 50257}) {
    CAPTURE(V);
    const int rows = 4;
    const std::size_t R = rows, n = std::size_t(V);
    fvec z = randn(R * n, 90, 3.0f);
    const fvec dlogp = randn(R, 91);
    for (std::size_t j = 0; j < n; j += 3) z[j] = ninf;                   // row 0: a third −∞
    for (std::size_t j = 0; j < n; ++j) z[n + j] = j == 5 || j == n - 2 ? 1.0f : ninf;  // row 1: two finite logits
    for (std::size_t j = 0; j < n * 3 / 4; ++j) z[2 * n + j] = ninf;      // row 2: −∞ first, then the finite ones
    z[3 * n + 7] = z[3 * n + 30] = std::numeric_limits<float>::lowest();  // row 3: masks written as −FLT_MAX, no −∞
    const ivec targets{1, 5, std::int32_t(n - 1), 2};  // row 0's target 0 would be −∞: see below
    stats_out out(R);
    be.lm_head_stats(cspan(z), cspan(targets), rows, V, out.spans());
    fvec dz(R * n, nan_f);
    be.lm_head_backward(cspan(z), cspan(targets), cspan(out.lse), cspan(dlogp), rows, V, mspan(dz));
    for (std::size_t r = 0; r < R; ++r) {
      CAPTURE(r);
      // The definition over the row's finite logits only (a −∞ logit has p = 0; so has −FLT_MAX).
      vec finite;
      std::int32_t target = -1;
      for (std::size_t j = 0; j < n; ++j)
        if (z[r * n + j] != ninf) {
          if (std::int32_t(j) == targets[r]) target = std::int32_t(finite.size());
          finite.push_back(double(z[r * n + j]));
        }
      REQUIRE(target >= 0);
      const lm_stats want = lm_head(finite, ivec{target}, 1, finite.size());
      CHECK(out.lse[r] == doctest::Approx(want.lse[0]).epsilon(1e-6));
      CHECK(out.logp[r] == doctest::Approx(want.logp[0]).epsilon(1e-6));
      CHECK(out.log_sum_sq[r] == doctest::Approx(want.log_sum_sq[0]).epsilon(1e-6).scale(1.0));
      CHECK(std::isfinite(out.entropy[r]));
      CHECK(out.entropy[r] == doctest::Approx(want.entropy[0]).epsilon(1e-6).scale(1.0));
      if (r < 3) CHECK(out.mean_logit[r] == ninf);  // the mean of logits that include −∞
      else CHECK(out.mean_logit[r] == doctest::Approx(want.mean_logit[0]).epsilon(1e-6));
      // dlogits: exactly 0 where p = 0, dlogp·(onehot − p) elsewhere.
      for (std::size_t j = 0; j < n; ++j) {
        const float zj = z[r * n + j];
        const double p = zj == ninf ? 0.0 : std::exp(double(zj) - want.lse[0]);
        const double expect = double(dlogp[r]) * ((std::int32_t(j) == targets[r] ? 1.0 : 0.0) - p);
        if (zj == ninf) {
          if (dz[r * n + j] != 0.0f) FAIL_CHECK("dlogits at a −∞ logit is " << dz[r * n + j] << ", j = " << j);
        } else if (!(std::abs(double(dz[r * n + j]) - expect) <= 1e-6 * (1.0 + std::abs(expect)))) {
          FAIL_CHECK("dlogits[" << j << "] is " << dz[r * n + j] << ", expected " << expect);
        }
      }
    }
    // A target at a −∞ logit: probability 0, log-probability −∞.
    ivec at_inf = targets;
    at_inf[0] = 0;
    be.lm_head_stats(cspan(z), cspan(at_inf), rows, V, out.spans());
    CHECK(out.logp[0] == ninf);
    CHECK(std::isfinite(out.entropy[0]));
  }
}
