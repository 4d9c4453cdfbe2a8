// core/flash_attention_tiled.hpp executed as the cuda backend's kernels execute it: every block,
// every thread, every staged tile in the kernels' order (support/flash_attention_tiled_driver.hpp),
// against the eigen backend's attention_forward / attention_backward and against attention's
// definition in double (support/attention_reference.hpp). Rows of 0, 1, 5, 32, 33, 64, 70 and 200
// tokens (not multiples of the tiles, shorter than one, longer than several), prefix-shared
// segments (0 prompt, 1 chosen, 2 rejected), padding (−1) inside and at the end of rows; MHA and
// GQA (Hq = 4·Hkv); head dims 64 and 128 (register paths) and 40 (generic path), and 64 on the
// generic path too.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <span>
#include <tuple>

#include "prefopt/backends/eigen.hpp"
#include "support/attention_reference.hpp"
#include "support/flash_attention_tiled_driver.hpp"

using namespace prefopt;
using test::fvec;
using test::ivec;

namespace {

template <class T> std::span<const T> cspan(const std::vector<T>& v) { return {v.data(), v.size()}; }
template <class T> std::span<T> mspan(std::vector<T>& v) { return {v.data(), v.size()}; }

fvec randn(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  fvec v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// max |a − b| / (1 + |b|) (the metric of support/attention_reference.hpp's max_rel: relative for
// large values, absolute near 0 where the two float orders differ by rounding alone); +∞ equals
// only +∞.
double worst(const fvec& a, const fvec& b) {
  REQUIRE(a.size() == b.size());
  double w = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isinf(b[i]) || std::isinf(a[i])) {
      if (a[i] != b[i]) return INFINITY;
      continue;
    }
    const double r = std::abs(double(a[i]) - double(b[i])) / (1.0 + std::abs(double(b[i])));
    w = std::isnan(r) ? INFINITY : std::max(w, r);
  }
  return w;
}

// Rows (lengths 5, 0, 1, 33, 70, 64, 200, 32): plain causal; empty; one token; prompt + chosen +
// rejected with padding at the end; padding inside and at the end; a row of one full query tile;
// a long row (several query and key tiles) with all three segments; a row of one key tile.
struct layout {
  ivec off{0}, seg;
  int max_length = 0;
  void row(const ivec& s) {
    seg.insert(seg.end(), s.begin(), s.end());
    off.push_back(int(seg.size()));
    max_length = std::max(max_length, int(s.size()));
  }
  layout() {
    row({0, 0, 0, 0, 0});
    row({});
    row({0});
    ivec r;
    for (int t = 0; t < 33; ++t) r.push_back(t < 8 ? 0 : t < 19 ? 1 : t < 30 ? 2 : -1);
    row(r);
    r.clear();
    for (int t = 0; t < 70; ++t) r.push_back(t == 19 || t == 40 || t >= 66 ? -1 : t < 30 ? 0 : t < 50 ? 1 : 2);
    row(r);
    row(ivec(64, 0));
    r.clear();
    for (int t = 0; t < 200; ++t) r.push_back(t < 45 ? 0 : t < 130 ? 1 : t < 197 ? 2 : -1);
    row(r);
    r.clear();
    for (int t = 0; t < 32; ++t) r.push_back(t < 3 ? 0 : t < 17 ? 1 : 2);
    row(r);
  }
};

template <int DC> void check_case(int hq, int hkv, int d) {
  CAPTURE(DC);
  CAPTURE(hq);
  CAPTURE(hkv);
  CAPTURE(d);
  const layout lay;
  const std::size_t T = lay.seg.size(), rows = lay.off.size() - 1;
  const std::size_t qs = T * std::size_t(hq * d), ks = T * std::size_t(hkv * d), nq = T * std::size_t(hq);
  const auto q = randn(qs, 11), k = randn(ks, 12), v = randn(ks, 13), dout = randn(qs, 14);

  // The kernels' order.
  const flash::packed_attention a{lay.off.data(), lay.seg.data(), T, int(rows), hq, hkv, d, lay.max_length};
  fvec out(qs, NAN), lse(nq, NAN), delta(nq, NAN), dq(qs, NAN), dk(ks, NAN), dv(ks, NAN);
  test::tiled_driver::forward<DC>(a, q.data(), k.data(), v.data(), out.data(), lse.data());
  test::tiled_driver::backward<DC>(a, dout.data(), q.data(), k.data(), v.data(), out.data(), lse.data(), delta.data(),
                                   dq.data(), dk.data(), dv.data());

  // The eigen backend.
  backends::eigen be;
  const attention_layout el{int(rows), lay.max_length, cspan(lay.off), cspan(lay.seg)};
  const attention_shape sh{int(T), hq, hkv, d};
  fvec e_out(qs, NAN), e_lse(nq, NAN), e_dq(qs, NAN), e_dk(ks, NAN), e_dv(ks, NAN);
  be.attention_forward(cspan(q), cspan(k), cspan(v), el, sh, mspan(e_out), mspan(e_lse));
  be.attention_backward(cspan(dout), cspan(q), cspan(k), cspan(v), cspan(e_out),
                        cspan(e_lse), el, sh, mspan(e_dq), mspan(e_dk), mspan(e_dv));
  CHECK(worst(out, e_out) < 1e-5);
  CHECK(worst(lse, e_lse) < 1e-5);
  CHECK(worst(dq, e_dq) < 1e-5);
  CHECK(worst(dk, e_dk) < 1e-5);
  CHECK(worst(dv, e_dv) < 1e-5);

  // Both against the definition (double), so an error shared by the two would show.
  const test::attention_reference want(lay.off, lay.seg, hq, hkv, d, q, k, v, dout);
  CHECK(test::max_rel(out, want.out) < 1e-5);
  CHECK(test::max_rel(lse, want.lse) < 1e-5);
  CHECK(test::max_rel(dq, want.dq) < 1e-5);
  CHECK(test::max_rel(dk, want.dk) < 1e-5);
  CHECK(test::max_rel(dv, want.dv) < 1e-5);

  // Padding: out 0 and lse +∞ exactly, no gradient to or from it.
  for (std::size_t t = 0; t < T; ++t)
    if (lay.seg[t] < 0)
      for (int h = 0; h < hq; ++h) {
        CHECK(lse[t * std::size_t(hq) + std::size_t(h)] == INFINITY);
        const auto o = std::ptrdiff_t((t * std::size_t(hq) + std::size_t(h)) * std::size_t(d));
        CHECK(std::all_of(out.begin() + o, out.begin() + o + d, [](float x) { return x == 0.0f; }));
        CHECK(std::all_of(dq.begin() + o, dq.begin() + o + d, [](float x) { return x == 0.0f; }));
      }
  for (std::size_t t = 0; t < T; ++t)  // a padding key is seen by no query
    if (lay.seg[t] < 0) {
      const auto o = std::ptrdiff_t(t * std::size_t(hkv * d));
      CHECK(std::all_of(dk.begin() + o, dk.begin() + o + hkv * d, [](float x) { return x == 0.0f; }));
      CHECK(std::all_of(dv.begin() + o, dv.begin() + o + hkv * d, [](float x) { return x == 0.0f; }));
    }
}

} // namespace

TEST_CASE("tiled FlashAttention in the kernels' block order equals the eigen backend: head_dim 64") {
  check_case<64>(4, 1, 64);
  check_case<64>(2, 2, 64);
}
TEST_CASE("tiled FlashAttention in the kernels' block order equals the eigen backend: head_dim 128") {
  check_case<128>(4, 1, 128);
  check_case<128>(2, 2, 128);
}
TEST_CASE("tiled FlashAttention in the kernels' block order equals the eigen backend: generic head_dim") {
  check_case<0>(8, 2, 40);
  check_case<0>(3, 3, 40);
  check_case<0>(4, 1, 64);  // a head dim with its own kernels, on the generic path's tiles
}
TEST_CASE("tiled FlashAttention: tile sizes divide the work as the kernels assume") {
  using T64 = flash::tiled::tiles<64>;
  using T0 = flash::tiled::tiles<0>;
  static_assert(T64::cap == 64 && T0::cap == flash::max_head_dim);
  CHECK(T64::q >= T64::k);  // a query tile's keys come in whole key tiles or a last partial one
  const layout lay;
  const flash::packed_attention a{lay.off.data(), lay.seg.data(), lay.seg.size(), int(lay.off.size() - 1), 4, 1, 64,
                                  lay.max_length};
  // Every token is in exactly one forward block and one dk/dv block.
  for (const int len : {T64::q, T64::kd, T0::q, T0::kd}) {
    ivec seen(lay.seg.size(), 0);
    for (std::size_t b = 0; b < test::tiled_driver::grid_x(a, len); ++b) {
      const auto tp = flash::tiled::place_tile(a, unsigned(b), len);
      for (int x = 0; x < tp.count; ++x) ++seen[tp.o + std::size_t(tp.start + x)];
    }
    CHECK(std::all_of(seen.begin(), seen.end(), [](int c) { return c == 1; }));
  }
}
