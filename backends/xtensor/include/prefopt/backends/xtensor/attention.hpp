// prefopt/backends/xtensor/attention.hpp — xtensor backend: causal attention over a packed, segmented layout.
//
// Per row and query head h (key/value head g = h / (Hq/Hkv)), in numpy terms:
//   visible[i,j] = j ≤ i  and  seg[i] ≥ 0  and  (seg[j] == seg[i] or seg[j] == 0)
//   S = Q @ K.T / √D;  P = softmax(S where visible, −∞ elsewhere) (rows with no visible key → 0);
//   out = P @ V.
// Backward: dV += P.T @ dO; dP = dO @ V.T; dS = P·(dP − sum(dP·P, 1)); dQ = dS @ K / √D;
//   dK += dS.T @ Q / √D (dK, dV of a group summed over its query heads, written with =).
#pragma once

#include <cmath>
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
  void attention_forward(std::span<const float> q, std::span<const float> k, std::span<const float> v,
                         const attention_layout& lay, const attention_shape& sh, std::span<float> out,
                         std::span<float> probs) const {
    const char* op = "attention_forward";
    const layout_check c = check(lay, sh, op);
    require_size(q.size(), c.q_size, op, "q");
    require_size(k.size(), c.kv_size, op, "k");
    require_size(v.size(), c.kv_size, op, "v");
    require_size(out.size(), c.q_size, op, "out");
    require_size(probs.size(), c.probs_size, op, "probs");
    const std::size_t Hq = std::size_t(sh.q_heads), Hkv = std::size_t(sh.kv_heads), D = std::size_t(sh.head_dim);
    const float scale = 1.0f / std::sqrt(float(D));
    std::size_t poff = 0;
    for (int r = 0; r < lay.rows; ++r) {
      const std::size_t o = std::size_t(lay.row_offsets[r]), L = std::size_t(lay.row_offsets[r + 1]) - o;
      const xt::xtensor<bool, 2> visible = visibility(lay.segment.data() + o, L);
      for (std::size_t h = 0; h < Hq; ++h, poff += L * L) {
        const std::size_t g = h / (Hq / Hkv);
        if (L == 0) continue;
        xt::xtensor<float, 2> Q = matrix(q.data() + o * Hq * D + h * D, L, D, Hq * D);
        xt::xtensor<float, 2> K = matrix(k.data() + o * Hkv * D + g * D, L, D, Hkv * D);
        xt::xtensor<float, 2> V = matrix(v.data() + o * Hkv * D + g * D, L, D, Hkv * D);
        xt::xtensor<float, 2> S = xt::where(visible, xt::linalg::dot(Q, xt::transpose(K)) * scale,
                                            -std::numeric_limits<float>::infinity());
        xt::xtensor<float, 2> E = xt::where(visible, xt::exp(S - column(xt::amax(S, {1}))), 0.0f);
        xt::xtensor<float, 1> Z = xt::sum(E, {1});
        xt::xtensor<float, 2> P = xt::where(column(Z) > 0.0f, E / column(Z), 0.0f);
        matrix(probs.data() + poff, L, L, L) = P;
        matrix(out.data() + o * Hq * D + h * D, L, D, Hq * D) = xt::linalg::dot(P, V);
      }
    }
  }

  void attention_backward(std::span<const float> dout, std::span<const float> q, std::span<const float> k,
                          std::span<const float> v, std::span<const float> probs, const attention_layout& lay,
                          const attention_shape& sh, std::span<float> dq, std::span<float> dk,
                          std::span<float> dv) const {
    const char* op = "attention_backward";
    const layout_check c = check(lay, sh, op);
    require_size(dout.size(), c.q_size, op, "dout");
    require_size(q.size(), c.q_size, op, "q");
    require_size(k.size(), c.kv_size, op, "k");
    require_size(v.size(), c.kv_size, op, "v");
    require_size(probs.size(), c.probs_size, op, "probs");
    require_size(dq.size(), c.q_size, op, "dq");
    require_size(dk.size(), c.kv_size, op, "dk");
    require_size(dv.size(), c.kv_size, op, "dv");
    const std::size_t Hq = std::size_t(sh.q_heads), Hkv = std::size_t(sh.kv_heads), D = std::size_t(sh.head_dim);
    const float scale = 1.0f / std::sqrt(float(D));
    std::fill_n(dk.begin(), c.kv_size, 0.0f);
    std::fill_n(dv.begin(), c.kv_size, 0.0f);
    std::size_t poff = 0;
    for (int r = 0; r < lay.rows; ++r) {
      const std::size_t o = std::size_t(lay.row_offsets[r]), L = std::size_t(lay.row_offsets[r + 1]) - o;
      for (std::size_t h = 0; h < Hq; ++h, poff += L * L) {
        const std::size_t g = h / (Hq / Hkv);
        if (L == 0) continue;
        xt::xtensor<float, 2> P = matrix(probs.data() + poff, L, L, L);
        xt::xtensor<float, 2> dO = matrix(dout.data() + o * Hq * D + h * D, L, D, Hq * D);
        xt::xtensor<float, 2> Q = matrix(q.data() + o * Hq * D + h * D, L, D, Hq * D);
        xt::xtensor<float, 2> K = matrix(k.data() + o * Hkv * D + g * D, L, D, Hkv * D);
        xt::xtensor<float, 2> V = matrix(v.data() + o * Hkv * D + g * D, L, D, Hkv * D);
        xt::xtensor<float, 2> dP = xt::linalg::dot(dO, xt::transpose(V));
        xt::xtensor<float, 2> dS = P * (dP - column(xt::sum(dP * P, {1})));
        matrix(dq.data() + o * Hq * D + h * D, L, D, Hq * D) = xt::linalg::dot(dS, K) * scale;
        matrix(dk.data() + o * Hkv * D + g * D, L, D, Hkv * D) += xt::linalg::dot(xt::transpose(dS), Q) * scale;
        matrix(dv.data() + o * Hkv * D + g * D, L, D, Hkv * D) += xt::linalg::dot(xt::transpose(P), dO);
      }
    }
  }

private:
  // visible[i,j] for one row's L tokens.
  static xt::xtensor<bool, 2> visibility(const std::int32_t* segment, std::size_t L) {
    const auto seg = vector(segment, L);
    const auto si = column(seg);
    const auto sj = xt::view(seg, xt::newaxis(), xt::all());
    const auto i = column(xt::arange<std::size_t>(L));
    const auto j = xt::view(xt::arange<std::size_t>(L), xt::newaxis(), xt::all());
    return (j <= i) && (si >= 0) && (xt::equal(sj, si) || xt::equal(sj, 0));
  }

  struct layout_check {
    std::size_t q_size = 0, kv_size = 0, probs_size = 0;
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
    layout_check c{T * Hq * D, T * Hkv * D, 0};
    for (int r = 0; r < lay.rows; ++r) {
      const int l = lay.row_offsets[r + 1] - lay.row_offsets[r];
      if (l < 0) fail("layout.row_offsets decreases at row " + std::to_string(r + 1));
      if (l > lay.max_row_length)
        fail("row " + std::to_string(r) + " has " + std::to_string(l) + " tokens, layout.max_row_length is " +
             std::to_string(lay.max_row_length));
      c.probs_size += Hq * std::size_t(l) * std::size_t(l);
    }
    for (std::size_t t = 0; t < T; ++t)
      if (lay.segment[t] < -1) fail("layout.segment[" + std::to_string(t) + "] is " + std::to_string(lay.segment[t]));
    return c;
  }
};

} // namespace prefopt::backends::xdetail
