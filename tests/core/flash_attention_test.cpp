// core/flash_attention.hpp driven in a kernel's tiling order — query tiles × key tiles of several
// sizes (1, 3, 4, 7, 16, 64: most do not divide the row lengths), MHA and GQA, prefix-shared
// segments and padding at the start, middle and end of rows — against a plain double-precision
// softmax attention written from the definition (out, lse): forward both as one thread per query
// row (forward_row_tile, the decoding kernels' step) and as a GEMM-fed tile (mask_scores +
// online_softmax + accumulate_pv, the CPU backends' step). Backward in the cuda kernels' order:
// flash_attention_tiled_test.cpp; the CPU backends' backward: tests/backends.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "prefopt/core/flash_attention.hpp"

namespace {

using fvec = std::vector<float>;
using dvec = std::vector<double>;
using ivec = std::vector<std::int32_t>;

struct problem {
  ivec offsets, segment;
  int hq = 1, hkv = 1, d = 1;
  fvec q, k, v;
  int tokens() const { return offsets.back(); }
  int rows() const { return int(offsets.size()) - 1; }
};

problem make_problem(int hq, int hkv, int d, unsigned seed) {
  problem p;
  p.hq = hq, p.hkv = hkv, p.d = d;
  // Rows: plain causal (13), prompt + chosen + rejected (37), padding at the start (9), a single
  // token, padding in the middle and at the end with a prefix (41), a single padding token.
  const std::vector<ivec> rows = {
      ivec(13, 0),
      [] { ivec s(37, 0); std::fill(s.begin() + 10, s.begin() + 24, 1); std::fill(s.begin() + 24, s.end(), 2); return s; }(),
      {-1, -1, -1, 0, 0, 0, 0, 0, 0},
      {0},
      [] { ivec s(41, 0); std::fill(s.begin() + 6, s.begin() + 15, 1); std::fill(s.begin() + 15, s.begin() + 18, -1);
           std::fill(s.begin() + 18, s.begin() + 35, 2); std::fill(s.begin() + 35, s.end(), -1); return s; }(),
      {-1},
  };
  p.offsets = {0};
  for (const auto& r : rows) {
    p.segment.insert(p.segment.end(), r.begin(), r.end());
    p.offsets.push_back(p.offsets.back() + int(r.size()));
  }
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-1.5f, 1.5f);
  const std::size_t T = std::size_t(p.tokens());
  auto fill = [&](fvec& x, std::size_t n) { x.resize(n); for (auto& e : x) e = u(gen); };
  fill(p.q, T * hq * d), fill(p.k, T * hkv * d), fill(p.v, T * hkv * d);
  return p;
}

struct result {
  dvec out, lse;
};

// The definition, in double: softmax over visible keys.
result reference(const problem& p) {
  const std::size_t T = std::size_t(p.tokens()), Hq = p.hq, Hkv = p.hkv, D = p.d, group = Hq / Hkv;
  const double c = 1.0 / std::sqrt(double(D));
  result r{dvec(T * Hq * D, 0.0), dvec(T * Hq, INFINITY)};
  for (int row = 0; row < p.rows(); ++row) {
    const std::size_t o = std::size_t(p.offsets[row]), L = std::size_t(p.offsets[row + 1]) - o;
    for (std::size_t h = 0; h < Hq; ++h) {
      const std::size_t g = h / group;
      auto Q = [&](std::size_t i) { return &p.q[(o + i) * Hq * D + h * D]; };
      auto K = [&](std::size_t j) { return &p.k[(o + j) * Hkv * D + g * D]; };
      auto V = [&](std::size_t j) { return &p.v[(o + j) * Hkv * D + g * D]; };
      for (std::size_t i = 0; i < L; ++i) {
        dvec s(L, -INFINITY);
        double mx = -INFINITY;
        for (std::size_t j = 0; j < L; ++j)
          if (prefopt::flash::visible(int(i), int(j), p.segment[o + i], p.segment[o + j])) {
            double dd = 0.0;
            for (std::size_t e = 0; e < D; ++e) dd += double(Q(i)[e]) * K(j)[e];
            s[j] = c * dd;
            mx = std::max(mx, s[j]);
          }
        if (mx == -INFINITY) continue;  // padding query: out 0, lse +inf
        double z = 0.0;
        for (std::size_t j = 0; j < L; ++j) z += std::exp(s[j] - mx);
        const double lse = mx + std::log(z);
        r.lse[(o + i) * Hq + h] = lse;
        for (std::size_t j = 0; j < L; ++j) {
          const double P = std::exp(s[j] - lse);
          for (std::size_t e = 0; e < D; ++e) r.out[(o + i) * Hq * D + h * D + e] += P * V(j)[e];
        }
      }
    }
  }
  return r;
}

struct flash_out {
  fvec out, lse;
};

// Forward, one query tile at a time; each query row walks the key tiles that start at or before
// the end of its query tile (the later ones hold no visible key). gemm_fed: scores of the whole
// (query tile × key tile) block first, as a GEMM would produce them, then mask + online softmax.
flash_out forward(const problem& p, int bq, int bk, bool gemm_fed) {
  namespace fl = prefopt::flash;
  const int T = p.tokens(), Hq = p.hq, Hkv = p.hkv, D = p.d, group = Hq / Hkv;
  const float c = 1.0f / std::sqrt(float(D));
  flash_out f{fvec(std::size_t(T) * Hq * D, -7.0f), fvec(std::size_t(T) * Hq, -7.0f)};
  fvec s(std::size_t(bq) * bk), acc(std::size_t(bq) * D);
  std::vector<fl::row_state> st(static_cast<std::size_t>(bq));
  for (int row = 0; row < p.rows(); ++row) {
    const int o = p.offsets[row], L = p.offsets[row + 1] - o;
    const std::int32_t* seg = p.segment.data() + o;
    for (int h = 0; h < Hq; ++h) {
      const int g = h / group;
      const float* q = p.q.data() + std::size_t(o) * Hq * D + h * D;
      const float* k = p.k.data() + std::size_t(o) * Hkv * D + g * D;
      const float* v = p.v.data() + std::size_t(o) * Hkv * D + g * D;
      for (int i0 = 0; i0 < L; i0 += bq) {
        const int m = std::min(bq, L - i0);
        std::fill(st.begin(), st.end(), fl::row_state{});
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int j0 = 0; j0 < i0 + m; j0 += bk) {
          const int n = std::min(bk, L - j0);
          if (gemm_fed) {
            for (int ii = 0; ii < m; ++ii)
              for (int jj = 0; jj < n; ++jj)
                s[ii * bk + jj] = c * fl::dot(q + (i0 + ii) * Hq * D, k + (j0 + jj) * Hkv * D, D);
            for (int ii = 0; ii < m; ++ii) {
              float* si = s.data() + ii * bk;
              fl::mask_scores(si, n, i0 + ii, seg[i0 + ii], j0, seg + j0);
              const float alpha = fl::online_softmax(st[ii], si, n);
              fl::accumulate_pv(acc.data() + ii * D, D, alpha, si, v + j0 * Hkv * D, Hkv * D, n);
            }
          } else {
            for (int ii = 0; ii < m; ++ii)
              fl::forward_row_tile(st[ii], acc.data() + ii * D, q + (i0 + ii) * Hq * D, i0 + ii, seg[i0 + ii],
                                   k + j0 * Hkv * D, v + j0 * Hkv * D, Hkv * D, j0, seg + j0, n, D, c, s.data());
          }
        }
        for (int ii = 0; ii < m; ++ii) {
          const std::size_t t = std::size_t(o + i0 + ii);
          fl::finalize_row(st[ii], acc.data() + ii * D, D, f.out.data() + t * Hq * D + h * D, &f.lse[t * Hq + h]);
        }
      }
    }
  }
  return f;
}

void check_close(const fvec& got, const dvec& want, double tol, const char* what) {
  REQUIRE(got.size() == want.size());
  double worst = 0.0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(double(got[i]) - want[i]) / (1.0 + std::abs(want[i]));
    if (!(err <= worst)) worst = err, at = i;  // NaN becomes the worst
  }
  INFO(what << ": worst relative error " << worst << " at " << at << " (" << got[at] << " vs " << want[at] << ")");
  CHECK(worst <= tol);
}

} // namespace

TEST_CASE("flash attention tile math matches the definition in every tiling order") {
  const int tiles[][2] = {{1, 1}, {3, 4}, {4, 3}, {7, 7}, {16, 16}, {64, 64}, {5, 64}, {64, 1}};
  const int heads[][2] = {{1, 1}, {2, 2}, {4, 2}, {4, 1}};
  for (const auto& hh : heads) {
    const problem p = make_problem(hh[0], hh[1], 8, 17u + unsigned(hh[0] * 3 + hh[1]));
    const result want = reference(p);
    for (const auto& t : tiles) {
      for (const bool gemm_fed : {false, true}) {
        const int q_heads = hh[0], kv_heads = hh[1], q_tile = t[0], k_tile = t[1];
        CAPTURE(q_heads);
        CAPTURE(kv_heads);
        CAPTURE(q_tile);
        CAPTURE(k_tile);
        CAPTURE(gemm_fed);
        const flash_out f = forward(p, t[0], t[1], gemm_fed);
        check_close(f.out, want.out, 2e-6, "out");
        for (std::size_t i = 0; i < f.lse.size(); ++i) {
          if (std::isinf(want.lse[i])) CHECK(f.lse[i] == INFINITY);
          else CHECK(std::abs(f.lse[i] - want.lse[i]) <= 2e-6 * (1.0 + std::abs(want.lse[i])));
        }
      }
    }
  }
}

TEST_CASE("flash attention: padding queries give out 0 and lse +inf") {
  const problem p = make_problem(2, 1, 4, 5u);
  const flash_out f = forward(p, 4, 3, false);
  const std::size_t Hq = 2, D = 4;
  int pads = 0;
  for (std::size_t t = 0; t < p.segment.size(); ++t) {
    if (p.segment[t] >= 0) continue;
    ++pads;
    for (std::size_t h = 0; h < Hq; ++h) {
      CHECK(f.lse[t * Hq + h] == INFINITY);
      for (std::size_t e = 0; e < D; ++e) {
        CHECK(f.out[t * Hq * D + h * D + e] == 0.0f);
      }
    }
  }
  CHECK(pads == 13);  // 3 at a row start, 3 + 6 in a row's middle and end, 1 alone
}

TEST_CASE("flash attention: online softmax over tiles equals one softmax, and the rules of the steps") {
  namespace fl = prefopt::flash;
  // Two tiles whose second holds the larger max: the first tile's sum is rescaled by α = e^{m−m'}.
  float a[3] = {0.5f, -INFINITY, 1.0f}, b[2] = {3.0f, 2.0f};
  fl::row_state st;
  CHECK(fl::online_softmax(st, a, 3) == 0.0f);  // first visible tile: α = exp(−∞ − m') = 0
  CHECK(st.m == 1.0f);
  CHECK(a[1] == 0.0f);
  const float alpha = fl::online_softmax(st, b, 2);
  CHECK(alpha == doctest::Approx(std::exp(1.0 - 3.0)).epsilon(1e-6));
  CHECK(st.m == 3.0f);
  const double z = std::exp(0.5 - 3.0) + std::exp(1.0 - 3.0) + 1.0 + std::exp(-1.0);
  CHECK(st.l == doctest::Approx(z).epsilon(1e-6));
  // A tile with no visible key leaves the state alone.
  float none[2] = {-INFINITY, -INFINITY};
  CHECK(fl::online_softmax(st, none, 2) == 1.0f);
  CHECK(st.m == 3.0f);
  CHECK(st.l == doctest::Approx(z).epsilon(1e-6));
  // Visibility: causal, own segment or the prefix, padding neither sees nor is seen.
  CHECK(fl::visible(3, 3, 1, 1));
  CHECK(fl::visible(3, 0, 1, 0));
  CHECK_FALSE(fl::visible(3, 4, 1, 1));
  CHECK_FALSE(fl::visible(3, 2, 1, 2));
  CHECK_FALSE(fl::visible(3, 2, 1, -1));
  CHECK_FALSE(fl::visible(3, 3, -1, -1));
  CHECK_FALSE(fl::visible(3, 1, 0, 1));  // a prefix token does not see a completion
}
