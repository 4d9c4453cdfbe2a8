// Transformer ops, elementwise family (core/transformer_ops.hpp): embedding, add_inplace, bias,
// GELU, SwiGLU, RoPE, on every CPU backend. Expected values: plain double loops written from the
// definitions (transformer_ops_reference.hpp); backward passes: central differences of a random
// projection Σ w·forward of those double definitions; accumulation: += outputs start from random
// values, = outputs from NaN.
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
}

TEST_CASE_TEMPLATE("embedding forward gathers rows, backward scatter-adds (ids repeat) into dtable", B,
                   PREFOPT_CPU_BACKENDS) {
  B be;
  const int C = 13, vocab = 7;
  const ivec ids{3, 0, 6, 3, 3, 1};
  const fvec table = randn(std::size_t(vocab * C), 1);
  fvec out(ids.size() * C, nan_f);
  be.embedding_forward(cspan(ids), cspan(table), C, mspan(out));
  for (std::size_t i = 0; i < ids.size(); ++i)
    for (int c = 0; c < C; ++c) CHECK(out[i * C + c] == table[std::size_t(ids[i] * C + c)]);

  const fvec dout = randn(out.size(), 2);
  fvec dtable = randn(table.size(), 3);  // += : starts from random values
  vec want = to_double(dtable);
  for (std::size_t i = 0; i < ids.size(); ++i)
    for (int c = 0; c < C; ++c) want[std::size_t(ids[i] * C + c)] += dout[i * C + c];
  be.embedding_backward(cspan(ids), cspan(dout), C, mspan(dtable));
  CHECK(max_rel(dtable, want) < 1e-6);

  const ivec bad{0, 7};
  CHECK_THROWS_WITH_AS(be.embedding_forward(cspan(bad), cspan(table), C, mspan(out)), doctest::Contains("'ids'"),
                       shape_error);
  CHECK_THROWS_AS(be.embedding_backward(cspan(bad), cspan(dout), C, mspan(dtable)), shape_error);
}

TEST_CASE_TEMPLATE("add_inplace, bias_forward (+=) and bias_backward (+=, summed over tokens)", B,
                   PREFOPT_CPU_BACKENDS) {
  B be;
  for (int T : {5, 700}) {  // 700 × 97: the threaded path
    const int N = 97;
    const fvec x = randn(std::size_t(T * N), 4), bias = randn(std::size_t(N), 5);
    fvec y = randn(x.size(), 6);
    vec want = to_double(y);
    for (std::size_t i = 0; i < x.size(); ++i) want[i] += x[i];
    be.add_inplace(cspan(x), mspan(y));
    CHECK(max_rel(y, want) < 1e-6);

    for (std::size_t i = 0; i < y.size(); ++i) want[i] = double(y[i]) + bias[i % N];
    be.bias_forward(cspan(bias), N, mspan(y));
    CHECK(max_rel(y, want) < 1e-6);

    fvec dbias = randn(std::size_t(N), 7);
    vec wantb = to_double(dbias);
    for (std::size_t i = 0; i < x.size(); ++i) wantb[i % N] += x[i];
    be.bias_backward(cspan(x), N, mspan(dbias));
    CHECK(max_rel(dbias, wantb) < 1e-6);
  }
  fvec odd(10);
  const fvec bias(3, 1.0f);
  CHECK_THROWS_WITH_AS(be.bias_forward(cspan(bias), 3, mspan(odd)), doctest::Contains("not a multiple"), shape_error);
}

TEST_CASE_TEMPLATE("gelu (tanh approximation): forward, backward (=) against differences", B, PREFOPT_CPU_BACKENDS) {
  B be;
  for (std::size_t n : {std::size_t(301), std::size_t(70001)}) {
    fvec x = randn(n, 8, 3.0f);
    x[0] = 0.0f, x[1] = 12.0f, x[2] = -12.0f, x[3] = 1e-4f;
    fvec out(n, nan_f);
    be.gelu_forward(cspan(x), mspan(out));
    vec want(n);
    for (std::size_t i = 0; i < n; ++i) want[i] = gelu(x[i]);
    CHECK(max_rel(out, want) < 2e-6);

    const fvec dout = randn(n, 9);
    fvec dx(n, nan_f);
    be.gelu_backward(cspan(x), cspan(dout), mspan(dx));
    vec num(n);  // elementwise: d/dx_i Σ dout·gelu(x) = dout_i·gelu'(x_i), by central differences
    for (std::size_t i = 0; i < n; ++i) num[i] = dout[i] * (gelu(x[i] + 1e-5) - gelu(x[i] - 1e-5)) / 2e-5;
    CHECK(max_rel(dx, num) < 1e-5);
  }
}

TEST_CASE_TEMPLATE("swiglu: forward, backward (=, =) against differences", B, PREFOPT_CPU_BACKENDS) {
  B be;
  for (std::size_t n : {std::size_t(257), std::size_t(50001)}) {
    fvec g = randn(n, 10, 3.0f);
    g[0] = -90.0f, g[1] = 90.0f, g[2] = 0.0f;
    const fvec u = randn(n, 11), dout = randn(n, 12);
    fvec out(n, nan_f), dg(n, nan_f), du(n, nan_f);
    be.swiglu_forward(cspan(g), cspan(u), mspan(out));
    vec want(n), ng(n), nu(n);
    for (std::size_t i = 0; i < n; ++i) {
      want[i] = silu(g[i]) * u[i];
      ng[i] = dout[i] * u[i] * (silu(g[i] + 1e-5) - silu(g[i] - 1e-5)) / 2e-5;
      nu[i] = dout[i] * silu(g[i]);  // linear in up
    }
    CHECK(max_rel(out, want) < 2e-6);
    be.swiglu_backward(cspan(g), cspan(u), cspan(dout), mspan(dg), mspan(du));
    CHECK(max_rel(dg, ng) < 1e-5);
    CHECK(max_rel(du, nu) < 1e-6);
  }
}

TEST_CASE_TEMPLATE("rope: rotate_half convention, float angles up to position 4000, backward = transpose", B,
                   PREFOPT_CPU_BACKENDS) {
  B be;
  struct config {
    int heads, head_dim;
    float base;
  };
  for (const config cf : {config{3, 8, 10000.0f}, config{2, 64, 500000.0f}, config{4, 128, 10000.0f}}) {
    const ivec pos{0, 1, 5, 63, 64, 1000, 2047, 3999, 4000, 17};
    const std::size_t H = std::size_t(cf.heads), D = std::size_t(cf.head_dim), n = pos.size() * H * D;
    const fvec x0 = randn(n, 13);
    fvec x = x0;
    be.rope_forward(mspan(x), cspan(pos), cf.heads, cf.head_dim, cspan(rope_inv_freq(std::size_t(cf.head_dim), cf.base)));
    CHECK(max_rel(x, rope(to_double(x0), pos, H, D, cf.base)) < 2e-6);
    // position 0 is the identity
    for (std::size_t i = 0; i < H * D; ++i) CHECK(x[i] == x0[i]);

    // backward: the gradient of Σ w·rope(x) is rope_backward(w); rope is linear, so central
    // differences of the double definition are exact up to rounding
    const fvec w = randn(n, 14);
    fvec dx = w;
    be.rope_backward(mspan(dx), cspan(pos), cf.heads, cf.head_dim, cspan(rope_inv_freq(std::size_t(cf.head_dim), cf.base)));
    if (n <= 1000) {
      const vec num = numeric_gradient(
          [&](const vec& xv) { return dot(to_double(w), rope(xv, pos, H, D, cf.base)); }, to_double(x0), 1e-3);
      CHECK(max_rel(dx, num) < 1e-5);
    }
    // the rotation is orthogonal: backward undoes forward
    be.rope_backward(mspan(x), cspan(pos), cf.heads, cf.head_dim, cspan(rope_inv_freq(std::size_t(cf.head_dim), cf.base)));
    CHECK(max_rel(x, x0) < 1e-5);
  }
  fvec x(10 * 6);
  const ivec pos(10, 1);
  CHECK_THROWS_WITH_AS(be.rope_forward(mspan(x), cspan(pos), 2, 3, cspan(std::vector<float>(2, 1.0f))), doctest::Contains("even"), shape_error);
}
