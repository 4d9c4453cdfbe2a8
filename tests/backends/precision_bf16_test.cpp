// The bf16 precision setting of the host backends (eigen, xtensor) (core/bf16.hpp, docs/backends.md "Precision"):
// under bf16, gemm and attention equal the fp32 ops applied to inputs rounded to bf16 beforehand
// (bit for bit: the emulation is defined as exactly that), and differ from plain fp32 by no more
// than bf16's rounding allows.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "backends/transformer_ops_reference.hpp"
#include "prefopt/core/bf16.hpp"
#include "support/backends.hpp"

using namespace prefopt;
using namespace prefopt::test::ref;

namespace {
fvec rounded(const fvec& x) {
  fvec r(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) r[i] = round_bf16(x[i]);
  return r;
}
template <class B> B bf16_backend() {
  B be;
  be.matmul_precision = precision::bf16;
  return be;
}
std::span<const float> cs(const fvec& v) { return {v.data(), v.size()}; }
std::span<float> ms(fvec& v) { return {v.data(), v.size()}; }
} // namespace

TEST_CASE_TEMPLATE("gemm under bf16 = fp32 gemm of bf16-rounded inputs, every transpose, alpha and beta", B,
                   PREFOPT_CPU_BACKENDS) {
  const B fp32;
  const B bf16 = bf16_backend<B>();
  const int m = 7, n = 9, k = 33;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      CAPTURE(ta);
      CAPTURE(tb);
      const gemm_args g{bool(ta), bool(tb), m, n, k, ta ? m : k, tb ? k : n, n, 0.5f, 1.0f};
      const fvec a = randn(std::size_t(m) * k, 11u + unsigned(ta)), b = randn(std::size_t(k) * n, 17u + unsigned(tb));
      const fvec c0 = randn(std::size_t(m) * n, 5u);
      fvec got = c0, want = c0, plain = c0;
      bf16.gemm(g, cs(a), cs(b), ms(got));
      const fvec ra = rounded(a), rb = rounded(b);
      fp32.gemm(g, cs(ra), cs(rb), ms(want));
      fp32.gemm(g, cs(a), cs(b), ms(plain));
      CHECK(got == want);
      CHECK(got != plain);  // the rounding took place
      // |Δ| ≤ alpha·Σ|a||b|·(2·2^-8 + 2^-16): each input moves by at most half a bf16 ulp, 2^-8 relative.
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
          double bound = 0.0;
          for (int l = 0; l < k; ++l) {
            const float av = ta ? a[std::size_t(l) * m + i] : a[std::size_t(i) * k + l];
            const float bv = tb ? b[std::size_t(j) * k + l] : b[std::size_t(l) * n + j];
            bound += 0.5 * std::abs(double(av) * bv);
          }
          CHECK(std::abs(got[std::size_t(i) * n + j] - plain[std::size_t(i) * n + j]) <= bound * (2.0 / 256 + 1e-4) + 1e-6);
        }
    }
}

TEST_CASE_TEMPLATE("attention under bf16 = fp32 attention of bf16-rounded Q, K, V (and dO in backward)", B,
                   PREFOPT_CPU_BACKENDS) {
  const B fp32;
  const B bf16 = bf16_backend<B>();
  attention_case c;
  c.row_offsets = {0, 5, 14, 21};
  c.segment = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 0, 1, 1, -1, 2, 2};
  c.q_heads = 4;
  c.kv_heads = 2;
  c.head_dim = 8;
  const fvec q = randn(c.q_size(), 1u), k = randn(c.kv_size(), 2u), v = randn(c.kv_size(), 3u);
  const fvec dout = randn(c.q_size(), 4u);
  fvec out(c.q_size()), lse(c.lse_size()), want_out(c.q_size()), want_lse(c.lse_size()), plain_out(c.q_size()),
      plain_lse(c.lse_size());
  bf16.attention_forward(cs(q), cs(k), cs(v), c.layout(), c.shape(), ms(out), ms(lse));
  const fvec rq = rounded(q), rk = rounded(k), rv = rounded(v), rd = rounded(dout);
  fp32.attention_forward(cs(rq), cs(rk), cs(rv), c.layout(), c.shape(), ms(want_out), ms(want_lse));
  fp32.attention_forward(cs(q), cs(k), cs(v), c.layout(), c.shape(), ms(plain_out), ms(plain_lse));
  CHECK(out == want_out);
  CHECK(lse == want_lse);
  CHECK(out != plain_out);
  double worst = 0.0;
  for (std::size_t i = 0; i < out.size(); ++i) worst = std::max(worst, double(std::abs(out[i] - plain_out[i])));
  CHECK(worst < 0.05);  // unit-variance inputs, D = 8: a few bf16 ulps of the scores

  fvec dq(c.q_size()), dk(c.kv_size()), dv(c.kv_size()), wq(c.q_size()), wk(c.kv_size()), wv(c.kv_size());
  bf16.attention_backward(cs(dout), cs(q), cs(k), cs(v), cs(out), cs(lse), c.layout(), c.shape(), ms(dq), ms(dk), ms(dv));
  fp32.attention_backward(cs(rd), cs(rq), cs(rk), cs(rv), cs(out), cs(lse), c.layout(), c.shape(), ms(wq), ms(wk), ms(wv));
  CHECK(dq == wq);
  CHECK(dk == wk);
  CHECK(dv == wv);
}

TEST_CASE_TEMPLATE("the precision setting travels with copies of the backend; fp32 is the default", B, PREFOPT_CPU_BACKENDS) {
  const B be;
  CHECK(be.matmul_precision == precision::fp32);
  const B made = bf16_backend<B>();
  const B copy = made;
  CHECK(copy.matmul_precision == precision::bf16);
}

TEST_CASE_TEMPLATE("the stored operands' ops: convert_to_bf16 = to_bf16; gemm_bf16 = gemm under bf16, bit for bit", B,
                   PREFOPT_CPU_BACKENDS) {
  // A and B each given as fp32 (rounded by the product) or as bf16 bits (a weight copy, a stored
  // norm output), at an offset inside a longer buffer with padded leading dimensions, for every
  // transpose: the product equals gemm under bf16 of the fp32 values (core/bf16.hpp: rounding is
  // deterministic, so the bits carry exactly what gemm would round to).
  const B bf16 = bf16_backend<B>();
  const int m = 7, n = 9, k = 33;
  const std::size_t off = 3;  // each operand's offset in its buffer; the spans run to the buffer's end
  const fvec w = randn(std::size_t(k + 1) * (n + 1) + 40, 23u), x = randn(std::size_t(k + 1) * (m + 1) + 40, 29u);
  std::vector<std::uint16_t> w16(w.size()), x16(x.size());
  bf16.convert_to_bf16(cs(w), std::span<std::uint16_t>(w16));
  bf16.convert_to_bf16(cs(x), std::span<std::uint16_t>(x16));
  for (std::size_t i = 0; i < w.size(); ++i) REQUIRE(w16[i] == to_bf16(w[i]));
  auto form = [&](const fvec& f, const std::vector<std::uint16_t>& h, bool bits) {
    return bits ? gemm_operand(std::span<const std::uint16_t>(h).subspan(off)) : gemm_operand(cs(f).subspan(off));
  };
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (int a_bits = 0; a_bits < 2; ++a_bits)
        for (int b_bits = 0; b_bits < 2; ++b_bits) {
          CAPTURE(ta);
          CAPTURE(tb);
          CAPTURE(a_bits);
          CAPTURE(b_bits);
          const gemm_args g{bool(ta), bool(tb), m, n, k, ta ? m + 1 : k + 1, tb ? k + 1 : n + 1, n, 0.5f, 1.0f};
          const fvec c0 = randn(std::size_t(m) * n, 5u);
          fvec got = c0, want = c0;
          bf16.gemm_bf16(g, form(x, x16, a_bits), form(w, w16, b_bits), ms(got));
          bf16.gemm(g, cs(x).subspan(off), cs(w).subspan(off), ms(want));
          CHECK(got == want);
        }
  fvec c(std::size_t(m) * n);
  const gemm_args too_big{false, false, m, n, int(w.size()), int(w.size()), n, n, 1.0f, 0.0f};
  const fvec a = randn(std::size_t(m) * w.size(), 31u);
  CHECK_THROWS_AS(bf16.gemm_bf16(too_big, cs(a), std::span<const std::uint16_t>(w16), ms(c)), shape_error);
  CHECK_THROWS_AS(bf16.gemm_bf16(too_big, std::span<const std::uint16_t>(x16), cs(w), ms(c)), shape_error);
}
