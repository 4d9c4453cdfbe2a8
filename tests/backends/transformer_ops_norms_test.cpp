// Transformer ops, normalization family (core/transformer_ops.hpp): LayerNorm and RMSNorm on every
// CPU backend. Expected values: double loops written from the definitions
// (transformer_ops_reference.hpp); backward: central differences of Σ w·forward of those double
// definitions with respect to x, weight and bias; every gradient output is += (starts random).
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
// a = a0 + g (the += contract), as one vector to compare against
vec accumulated(const fvec& a0, const vec& g) { return plus(to_double(a0), g); }
} // namespace

TEST_CASE_TEMPLATE("layernorm: forward (biased variance, eps inside the sqrt), backward += against differences", B,
                   PREFOPT_CPU_BACKENDS) {
  B be;
  struct size {
    int T, C;
  };
  for (const size sz : {size{4, 11}, size{300, 130}}) {  // 300 × 130: threaded rows, column blocks with a remainder
    const std::size_t T = std::size_t(sz.T), C = std::size_t(sz.C);
    const double eps = 1e-5;
    const fvec x = randn(T * C, 20, 2.0f, 0.7f), w = randn(C, 21, 0.3f, 1.0f), b = randn(C, 22, 0.2f);
    fvec out(T * C, nan_f), mean(T, nan_f), rstd(T, nan_f);
    be.layernorm_forward(cspan(x), cspan(w), cspan(b), sz.C, float(eps), mspan(out), mspan(mean), mspan(rstd));
    CHECK(max_rel(out, layernorm(to_double(x), to_double(w), to_double(b), C, eps)) < 2e-6);
    vec want_mean(T), want_rstd(T);
    for (std::size_t t = 0; t < T; ++t) {
      double mu = 0.0, var = 0.0;
      for (std::size_t c = 0; c < C; ++c) mu += x[t * C + c];
      mu /= double(C);
      for (std::size_t c = 0; c < C; ++c) var += (x[t * C + c] - mu) * (x[t * C + c] - mu);
      want_mean[t] = mu;
      want_rstd[t] = 1.0 / std::sqrt(var / double(C) + eps);
    }
    CHECK(max_rel(mean, want_mean) < 1e-6);
    CHECK(max_rel(rstd, want_rstd) < 1e-6);

    const fvec proj = randn(T * C, 23);
    const fvec dx0 = randn(T * C, 24), dw0 = randn(C, 25), db0 = randn(C, 26);
    fvec dx = dx0, dw = dw0, db = db0;
    be.layernorm_backward(cspan(proj), cspan(x), cspan(w), cspan(mean), cspan(rstd), sz.C, mspan(dx), mspan(dw),
                          mspan(db));
    const vec xd = to_double(x), wd = to_double(w), bd = to_double(b), pd = to_double(proj);
    if (T * C <= 1000) {
      const vec gx = numeric_gradient([&](const vec& v) { return dot(pd, layernorm(v, wd, bd, C, eps)); }, xd);
      CHECK(max_rel(dx, accumulated(dx0, gx)) < 2e-5);
    } else {  // large case: checked against the small case's formula through a few coordinates
      vec xs = xd;
      for (std::size_t i : {std::size_t(0), T * C / 2 + 7, T * C - 1}) {
        const auto f = [&](double v) {
          xs[i] = v;
          const double r = dot(pd, layernorm(xs, wd, bd, C, eps));
          xs[i] = xd[i];
          return r;
        };
        const double g = (f(xd[i] + 1e-5) - f(xd[i] - 1e-5)) / 2e-5;
        CHECK(std::abs(dx[i] - (dx0[i] + g)) < 2e-5 * (1.0 + std::abs(dx0[i] + g)));
      }
    }
    const vec gw = numeric_gradient([&](const vec& v) { return dot(pd, layernorm(xd, v, bd, C, eps)); }, wd);
    const vec gb = numeric_gradient([&](const vec& v) { return dot(pd, layernorm(xd, wd, v, C, eps)); }, bd);
    CHECK(max_rel(dw, accumulated(dw0, gw)) < 2e-5);
    CHECK(max_rel(db, accumulated(db0, gb)) < 2e-5);
  }
}

TEST_CASE_TEMPLATE("rmsnorm (LlamaRMSNorm): forward, backward += against differences", B, PREFOPT_CPU_BACKENDS) {
  B be;
  struct size {
    int T, C;
  };
  for (const size sz : {size{5, 16}, size{260, 129}}) {
    const std::size_t T = std::size_t(sz.T), C = std::size_t(sz.C);
    const double eps = 1e-6;
    const fvec x = randn(T * C, 30, 1.5f, 0.3f), w = randn(C, 31, 0.3f, 1.0f);
    fvec out(T * C, nan_f), rstd(T, nan_f);
    be.rmsnorm_forward(cspan(x), cspan(w), sz.C, float(eps), mspan(out), mspan(rstd));
    CHECK(max_rel(out, rmsnorm(to_double(x), to_double(w), C, eps)) < 2e-6);
    vec want_rstd(T);
    for (std::size_t t = 0; t < T; ++t) {
      double ms = 0.0;
      for (std::size_t c = 0; c < C; ++c) ms += double(x[t * C + c]) * x[t * C + c];
      want_rstd[t] = 1.0 / std::sqrt(ms / double(C) + eps);
    }
    CHECK(max_rel(rstd, want_rstd) < 1e-6);

    const fvec proj = randn(T * C, 32), dx0 = randn(T * C, 33), dw0 = randn(C, 34);
    fvec dx = dx0, dw = dw0;
    be.rmsnorm_backward(cspan(proj), cspan(x), cspan(w), cspan(rstd), sz.C, mspan(dx), mspan(dw));
    const vec xd = to_double(x), wd = to_double(w), pd = to_double(proj);
    if (T * C <= 1000) {
      const vec gx = numeric_gradient([&](const vec& v) { return dot(pd, rmsnorm(v, wd, C, eps)); }, xd);
      CHECK(max_rel(dx, accumulated(dx0, gx)) < 2e-5);
    }
    const vec gw = numeric_gradient([&](const vec& v) { return dot(pd, rmsnorm(xd, v, C, eps)); }, wd);
    CHECK(max_rel(dw, accumulated(dw0, gw)) < 2e-5);
  }
}

TEST_CASE_TEMPLATE("norms reject inconsistent sizes, naming the argument", B, PREFOPT_CPU_BACKENDS) {
  B be;
  fvec x(24), w(8), b(8), out(24), mean(3), rstd(2);
  CHECK_THROWS_WITH_AS(be.layernorm_forward(cspan(x), cspan(w), cspan(b), 8, 1e-5f, mspan(out), mspan(mean), mspan(rstd)),
                       doctest::Contains("'rstd'"), shape_error);
  CHECK_THROWS_WITH_AS(be.rmsnorm_forward(cspan(x), cspan(w), 7, 1e-5f, mspan(out), mspan(mean)),
                       doctest::Contains("not a multiple"), shape_error);
  CHECK_THROWS_AS(be.rmsnorm_forward(cspan(x), cspan(w), 0, 1e-5f, mspan(out), mspan(mean)), shape_error);
}
