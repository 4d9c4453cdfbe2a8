// Transformer ops, attention (core/transformer_ops.hpp) on every CPU backend: a packed batch of
// rows of different lengths with plain causal rows, prefix-shared rows (prompt 0, chosen 1,
// rejected 2), padding (−1) at the end and in the middle, MHA and GQA (Hq/Hkv = 2 and 4).
// Expected values: a double loop over visible keys written from the definition
// (transformer_ops_reference.hpp); backward: central differences of Σ w·out of that definition
// and, on rows longer than the backends' tiles, that definition's analytic gradient;
// isolation: perturbing one segment's tokens leaves the other segments' outputs bit-identical.
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

// rows: plain causal (5), prompt+chosen+rejected (9), a single token, shared prefix with padding
// at the end (12), padding in the middle (7).
attention_case packed_case(int q_heads, int kv_heads, int head_dim) {
  attention_case c;
  c.row_offsets = {0, 5, 14, 15, 27, 34};
  c.segment = {0, 0, 0, 0, 0,                                 // row 0
               0, 0, 0, 1, 1, 1, 2, 2, 2,                     // row 1: tokens 5..13
               0,                                             // row 2
               0, 0, 0, 0, 1, 1, 1, 2, 2, 2, -1, -1,          // row 3: tokens 15..26
               0, 0, 1, 1, -1, 2, 2};                         // row 4: tokens 27..33
  c.q_heads = q_heads;
  c.kv_heads = kv_heads;
  c.head_dim = head_dim;
  return c;
}

template <class B> struct attention_run {
  fvec out, lse;
  attention_run(B& be, const attention_case& c, const fvec& q, const fvec& k, const fvec& v)
      : out(c.q_size(), nan_f), lse(c.lse_size(), nan_f) {
    be.attention_forward(cspan(q), cspan(k), cspan(v), c.layout(), c.shape(), mspan(out), mspan(lse));
  }
};

// lse matches the definition: +∞ exactly where the query is padding, else within tol.
bool lse_matches(const fvec& got, const vec& want, double tol) {
  if (got.size() != want.size()) return false;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::isinf(want[i]) ? got[i] != INFINITY : !(std::abs(got[i] - want[i]) <= tol * (1.0 + std::abs(want[i]))))
      return false;
  }
  return true;
}

// Output rows of tokens [a, b) are identical in the two runs.
bool same_tokens(const fvec& x, const fvec& y, const attention_case& c, int a, int b) {
  const std::size_t w = std::size_t(c.q_heads * c.head_dim);
  for (std::size_t i = std::size_t(a) * w; i < std::size_t(b) * w; ++i)
    if (x[i] != y[i]) return false;
  return true;
}
void perturb_tokens(fvec& x, std::size_t width, int a, int b) {
  for (std::size_t i = std::size_t(a) * width; i < std::size_t(b) * width; ++i) x[i] += 0.75f;
}
} // namespace

TEST_CASE_TEMPLATE("attention forward and log-sum-exp match the definition; backward (=) matches differences", B,
                   PREFOPT_CPU_BACKENDS) {
  B be;
  struct heads {
    int q, kv, d;
  };
  for (const heads h : {heads{4, 4, 8}, heads{4, 2, 8}, heads{4, 1, 8}, heads{8, 2, 4}}) {
    CAPTURE(h.q);
    CAPTURE(h.kv);
    const attention_case c = packed_case(h.q, h.kv, h.d);
    const fvec q = randn(c.q_size(), 40), k = randn(c.kv_size(), 41), v = randn(c.kv_size(), 42);
    const attention_run<B> run(be, c, q, k, v);
    vec want_lse;
    const vec want = attention(c, to_double(q), to_double(k), to_double(v), &want_lse);
    CHECK(max_rel(run.out, want) < 1e-5);
    CHECK(lse_matches(run.lse, want_lse, 1e-5));  // every entry, +∞ for padding: the documented layout
    for (int t : {25, 26, 31})                      // padding tokens: zero output
      for (int i = 0; i < h.q * h.d; ++i) CHECK(run.out[std::size_t(t * h.q * h.d + i)] == 0.0f);

    const fvec w = randn(c.q_size(), 43);
    fvec dq(c.q_size(), nan_f), dk(c.kv_size(), nan_f), dv(c.kv_size(), nan_f);
    be.attention_backward(cspan(w), cspan(q), cspan(k), cspan(v), cspan(run.out), cspan(run.lse), c.layout(), c.shape(),
                          mspan(dq), mspan(dk), mspan(dv));
    const vec qd = to_double(q), kd = to_double(k), vd = to_double(v), wd = to_double(w);
    CHECK(max_rel(dq, numeric_gradient([&](const vec& x) { return dot(wd, attention(c, x, kd, vd)); }, qd)) < 2e-5);
    CHECK(max_rel(dk, numeric_gradient([&](const vec& x) { return dot(wd, attention(c, qd, x, vd)); }, kd)) < 2e-5);
    CHECK(max_rel(dv, numeric_gradient([&](const vec& x) { return dot(wd, attention(c, qd, kd, x)); }, vd)) < 2e-5);
  }
}

TEST_CASE_TEMPLATE("attention: chosen and rejected never see each other, padding and other rows are invisible", B,
                   PREFOPT_CPU_BACKENDS) {
  B be;
  const attention_case c = packed_case(4, 2, 8);
  const std::size_t wq = 4 * 8, wkv = 2 * 8;
  const fvec q = randn(c.q_size(), 50), k = randn(c.kv_size(), 51), v = randn(c.kv_size(), 52);
  const attention_run<B> base(be, c, q, k, v);
  auto rerun = [&](int a, int b) {  // perturb q, k, v of tokens [a, b)
    fvec q2 = q, k2 = k, v2 = v;
    perturb_tokens(q2, wq, a, b);
    perturb_tokens(k2, wkv, a, b);
    perturb_tokens(v2, wkv, a, b);
    return attention_run<B>(be, c, q2, k2, v2).out;
  };
  // row 1: prompt 5..7, chosen 8..10, rejected 11..13
  const fvec rejected_moved = rerun(11, 14);
  CHECK(same_tokens(base.out, rejected_moved, c, 0, 11));  // prompt, chosen and every earlier row
  CHECK(same_tokens(base.out, rejected_moved, c, 14, 34));
  CHECK_FALSE(same_tokens(base.out, rejected_moved, c, 11, 14));
  const fvec chosen_moved = rerun(8, 11);
  CHECK(same_tokens(base.out, chosen_moved, c, 0, 8));
  CHECK(same_tokens(base.out, chosen_moved, c, 11, 34));  // rejected unchanged
  const fvec prompt_moved = rerun(5, 8);
  CHECK_FALSE(same_tokens(base.out, prompt_moved, c, 8, 11));
  CHECK_FALSE(same_tokens(base.out, prompt_moved, c, 11, 14));
  CHECK(same_tokens(base.out, prompt_moved, c, 0, 5));
  CHECK(same_tokens(base.out, prompt_moved, c, 14, 34));
  // row 3's padding (25, 26) and row 4's padding in the middle (31) change nothing, stay zero
  const fvec pad_moved = rerun(25, 27), mid_pad_moved = rerun(31, 32);
  CHECK(same_tokens(base.out, pad_moved, c, 0, 34));
  CHECK(same_tokens(base.out, mid_pad_moved, c, 0, 34));
  // row 4: segments 0 0 1 1 −1 2 2 — chosen (29, 30) unaffected by rejected (32, 33) and vice versa
  const fvec r4_rejected = rerun(32, 34), r4_chosen = rerun(29, 31);
  CHECK(same_tokens(base.out, r4_rejected, c, 0, 32));
  CHECK(same_tokens(base.out, r4_chosen, c, 31, 34));
  // rows never see each other
  const fvec row0_moved = rerun(0, 5);
  CHECK(same_tokens(base.out, row0_moved, c, 5, 34));

  // backward: a gradient on the chosen tokens only reaches the prompt and chosen tokens
  fvec dout(c.q_size(), 0.0f);
  const fvec g = randn(3 * wq, 53);
  std::copy(g.begin(), g.end(), dout.begin() + std::ptrdiff_t(8 * wq));
  fvec dq(c.q_size(), nan_f), dk(c.kv_size(), nan_f), dv(c.kv_size(), nan_f);
  be.attention_backward(cspan(dout), cspan(q), cspan(k), cspan(v), cspan(base.out), cspan(base.lse), c.layout(),
                        c.shape(), mspan(dq), mspan(dk), mspan(dv));
  auto zero = [](const fvec& x, std::size_t width, int a, int b) {
    for (std::size_t i = std::size_t(a) * width; i < std::size_t(b) * width; ++i)
      if (x[i] != 0.0f) return false;
    return true;
  };
  CHECK(zero(dq, wq, 0, 8));
  CHECK(zero(dq, wq, 11, 34));
  CHECK(zero(dk, wkv, 11, 34));
  CHECK(zero(dv, wkv, 11, 34));
  CHECK(zero(dk, wkv, 0, 5));
  CHECK_FALSE(zero(dk, wkv, 5, 8));  // chosen queries read the prompt keys
  CHECK_FALSE(zero(dv, wkv, 8, 11));
}

TEST_CASE_TEMPLATE("attention on a larger batch (threaded path) matches the definition", B, PREFOPT_CPU_BACKENDS) {
  B be;
  attention_case c;
  c.q_heads = 8, c.kv_heads = 2, c.head_dim = 16;
  c.row_offsets = {0};
  for (int r = 0; r < 6; ++r) {
    const int L = 40 + 9 * r;
    c.row_offsets.push_back(c.row_offsets.back() + L);
    for (int i = 0; i < L; ++i) c.segment.push_back(r % 2 == 0 ? 0 : (i < L / 3 ? 0 : i < 2 * L / 3 ? 1 : 2));
  }
  const fvec q = randn(c.q_size(), 60), k = randn(c.kv_size(), 61), v = randn(c.kv_size(), 62);
  const attention_run<B> run(be, c, q, k, v);
  CHECK(max_rel(run.out, attention(c, to_double(q), to_double(k), to_double(v))) < 1e-5);
}

TEST_CASE_TEMPLATE("attention rejects inconsistent layouts and buffers", B, PREFOPT_CPU_BACKENDS) {
  B be;
  attention_case c = packed_case(4, 2, 8);
  const fvec q(c.q_size()), k(c.kv_size()), v(c.kv_size());
  fvec out(c.q_size()), lse(c.lse_size());
  auto forward = [&](const attention_case& cc, std::size_t lse_size) {
    fvec l(lse_size);
    be.attention_forward(cspan(q), cspan(k), cspan(v), cc.layout(), cc.shape(), mspan(out), mspan(l));
  };
  CHECK_NOTHROW(forward(c, c.lse_size()));
  CHECK(c.lse_size() == 34u * 4u);
  CHECK_THROWS_WITH_AS(forward(c, c.lse_size() - 1), doctest::Contains("'lse'"), shape_error);
  attention_case bad_heads = packed_case(4, 3, 8);
  CHECK_THROWS_WITH_AS(forward(bad_heads, c.lse_size()), doctest::Contains("kv_heads"), shape_error);
  fvec dq(c.q_size()), dk(c.kv_size()), dv(c.kv_size());
  CHECK_THROWS_WITH_AS(be.attention_backward(cspan(out), cspan(q), cspan(k), cspan(v), std::span<const float>(out).first(3),
                                             cspan(lse), c.layout(), c.shape(), mspan(dq), mspan(dk), mspan(dv)),
                       doctest::Contains("'out'"), shape_error);
  CHECK_THROWS_WITH_AS(be.attention_backward(cspan(out), cspan(q), cspan(k), cspan(v), cspan(out),
                                             std::span<const float>(lse).first(5), c.layout(), c.shape(), mspan(dq),
                                             mspan(dk), mspan(dv)),
                       doctest::Contains("'lse'"), shape_error);
  auto lay = c.layout();
  lay.max_row_length = 11;  // row 3 has 12 tokens
  CHECK_THROWS_WITH_AS(be.attention_forward(cspan(q), cspan(k), cspan(v), lay, c.shape(), mspan(out), mspan(lse)),
                       doctest::Contains("max_row_length"), shape_error);
  auto sh = c.shape();
  sh.tokens = 35;
  CHECK_THROWS_AS(be.attention_forward(cspan(q), cspan(k), cspan(v), c.layout(), sh, mspan(out), mspan(lse)),
                  shape_error);
}

// Rows longer than the eigen backend's tiles (128 queries × 256 keys) and the xtensor backend's
// (64 queries), with lengths no tile divides, prefix sharing and padding, GQA: forward, lse and
// the backward against the definition's analytic gradient (a central difference over every input
// of 700 tokens would take minutes).
TEST_CASE_TEMPLATE("attention over rows longer than a tile matches the definition, forward and backward", B,
                   PREFOPT_CPU_BACKENDS) {
  B be;
  attention_case c;
  c.q_heads = 4, c.kv_heads = 2, c.head_dim = 16;
  c.row_offsets = {0, 300, 559, 700};
  for (int i = 0; i < 300; ++i) c.segment.push_back(0);                                    // plain causal
  for (int i = 0; i < 259; ++i) c.segment.push_back(i < 70 ? 0 : i < 170 ? 1 : i < 250 ? 2 : -1);  // prompt, chosen, rejected, padding
  for (int i = 0; i < 141; ++i) c.segment.push_back(i < 3 ? -1 : i < 130 ? 0 : 1);        // padding first
  const fvec q = randn(c.q_size(), 70), k = randn(c.kv_size(), 71), v = randn(c.kv_size(), 72),
             w = randn(c.q_size(), 73);
  const attention_run<B> run(be, c, q, k, v);
  vec want_lse;
  const vec wd = to_double(w);
  attention_grads want_grads;
  const vec want = attention(c, to_double(q), to_double(k), to_double(v), &want_lse, &wd, &want_grads);
  CHECK(max_rel(run.out, want) < 1e-5);
  CHECK(lse_matches(run.lse, want_lse, 1e-5));
  fvec dq(c.q_size(), nan_f), dk(c.kv_size(), nan_f), dv(c.kv_size(), nan_f);
  be.attention_backward(cspan(w), cspan(q), cspan(k), cspan(v), cspan(run.out), cspan(run.lse), c.layout(), c.shape(),
                        mspan(dq), mspan(dk), mspan(dv));
  CHECK(max_rel(dq, want_grads.dq) < 1e-5);
  CHECK(max_rel(dk, want_grads.dk) < 1e-5);
  CHECK(max_rel(dv, want_grads.dv) < 1e-5);
}

// The lse is a backend-independent value (core/transformer_ops.hpp): one backend's forward feeds
// the other's backward, in both directions, and gives that backend's own gradients.
TEST_CASE("attention: eigen's lse feeds xtensor's backward and the other way round") {
  backends::eigen e;
  backends::xtensor x;
  const attention_case c = packed_case(4, 2, 8);
  const fvec q = randn(c.q_size(), 80), k = randn(c.kv_size(), 81), v = randn(c.kv_size(), 82),
             w = randn(c.q_size(), 83);
  const attention_run<backends::eigen> fe(e, c, q, k, v);
  const attention_run<backends::xtensor> fx(x, c, q, k, v);
  auto grads = [&](const auto& be, const auto& run) {
    std::vector<fvec> g{fvec(c.q_size(), nan_f), fvec(c.kv_size(), nan_f), fvec(c.kv_size(), nan_f)};
    be.attention_backward(cspan(w), cspan(q), cspan(k), cspan(v), cspan(run.out), cspan(run.lse), c.layout(), c.shape(),
                          mspan(g[0]), mspan(g[1]), mspan(g[2]));
    return g;
  };
  const auto ee = grads(e, fe), ex = grads(e, fx), xx = grads(x, fx), xe = grads(x, fe);
  for (std::size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(max_rel(ex[i], ee[i]) < 1e-6);
    CHECK(max_rel(xe[i], xx[i]) < 1e-6);
  }
}
