// prefopt/backends/xtensor/attention.hpp — xtensor backend: causal attention over a packed, segmented layout.
//
// FlashAttention's contract (core/transformer_ops.hpp): forward keeps one log-sum-exp per query
// and head, backward recomputes the probabilities from it. Written for clarity, per row, query
// head h (key/value head g = h / (Hq/Hkv)) and tile of q_tile queries i0 ≤ i < i1, over all the
// keys j < i1 the tile may see at once (memory O(q_tile·L); the online softmax over key tiles is
// the eigen backend's, core/flash_attention.hpp), in numpy terms:
//   visible[i,j] = j ≤ i  and  seg[i] ≥ 0  and  (seg[j] == seg[i] or seg[j] == 0)
//   S = where(visible, Q_t @ K[:i1].T / √D, −∞);  m = max(S, 1);  Z = sum(exp(S − m), 1)
//   lse = m + log Z (+∞ where Z = 0: padding);  P = exp(S − lse);  out_t = P @ V[:i1]
// Backward: P recomputed as above; Δ = sum(dO·O, 1); dP = dO @ V[:i1].T; dS = P·(dP − Δ);
//   dQ_t = dS @ K[:i1] / √D; dK[:i1] += dS.T @ Q_t / √D; dV[:i1] += P.T @ dO
//   (dK, dV of a group summed over its query heads, written with =).
#pragma once

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>
#include <xtensor-blas/xlinalg.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xoperation.hpp>
#include <xtensor/xreducer.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include "prefopt/backends/xtensor/common.hpp"
#include "prefopt/core/transformer_ops.hpp"

namespace prefopt::backends::xdetail {

struct xtensor_attention_ops {
  static constexpr std::size_t q_tile = 64;

  void attention_forward(std::span<const float> q, std::span<const float> k, std::span<const float> v,
                         const attention_layout& lay, const attention_shape& sh, std::span<float> out,
                         std::span<float> lse) const {
    const char* op = "attention_forward";
    const layout_check c = check(lay, sh, op);
    op_checks::attention_forward({c.q_size, c.kv_size, c.lse_size}, q.size(), k.size(), v.size(), out.size(), lse.size());
    const std::size_t Hq = std::size_t(sh.q_heads), Hkv = std::size_t(sh.kv_heads), D = std::size_t(sh.head_dim);
    const float scale = 1.0f / std::sqrt(float(D)), inf = std::numeric_limits<float>::infinity();
    for (int r = 0; r < lay.rows; ++r) {
      const std::size_t o = std::size_t(lay.row_offsets[r]), L = std::size_t(lay.row_offsets[r + 1]) - o;
      for (std::size_t i0 = 0; i0 < L; i0 += q_tile) {
        const std::size_t i1 = std::min(L, i0 + q_tile), m = i1 - i0;
        const xt::xtensor<bool, 2> visible = visibility(lay.segment.data() + o, i0, i1);
        for (std::size_t h = 0; h < Hq; ++h) {
          const std::size_t g = h / (Hq / Hkv);
          xt::xtensor<float, 2> Q = matrix(q.data() + (o + i0) * Hq * D + h * D, m, D, Hq * D);
          xt::xtensor<float, 2> K = matrix(k.data() + o * Hkv * D + g * D, i1, D, Hkv * D);
          xt::xtensor<float, 2> V = matrix(v.data() + o * Hkv * D + g * D, i1, D, Hkv * D);
          xt::xtensor<float, 2> S = xt::where(visible, xt::linalg::dot(Q, xt::transpose(K)) * scale, -inf);
          xt::xtensor<float, 1> M = xt::amax(S, {1});
          xt::xtensor<float, 1> Z = xt::sum(xt::where(visible, xt::exp(S - column(M)), 0.0f), {1});
          xt::xtensor<float, 1> lse_t = xt::where(Z > 0.0f, M + xt::log(Z), inf);
          xt::xtensor<float, 2> P = probabilities(S, visible, lse_t);
          matrix(out.data() + (o + i0) * Hq * D + h * D, m, D, Hq * D) = xt::linalg::dot(P, V);
          for (std::size_t ii = 0; ii < m; ++ii) lse[(o + i0 + ii) * Hq + h] = lse_t(ii);
        }
      }
    }
  }

  void attention_backward(std::span<const float> dout, std::span<const float> q, std::span<const float> k,
                          std::span<const float> v, std::span<const float> out, std::span<const float> lse,
                          const attention_layout& lay, const attention_shape& sh, std::span<float> dq,
                          std::span<float> dk, std::span<float> dv) const {
    const char* op = "attention_backward";
    const layout_check c = check(lay, sh, op);
    op_checks::attention_backward({c.q_size, c.kv_size, c.lse_size}, dout.size(), q.size(), k.size(), v.size(),
                                  out.size(), lse.size(), dq.size(), dk.size(), dv.size());
    const std::size_t Hq = std::size_t(sh.q_heads), Hkv = std::size_t(sh.kv_heads), D = std::size_t(sh.head_dim);
    const float scale = 1.0f / std::sqrt(float(D)), inf = std::numeric_limits<float>::infinity();
    std::fill_n(dk.begin(), c.kv_size, 0.0f);
    std::fill_n(dv.begin(), c.kv_size, 0.0f);
    for (int r = 0; r < lay.rows; ++r) {
      const std::size_t o = std::size_t(lay.row_offsets[r]), L = std::size_t(lay.row_offsets[r + 1]) - o;
      for (std::size_t i0 = 0; i0 < L; i0 += q_tile) {
        const std::size_t i1 = std::min(L, i0 + q_tile), m = i1 - i0;
        const xt::xtensor<bool, 2> visible = visibility(lay.segment.data() + o, i0, i1);
        for (std::size_t h = 0; h < Hq; ++h) {
          const std::size_t g = h / (Hq / Hkv), qo = (o + i0) * Hq * D + h * D, ko = o * Hkv * D + g * D;
          xt::xtensor<float, 2> Q = matrix(q.data() + qo, m, D, Hq * D);
          xt::xtensor<float, 2> dO = matrix(dout.data() + qo, m, D, Hq * D);
          xt::xtensor<float, 2> O = matrix(out.data() + qo, m, D, Hq * D);
          xt::xtensor<float, 2> K = matrix(k.data() + ko, i1, D, Hkv * D);
          xt::xtensor<float, 2> V = matrix(v.data() + ko, i1, D, Hkv * D);
          xt::xtensor<float, 1> lse_t = xt::empty<float>({m});
          for (std::size_t ii = 0; ii < m; ++ii) lse_t(ii) = lse[(o + i0 + ii) * Hq + h];
          xt::xtensor<float, 2> S = xt::where(visible, xt::linalg::dot(Q, xt::transpose(K)) * scale, -inf);
          xt::xtensor<float, 2> P = probabilities(S, visible, lse_t);
          xt::xtensor<float, 1> delta = xt::sum(dO * O, {1});
          xt::xtensor<float, 2> dP = xt::linalg::dot(dO, xt::transpose(V));
          xt::xtensor<float, 2> dS = P * (dP - column(delta));
          matrix(dq.data() + qo, m, D, Hq * D) = xt::linalg::dot(dS, K) * scale;
          matrix(dk.data() + ko, i1, D, Hkv * D) += xt::linalg::dot(xt::transpose(dS), Q) * scale;
          matrix(dv.data() + ko, i1, D, Hkv * D) += xt::linalg::dot(xt::transpose(P), dO);
        }
      }
    }
  }

private:
  // P = exp(S − lse) where visible, 0 elsewhere and on padding queries (lse = +∞).
  static xt::xtensor<float, 2> probabilities(const xt::xtensor<float, 2>& S, const xt::xtensor<bool, 2>& visible,
                                             const xt::xtensor<float, 1>& lse) {
    const auto l = column(lse);
    return xt::where(visible && xt::isfinite(l), xt::exp(S - l), 0.0f);
  }

  // visible[i − i0, j] for the queries i0 ≤ i < i1 of one row and its keys j < i1.
  static xt::xtensor<bool, 2> visibility(const std::int32_t* segment, std::size_t i0, std::size_t i1) {
    const auto seg = vector(segment, i1);
    const auto si = column(xt::view(seg, xt::range(i0, i1)));
    const auto sj = xt::view(seg, xt::newaxis(), xt::all());
    const auto i = column(xt::arange<std::size_t>(i0, i1));
    const auto j = xt::view(xt::arange<std::size_t>(i1), xt::newaxis(), xt::all());
    return (j <= i) && (si >= 0) && (xt::equal(sj, si) || xt::equal(sj, 0));
  }

  struct layout_check {
    std::size_t q_size = 0, kv_size = 0, lse_size = 0;
  };
  static layout_check check(const attention_layout& lay, const attention_shape& sh, const char* op) {
    auto fail = [&](const std::string& why) { throw shape_error(std::string("backend op '") + op + "'", why); };
    if (sh.tokens < 0 || lay.rows < 0) fail("negative shape.tokens or layout.rows");
    const std::size_t T = std::size_t(sh.tokens), Hq = positive(sh.q_heads, op, "shape.q_heads"),
                      Hkv = positive(sh.kv_heads, op, "shape.kv_heads"), D = positive(sh.head_dim, op, "shape.head_dim");
    if (Hq % Hkv != 0) fail("q_heads is not a multiple of kv_heads");
    require_size(lay.row_offsets.size(), std::size_t(lay.rows) + 1, op, "layout.row_offsets");
    require_size(lay.segment.size(), T, op, "layout.segment");
    if (lay.row_offsets[0] != 0 || lay.row_offsets[std::size_t(lay.rows)] != sh.tokens)
      fail("layout.row_offsets must run from 0 to shape.tokens (" + std::to_string(T) + ")");
    const layout_check c{T * Hq * D, T * Hkv * D, attention_lse_size(T, int(Hq))};
    for (int r = 0; r < lay.rows; ++r) {
      const int l = lay.row_offsets[r + 1] - lay.row_offsets[r];
      if (l < 0) fail("layout.row_offsets decreases at row " + std::to_string(r + 1));
      if (l > lay.max_row_length)
        fail("row " + std::to_string(r) + " has " + std::to_string(l) + " tokens, layout.max_row_length is " +
             std::to_string(lay.max_row_length));
    }
    for (std::size_t t = 0; t < T; ++t)
      if (lay.segment[t] < -1) fail("layout.segment[" + std::to_string(t) + "] is " + std::to_string(lay.segment[t]));
    return c;
  }
};

} // namespace prefopt::backends::xdetail
