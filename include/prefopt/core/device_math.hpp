// prefopt/core/device_math.hpp — the per-element and per-row math of the transformer ops as
// PREFOPT_HD functions.
//
// The CUDA backend's kernels are thin shells over these functions; the CPU tests
// (tests/core/device_math_test.cpp) drive them in the kernels' order (threads striding over a row,
// then a tree over the threads' partial results) and compare with the eigen backend's ops, so the
// GPU's arithmetic is checked on a machine without one. The formulas are those of
// core/transformer_ops.hpp; elementwise math is float as PyTorch's, reductions are double.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "prefopt/core/config.hpp"
#include "prefopt/core/numerics.hpp"

namespace prefopt::device_math {

inline constexpr float gelu_k0 = 0.7978845608028654f;  // √(2/π)
inline constexpr float gelu_k1 = 0.044715f;

// 1 − tanh|u| = 2/(e^{2|u|} + 1): accurate where tanh → ±1 (as the eigen backend computes it).
PREFOPT_HD inline float one_minus_tanh_abs(float u) { return 2.0f / (num::exp(2.0f * num::abs(u)) + 1.0f); }

// GELU, tanh approximation: 0.5·x·(1 + tanh(u)), u = √(2/π)(x + 0.044715x³).
PREFOPT_HD inline float gelu(float x) {
  const float u = gelu_k0 * (x + gelu_k1 * x * x * x);
  const float q = one_minus_tanh_abs(u);
  return 0.5f * x * (u < 0.0f ? q : 2.0f - q);
}
// d gelu(x)/dx · g = g·(0.5(1 + t) + 0.5·x·(1 − t²)·√(2/π)(1 + 3·0.044715x²)), 1 − t² = q(2 − q).
PREFOPT_HD inline float gelu_grad(float x, float g) {
  const float u = gelu_k0 * (x + gelu_k1 * x * x * x);
  const float q = one_minus_tanh_abs(u);
  return g * (0.5f * (u < 0.0f ? q : 2.0f - q) + 0.5f * x * (q * (2.0f - q)) * gelu_k0 * (1.0f + 3.0f * gelu_k1 * x * x));
}

// σ(g) and SwiGLU: out = silu(gate)·up; dgate = dout·up·σ(1 + g(1 − σ)), dup = dout·silu(g).
PREFOPT_HD inline float sigmoid(float g) { return 1.0f / (1.0f + num::exp(-g)); }
PREFOPT_HD inline float swiglu(float gate, float up) { return gate / (1.0f + num::exp(-gate)) * up; }
struct swiglu_grads {
  float dgate, dup;
};
PREFOPT_HD inline swiglu_grads swiglu_grad(float gate, float up, float dout) {
  const float s = sigmoid(gate);
  return {dout * up * s * (1.0f + gate * (1.0f - s)), dout * gate * s};
}

// Rotary embedding of one pair (x1[i], x2[i]) of a head: angle = float(p)·θ_i rounded to float,
// cos/sin in double of that float angle, rounded to float (Hugging Face's float32 table).
// sign = −1 rotates back (backward).
struct rotation {
  float c, s;
};
PREFOPT_HD inline rotation rope_rotation(std::int32_t position, float inv_freq, float sign) {
  const float angle = float(position) * inv_freq;
  return {float(::cos(double(angle))), sign * float(::sin(double(angle)))};
}
PREFOPT_HD inline void rope_apply(float& x1, float& x2, rotation r) {
  const float a = x1, b = x2;
  x1 = a * r.c - b * r.s;
  x2 = b * r.c + a * r.s;
}

// Row moments of a norm, accumulated in double by any number of partial sums:
// sum = Σ x (layernorm's mean), sq = Σ x² or Σ (x − μ)², merged by plain addition.
// LayerNorm: out = (x − μ)·rstd·w + b; RMSNorm: out = x·rstd·w.
PREFOPT_HD inline float norm_rstd(double sum_sq, std::size_t C, float eps) {
  const float var = float(sum_sq / double(C));
  return 1.0f / num::sqrt(var + eps);
}
// Norm backward per element: dx += rstd·(g·w − a − x̂·b), a = mean(g·w) (0 for RMSNorm),
// b = mean(g·w·x̂), x̂ = (x − μ)·rstd (μ = 0 for RMSNorm).
PREFOPT_HD inline float norm_dx(float g, float w, float xhat, float rstd, float a, float b) {
  return rstd * (g * w - a - xhat * b);
}

// Whether the target (index t, logit zt) is the row's argmax as torch.argmax picks it, the first
// index of the maximum (TRL's is_top1 → mean_token_accuracy): entry j beats it when z_j > zt, or
// z_j == zt at an earlier index. A thread ORs beats_target over its entries, the block ORs the
// threads; then target_is_top1(any, zt). A NaN target logit is never top-1.
PREFOPT_HD inline bool beats_target(float zj, int j, float zt, int t) { return zj > zt || (zj == zt && j < t); }
PREFOPT_HD inline bool target_is_top1(bool any_beats, float zt) { return !any_beats && zt == zt; }

// Online softmax statistics over one row of logits: a running max m and the sums
// s = Σ e^(z−m), s2 = Σ e^(2(z−m)), sz = Σ e^(z−m)(z−m), zsum = Σ z, rescaled when m grows.
// Partial statistics of disjoint parts of a row merge in any grouping (merge) — how the LM-head
// kernel combines its threads (each strides over vocabulary entries) and the vocabulary tiles.
// lse = m + log s; log Σ p² = log s2 − 2 log s; entropy = log s − sz/s; mean = zsum / V.
struct softmax_stats {
  float m = -INFINITY;
  double s = 0.0, s2 = 0.0, sz = 0.0, zsum = 0.0;

  PREFOPT_HD void add(float z) {
    zsum += double(z);
    if (z > m) rescale(z);
    if (m == -INFINITY) return;  // only −∞ logits so far: they add nothing
    const float d = z - m;
    const double e = double(num::exp(d));
    s += e;
    s2 += e * e;
    if (e > 0.0) sz += e * double(d);
  }
  PREFOPT_HD void merge(const softmax_stats& o) {
    zsum += o.zsum;
    if (o.m == -INFINITY) return;
    softmax_stats t = o;
    if (o.m > m) rescale(o.m);
    else t.rescale(m);
    s += t.s;
    s2 += t.s2;
    sz += t.sz;
  }
  PREFOPT_HD double lse() const { return double(m) + ::log(s); }
  PREFOPT_HD double log_sum_sq() const { return ::log(s2) - 2.0 * ::log(s); }
  PREFOPT_HD double entropy() const { return ::log(s) - sz / s; }

  // Move the reference max to m_new ≥ m: sums scale by f = e^(m − m_new), sz by f and a shift.
  PREFOPT_HD void rescale(float m_new) {
    if (s > 0.0) {
      const double shift = double(m) - double(m_new), f = ::exp(shift);
      sz = f * (sz + shift * s);
      s *= f;
      s2 *= f * f;
    }
    m = m_new;
  }
};

// Attention visibility (core/transformer_ops.hpp): a query of segment sq ≥ 0 sees an earlier key of
// its own segment or of the shared prefix (segment 0); padding (−1) sees and is seen by nothing.
PREFOPT_HD inline bool attention_visible(std::int32_t sq, std::int32_t sk) { return sq >= 0 && (sk == sq || sk == 0); }

// The dropout multiplier is core/random.hpp's dropout_multiplier (already PREFOPT_HD).

} // namespace prefopt::device_math
