// Attention from its definition, in double, over a packed batch of rows with shared prefixes and
// padding: the expected values of the attention tests of the cuda backend and of the tiled
// FlashAttention code (core/flash_attention_tiled.hpp) on the CPU.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace prefopt::test {

using ivec = std::vector<std::int32_t>;
using fvec = std::vector<float>;

// Attention from its definition, in double: out, probabilities (row blocks as the probabilities
// form stores them), lse, and the gradients of Σ dout·out.
struct attention_reference {
  std::vector<double> out, probs, lse, dq, dk, dv;
  attention_reference(const ivec& off, const ivec& seg, int hq, int hkv, int d, const fvec& q, const fvec& k, const fvec& v,
                      const fvec& dout) {
    const std::size_t T = seg.size(), Hq = std::size_t(hq), Hkv = std::size_t(hkv), D = std::size_t(d);
    out.assign(T * Hq * D, 0.0), lse.assign(T * Hq, INFINITY), dq.assign(out.size(), 0.0);
    dk.assign(T * Hkv * D, 0.0), dv.assign(dk.size(), 0.0);
    const double c = 1.0 / std::sqrt(double(d));
    std::size_t block = 0;
    for (std::size_t r = 0; r + 1 < off.size(); ++r) {
      const std::size_t o = std::size_t(off[r]), L = std::size_t(off[r + 1]) - o;
      probs.resize(block + Hq * L * L, 0.0);
      for (std::size_t h = 0; h < Hq; ++h) {
        const std::size_t g = h / (Hq / Hkv);
        for (std::size_t i = 0; i < L; ++i) {
          const std::size_t t = o + i;
          if (seg[t] < 0) continue;
          std::vector<double> s(L, -INFINITY), dp(L, 0.0);
          double mx = -INFINITY;
          for (std::size_t j = 0; j <= i; ++j) {
            if (!(seg[o + j] == seg[t] || seg[o + j] == 0)) continue;
            double x = 0.0;
            for (std::size_t e = 0; e < D; ++e) x += double(q[(t * Hq + h) * D + e]) * k[((o + j) * Hkv + g) * D + e];
            s[j] = c * x;
            mx = std::max(mx, s[j]);
          }
          double sum = 0.0;
          for (std::size_t j = 0; j <= i; ++j) sum += std::exp(s[j] - mx);
          lse[t * Hq + h] = mx + std::log(sum);
          double delta = 0.0;
          for (std::size_t j = 0; j <= i; ++j) {
            const double p = std::exp(s[j] - lse[t * Hq + h]);
            probs[block + (h * L + i) * L + j] = p;
            for (std::size_t e = 0; e < D; ++e) {
              out[(t * Hq + h) * D + e] += p * v[((o + j) * Hkv + g) * D + e];
              dp[j] += double(dout[(t * Hq + h) * D + e]) * v[((o + j) * Hkv + g) * D + e];
            }
            delta += p * dp[j];
          }
          for (std::size_t j = 0; j <= i; ++j) {
            const double p = probs[block + (h * L + i) * L + j], ds = p * (dp[j] - delta);
            for (std::size_t e = 0; e < D; ++e) {
              dq[(t * Hq + h) * D + e] += c * ds * k[((o + j) * Hkv + g) * D + e];
              dk[((o + j) * Hkv + g) * D + e] += c * ds * q[(t * Hq + h) * D + e];
              dv[((o + j) * Hkv + g) * D + e] += p * dout[(t * Hq + h) * D + e];
            }
          }
        }
      }
      block += Hq * L * L;
    }
  }
};
// max |a − b| / (1 + |b|), equal infinities (lse of padding) counting as 0.
inline double max_rel(const fvec& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isinf(b[i]) && a[i] == b[i]) continue;
    const double x = std::abs(double(a[i]) - b[i]) / (1.0 + std::abs(b[i]));
    m = std::isnan(x) ? INFINITY : std::max(m, x);
  }
  return m;
}

// Rows of 5, 9, 1, 12 tokens, an empty row and rows longer than a key tile (32): 40 and 70 tokens;
// plain causal rows, prompt + chosen + rejected (segments 0, 1, 2), padding at the end and inside.
struct packed_rows {
  ivec off{0, 5, 14, 15, 27, 27, 67, 137};
  ivec seg;
  packed_rows() {
    seg = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, -1, -1};
    for (int t = 0; t < 40; ++t) seg.push_back(t < 10 ? 0 : t < 25 ? 1 : t < 38 ? 2 : -1);
    for (int t = 0; t < 70; ++t) seg.push_back(t == 19 ? -1 : t < 30 ? 0 : t < 50 ? 1 : 2);
  }
  int tokens() const { return int(seg.size()); }
};

} // namespace prefopt::test
