// tests/backends/transformer_ops_reference.hpp — plain double-precision loops written from the
// definitions in core/transformer_ops.hpp, numerical differentiation and comparison helpers, for
// the transformer op tests. Nothing here shares code with a backend.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numbers>
#include <random>
#include <span>
#include <vector>

#include "prefopt/core/transformer_ops.hpp"

namespace prefopt::test::ref {

using vec = std::vector<double>;
using fvec = std::vector<float>;
using ivec = std::vector<std::int32_t>;

inline fvec randn(std::size_t n, unsigned seed, float scale = 1.0f, float mean = 0.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(mean, scale);
  fvec v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
inline vec to_double(const fvec& v) { return vec(v.begin(), v.end()); }

// max_i |a_i − b_i| / (1 + |b_i|): absolute near 0, relative for large values.
inline double max_rel(std::span<const float> a, std::span<const double> b) {
  double m = 0.0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    const double e = std::abs(double(a[i]) - b[i]) / (1.0 + std::abs(b[i]));
    if (!(e <= m)) m = e;  // a NaN becomes the result, so that no tolerance passes it
  }
  return m;
}
inline double max_rel(const fvec& a, const vec& b) { return max_rel(std::span<const float>(a), std::span<const double>(b)); }
inline double max_rel(const fvec& a, const fvec& b) { return max_rel(a, to_double(b)); }
inline double max_abs(const fvec& a, const fvec& b) {
  double m = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double e = std::abs(double(a[i]) - double(b[i]));
    if (!(e <= m)) m = e;
  }
  return m;
}
inline double dot(const vec& a, const vec& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}
inline vec plus(const vec& a, const vec& b) {
  vec r(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) r[i] = a[i] + b[i];
  return r;
}

// Central differences of a scalar function of x, every coordinate, in double.
inline vec numeric_gradient(const std::function<double(const vec&)>& f, vec x, double h = 1e-5) {
  vec g(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double fp = f(x);
    x[i] = x0 - h;
    const double fm = f(x);
    x[i] = x0;
    g[i] = (fp - fm) / (2.0 * h);
  }
  return g;
}

// ---- definitions --------------------------------------------------------------------------
inline vec layernorm(const vec& x, const vec& w, const vec& b, std::size_t C, double eps) {
  vec out(x.size());
  for (std::size_t t = 0; t < x.size() / C; ++t) {
    double mu = 0.0, var = 0.0;
    for (std::size_t c = 0; c < C; ++c) mu += x[t * C + c];
    mu /= double(C);
    for (std::size_t c = 0; c < C; ++c) var += (x[t * C + c] - mu) * (x[t * C + c] - mu);
    var /= double(C);
    for (std::size_t c = 0; c < C; ++c) out[t * C + c] = (x[t * C + c] - mu) / std::sqrt(var + eps) * w[c] + b[c];
  }
  return out;
}
inline vec rmsnorm(const vec& x, const vec& w, std::size_t C, double eps) {
  vec out(x.size());
  for (std::size_t t = 0; t < x.size() / C; ++t) {
    double ms = 0.0;
    for (std::size_t c = 0; c < C; ++c) ms += x[t * C + c] * x[t * C + c];
    ms /= double(C);
    for (std::size_t c = 0; c < C; ++c) out[t * C + c] = w[c] * (x[t * C + c] / std::sqrt(ms + eps));
  }
  return out;
}
inline double gelu(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * (x + 0.044715 * x * x * x)));
}
inline double silu(double g) { return g / (1.0 + std::exp(-g)); }

// Rotary embedding, rotate_half convention; the angle is formed in float as Hugging Face does
// (inv_freq = 1/base^(float(2i)/D) rounded to float, angle = float(p)·inv_freq in float).
inline float rope_angle(std::int32_t p, std::size_t i, std::size_t D, float base) {
  const float inv = 1.0f / float(std::pow(double(base), double(float(2 * i) / float(D))));
  return float(p) * inv;
}
inline vec rope(const vec& x, const ivec& pos, std::size_t H, std::size_t D, float base, double sign = 1.0) {
  vec out(x.size());
  const std::size_t half = D / 2;
  for (std::size_t t = 0; t < pos.size(); ++t)
    for (std::size_t h = 0; h < H; ++h)
      for (std::size_t i = 0; i < half; ++i) {
        const double a = rope_angle(pos[t], i, D, base), c = std::cos(a), s = sign * std::sin(a);
        const std::size_t o = t * H * D + h * D;
        out[o + i] = x[o + i] * c - x[o + half + i] * s;
        out[o + half + i] = x[o + half + i] * c + x[o + i] * s;
      }
  return out;
}

// Token t may attend to s (same row, s ≤ t): segment[t] ≥ 0 and (segment[s] == segment[t] or segment[s] == 0).
inline bool visible(std::int32_t st, std::int32_t ss) { return st >= 0 && (ss == st || ss == 0); }

struct attention_case {
  ivec row_offsets, segment;
  int q_heads = 1, kv_heads = 1, head_dim = 1;
  int tokens() const { return row_offsets.back(); }
  int max_length() const {
    int m = 0;
    for (std::size_t r = 0; r + 1 < row_offsets.size(); ++r) m = std::max(m, row_offsets[r + 1] - row_offsets[r]);
    return m;
  }
  attention_layout layout() const {
    return {int(row_offsets.size()) - 1, max_length(), std::span<const std::int32_t>(row_offsets),
            std::span<const std::int32_t>(segment)};
  }
  attention_shape shape() const { return {tokens(), q_heads, kv_heads, head_dim}; }
  std::size_t q_size() const { return std::size_t(tokens()) * std::size_t(q_heads * head_dim); }
  std::size_t kv_size() const { return std::size_t(tokens()) * std::size_t(kv_heads * head_dim); }
  std::size_t lse_size() const { return attention_lse_size(std::size_t(tokens()), q_heads); }
};

// out and (optionally) the log-sum-exp per query and head in the documented layout (+∞ for padding).
// With dout given, also the gradients of Σ dout·out (dq, dk, dv), written from the softmax's
// derivative: dS = P∘(dP − rowsum(dP∘P)).
struct attention_grads {
  vec dq, dk, dv;
};
inline vec attention(const attention_case& c, const vec& q, const vec& k, const vec& v, vec* lse = nullptr,
                     const vec* dout = nullptr, attention_grads* grads = nullptr) {
  const std::size_t Hq = std::size_t(c.q_heads), Hkv = std::size_t(c.kv_heads), D = std::size_t(c.head_dim);
  vec out(c.q_size(), 0.0);
  if (lse) lse->assign(c.lse_size(), INFINITY);
  if (grads) *grads = {vec(c.q_size(), 0.0), vec(c.kv_size(), 0.0), vec(c.kv_size(), 0.0)};
  for (std::size_t r = 0; r + 1 < c.row_offsets.size(); ++r) {
    const std::size_t o = std::size_t(c.row_offsets[r]), L = std::size_t(c.row_offsets[r + 1]) - o;
    for (std::size_t h = 0; h < Hq; ++h) {
      const std::size_t g = h / (Hq / Hkv);
      for (std::size_t i = 0; i < L; ++i) {
        vec s(L, 0.0);
        double mx = -1e300;
        bool any = false;
        for (std::size_t j = 0; j <= i; ++j) {
          if (!visible(c.segment[o + i], c.segment[o + j])) continue;
          double d = 0.0;
          for (std::size_t e = 0; e < D; ++e) d += q[(o + i) * Hq * D + h * D + e] * k[(o + j) * Hkv * D + g * D + e];
          s[j] = d / std::sqrt(double(D));
          mx = std::max(mx, s[j]);
          any = true;
        }
        if (!any) continue;
        double z = 0.0;
        for (std::size_t j = 0; j <= i; ++j)
          if (visible(c.segment[o + i], c.segment[o + j])) z += std::exp(s[j] - mx);
        if (lse) (*lse)[(o + i) * Hq + h] = mx + std::log(z);
        vec P(i + 1, 0.0), dP(i + 1, 0.0);
        double delta = 0.0;
        for (std::size_t j = 0; j <= i; ++j) {
          if (!visible(c.segment[o + i], c.segment[o + j])) continue;
          P[j] = std::exp(s[j] - mx) / z;
          for (std::size_t e = 0; e < D; ++e) {
            out[(o + i) * Hq * D + h * D + e] += P[j] * v[(o + j) * Hkv * D + g * D + e];
            if (dout) dP[j] += (*dout)[(o + i) * Hq * D + h * D + e] * v[(o + j) * Hkv * D + g * D + e];
          }
          delta += P[j] * dP[j];
        }
        if (!grads) continue;
        const double scale = 1.0 / std::sqrt(double(D));
        for (std::size_t j = 0; j <= i; ++j) {
          const double ds = P[j] * (dP[j] - delta);
          for (std::size_t e = 0; e < D; ++e) {
            const std::size_t qi = (o + i) * Hq * D + h * D + e, kj = (o + j) * Hkv * D + g * D + e;
            grads->dq[qi] += scale * ds * k[kj];
            grads->dk[kj] += scale * ds * q[qi];
            grads->dv[kj] += P[j] * (*dout)[qi];
          }
        }
      }
    }
  }
  return out;
}

struct lm_stats {
  vec lse, logp, log_sum_sq, entropy, mean_logit, top1;
};
inline lm_stats lm_head(const vec& z, const ivec& targets, std::size_t rows, std::size_t V) {
  lm_stats s;
  for (std::size_t r = 0; r < rows; ++r) {
    const double* zr = z.data() + r * V;
    const double mx = *std::max_element(zr, zr + V);
    double se = 0.0, sum = 0.0;
    for (std::size_t j = 0; j < V; ++j) se += std::exp(zr[j] - mx), sum += zr[j];
    const double lse = mx + std::log(se);
    double sq = 0.0, ent = 0.0;
    for (std::size_t j = 0; j < V; ++j) {
      const double lp = zr[j] - lse, p = std::exp(lp);
      sq += p * p;
      ent -= p * lp;
    }
    s.lse.push_back(lse);
    s.logp.push_back(targets[r] >= 0 ? zr[targets[r]] - lse : 0.0);
    s.log_sum_sq.push_back(std::log(sq));
    s.entropy.push_back(ent);
    s.mean_logit.push_back(sum / double(V));
    // torch.argmax: the first index of the maximum
    s.top1.push_back(targets[r] >= 0 && std::max_element(zr, zr + V) - zr == targets[r] ? 1.0 : 0.0);
  }
  return s;
}

} // namespace prefopt::test::ref
