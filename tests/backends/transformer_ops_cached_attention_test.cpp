// attention_cached (core/transformer_ops.hpp, core/cached_attention.hpp) on every CPU backend:
// queries against a key/value cache equal attention_forward over the same sequences packed as
// rows (causal, one segment), for MHA and GQA, positions across several key tiles; cache rows past
// a query's position are never read (they hold NaN here); bad slots, positions and sizes throw.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>
#include <tuple>
#include <vector>

#include "support/backends.hpp"

using namespace prefopt;
using test::cspan;
using test::mspan;

namespace {
std::vector<float> randn(std::size_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d;
  std::vector<float> x(n);
  for (auto& v : x) v = d(g);
  return x;
}
} // namespace

TEST_CASE_TEMPLATE("attention_cached equals attention_forward over the packed sequences", B, PREFOPT_CPU_BACKENDS) {
  B be;
  const std::vector<int> lengths{5, 70, 1, 33};  // 70 and 33 cross the 32-key tiles
  const int capacity = 72, slots = int(lengths.size());
  for (const auto& c : {std::tuple{4, 4, 8}, std::tuple{4, 2, 16}, std::tuple{6, 1, 8}}) {
    const int hq = std::get<0>(c), hkv = std::get<1>(c), d = std::get<2>(c);  // (no structured bindings: CAPTURE)
    CAPTURE(hq);
    CAPTURE(hkv);
    std::vector<std::int32_t> off{0}, seg, slot, pos;
    for (int s = 0; s < slots; ++s) {
      for (int i = 0; i < lengths[std::size_t(s)]; ++i) seg.push_back(0), slot.push_back(s), pos.push_back(i);
      off.push_back(std::int32_t(seg.size()));
    }
    const int T = int(seg.size());
    const std::size_t QD = std::size_t(hq) * d, KD = std::size_t(hkv) * d;
    const auto q = randn(T * QD, 1), k = randn(T * KD, 2), v = randn(T * KD, 3);
    std::vector<float> want(T * QD), lse(std::size_t(T) * hq);
    be.attention_forward(cspan(q), cspan(k), cspan(v), attention_layout{slots, 70, cspan(off), cspan(seg)},
                         attention_shape{T, hq, hkv, d}, mspan(want), mspan(lse));
    // The cache: every token's key/value at (slot, position), NaN elsewhere (never read).
    std::vector<float> kc(std::size_t(slots) * capacity * KD, std::numeric_limits<float>::quiet_NaN()), vc = kc;
    for (int t = 0; t < T; ++t)
      for (std::size_t e = 0; e < KD; ++e) {
        const std::size_t at = (std::size_t(slot[std::size_t(t)]) * capacity + std::size_t(pos[std::size_t(t)])) * KD + e;
        kc[at] = k[std::size_t(t) * KD + e], vc[at] = v[std::size_t(t) * KD + e];
      }
    std::vector<float> got(T * QD, -1.0f);
    const cached_attention_shape sh{T, hq, hkv, d, slots, capacity};
    be.attention_cached(cspan(q), cspan(kc), cspan(vc), cspan(slot), cspan(pos), sh, mspan(got));
    double worst = 0.0;
    for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, double(std::abs(got[i] - want[i])));
    CHECK(worst < 1e-5);
    // Only the new tokens of a decode step: the last token of each sequence.
    std::vector<std::int32_t> ls, lp;
    std::vector<float> lq, lwant;
    for (int s = 0; s < slots; ++s) {
      const int t = off[std::size_t(s) + 1] - 1;
      ls.push_back(s), lp.push_back(pos[std::size_t(t)]);
      lq.insert(lq.end(), q.begin() + std::ptrdiff_t(t * QD), q.begin() + std::ptrdiff_t((t + 1) * QD));
      lwant.insert(lwant.end(), want.begin() + std::ptrdiff_t(t * QD), want.begin() + std::ptrdiff_t((t + 1) * QD));
    }
    std::vector<float> lgot(lq.size());
    be.attention_cached(cspan(lq), cspan(kc), cspan(vc), cspan(ls), cspan(lp), cached_attention_shape{slots, hq, hkv, d, slots, capacity},
                        mspan(lgot));
    worst = 0.0;
    for (std::size_t i = 0; i < lgot.size(); ++i) worst = std::max(worst, double(std::abs(lgot[i] - lwant[i])));
    CHECK(worst < 1e-5);
  }
}

TEST_CASE_TEMPLATE("attention_cached rejects slots, positions and buffers that do not fit", B, PREFOPT_CPU_BACKENDS) {
  B be;
  const cached_attention_shape sh{1, 2, 1, 4, 2, 3};
  std::vector<float> q(8, 0.0f), cache(2 * 3 * 4, 0.0f), out(8);
  const std::vector<std::int32_t> ok{1}, bad_slot{2}, bad_pos{3}, neg{-1};
  be.attention_cached(cspan(q), cspan(cache), cspan(cache), cspan(ok), cspan(ok), sh, mspan(out));
  CHECK_THROWS_AS(be.attention_cached(cspan(q), cspan(cache), cspan(cache), cspan(bad_slot), cspan(ok), sh, mspan(out)), shape_error);
  CHECK_THROWS_AS(be.attention_cached(cspan(q), cspan(cache), cspan(cache), cspan(ok), cspan(bad_pos), sh, mspan(out)), shape_error);
  CHECK_THROWS_AS(be.attention_cached(cspan(q), cspan(cache), cspan(cache), cspan(neg), cspan(ok), sh, mspan(out)), shape_error);
  const std::vector<float> short_cache(10, 0.0f);
  CHECK_THROWS_AS(be.attention_cached(cspan(q), cspan(short_cache), cspan(cache), cspan(ok), cspan(ok), sh, mspan(out)), shape_error);
  CHECK_THROWS_AS(be.attention_cached(cspan(q), cspan(cache), cspan(cache), cspan(ok), cspan(ok),
                                      cached_attention_shape{1, 3, 2, 4, 2, 3}, mspan(out)),
                  shape_error);  // q_heads not a multiple of kv_heads
}
