// prefopt/core/flash_attention_packed.hpp — FlashAttention over the packed batch, one work item
// at a time: what one GPU thread of the cuda backend's kernels computes, as PREFOPT_HD functions
// over core/flash_attention.hpp's tile math, so the CPU tests run the kernels' exact per-thread
// code (tests/core/flash_attention_packed_test.cpp) by looping over the work items.
//   forward_item(e):  e = t·Hq + h, query token t, head h: out_t,h and lse[t·Hq + h]
//   delta_item(e):    Δ[t·Hq + h] = dout_t,h · out_t,h
//   dkdv_item(e):     e = s·Hkv + g, key token s, kv head g: dk_s,g and dv_s,g over the queries of
//                     every head of the group (one writer per output, no atomics)
//   dq_item(e):       dq_t,h, recomputing P and dS from lse and Δ
// Key and query tiles of `tile` tokens; local arrays bound head_dim by max_head_dim (the caller
// checks it). Layout tables (token_row, row_offsets, segment) are checked by the caller.
#pragma once

#include <cstddef>
#include <cstdint>

#include "prefopt/core/config.hpp"
#include "prefopt/core/flash_attention.hpp"
#include "prefopt/core/numerics.hpp"

namespace prefopt::flash {

inline constexpr int max_head_dim = 256;
inline constexpr int tile = 32;

// A packed batch as the per-item functions read it (pointers into one memory, host or device).
struct packed_attention {
  const std::int32_t* token_row = nullptr;    // [T] the row of each token
  const std::int32_t* row_offsets = nullptr;  // [rows + 1]
  const std::int32_t* segment = nullptr;      // [T]
  std::size_t tokens = 0;
  int q_heads = 0, kv_heads = 0, head_dim = 0, max_row_length = 0;
};

struct row_place {
  std::size_t o;  // the row's first token
  int L, i;       // row length, the token's position in the row
};
PREFOPT_HD inline row_place place_of(const packed_attention& a, std::size_t t) {
  const std::int32_t r = a.token_row[t];
  const std::size_t o = std::size_t(a.row_offsets[r]);
  return {o, int(std::size_t(a.row_offsets[r + 1]) - o), int(t - o)};
}
PREFOPT_HD inline float head_scale(int D) { return 1.0f / num::sqrt(float(D)); }

PREFOPT_HD inline void forward_item(const packed_attention& a, std::size_t e, const float* q, const float* k,
                                    const float* v, float* out, float* lse) {
  const std::size_t Hq = std::size_t(a.q_heads), Hkv = std::size_t(a.kv_heads);
  const std::size_t t = e / Hq, h = e % Hq, g = h / (Hq / Hkv);
  const int D = a.head_dim, kv_stride = int(Hkv) * D;
  const row_place p = place_of(a, t);
  const std::int32_t seg_i = a.segment[t];
  row_state st;
  float acc[max_head_dim];
  float s[tile];
  for (int d = 0; d < D; ++d) acc[d] = 0.0f;
  if (seg_i >= 0)
    for (int j0 = 0; j0 <= p.i; j0 += tile) {
      const int n = p.i + 1 - j0 < tile ? p.i + 1 - j0 : tile;
      const std::size_t first = (p.o + std::size_t(j0)) * Hkv + g;
      forward_row_tile(st, acc, q + e * std::size_t(D), p.i, seg_i, k + first * std::size_t(D), v + first * std::size_t(D),
                       kv_stride, j0, a.segment + p.o + std::size_t(j0), n, D, head_scale(D), s);
    }
  finalize_row(st, acc, D, out + e * std::size_t(D), lse + e);
}

PREFOPT_HD inline void delta_item(const packed_attention& a, std::size_t e, const float* dout, const float* out,
                                  float* delta) {
  const std::size_t D = std::size_t(a.head_dim);
  delta[e] = row_delta(dout + e * D, out + e * D, int(D));
}

PREFOPT_HD inline void dkdv_item(const packed_attention& a, std::size_t e, const float* dout, const float* q,
                                 const float* k, const float* v, const float* lse, const float* delta, float* dk,
                                 float* dv) {
  const std::size_t Hq = std::size_t(a.q_heads), Hkv = std::size_t(a.kv_heads);
  const std::size_t s = e / Hkv, g = e % Hkv, group = Hq / Hkv;
  const int D = a.head_dim, q_stride = int(Hq) * D;
  const row_place p = place_of(a, s);
  float dkj[max_head_dim], dvj[max_head_dim];
  float lse_t[tile], delta_t[tile];  // the tile's lse_i, Δ_i of head h, contiguous as backward_key_column reads them
  for (int d = 0; d < D; ++d) dkj[d] = dvj[d] = 0.0f;
  for (std::size_t h = g * group; h < (g + 1) * group; ++h)
    for (int i0 = p.i; i0 < p.L; i0 += tile) {
      const int m = p.L - i0 < tile ? p.L - i0 : tile;
      const std::size_t first = p.o + std::size_t(i0);  // the tile's first query token
      for (int ii = 0; ii < m; ++ii) {
        lse_t[ii] = lse[(first + std::size_t(ii)) * Hq + h];
        delta_t[ii] = delta[(first + std::size_t(ii)) * Hq + h];
      }
      backward_key_column(k + e * std::size_t(D), v + e * std::size_t(D), p.i, a.segment[s],
                          q + (first * Hq + h) * std::size_t(D), dout + (first * Hq + h) * std::size_t(D), q_stride, i0,
                          a.segment + first, lse_t, delta_t, m, D, head_scale(D), dkj, dvj, nullptr, 0);
    }
  for (int d = 0; d < D; ++d) {
    dk[e * std::size_t(D) + std::size_t(d)] = dkj[d];
    dv[e * std::size_t(D) + std::size_t(d)] = dvj[d];
  }
}

PREFOPT_HD inline void dq_item(const packed_attention& a, std::size_t e, const float* dout, const float* q,
                               const float* k, const float* v, const float* lse, const float* delta, float* dq) {
  const std::size_t Hq = std::size_t(a.q_heads), Hkv = std::size_t(a.kv_heads);
  const std::size_t t = e / Hq, h = e % Hq, g = h / (Hq / Hkv);
  const int D = a.head_dim, kv_stride = int(Hkv) * D;
  const row_place p = place_of(a, t);
  const float scale = head_scale(D);
  const float* q_i = q + e * std::size_t(D);
  const float* dout_i = dout + e * std::size_t(D);
  const std::int32_t seg_i = a.segment[t];
  float dqi[max_head_dim];
  float pr[tile], ds[tile];
  for (int d = 0; d < D; ++d) dqi[d] = 0.0f;
  if (seg_i >= 0)
    for (int j0 = 0; j0 <= p.i; j0 += tile) {
      const int n = p.i + 1 - j0 < tile ? p.i + 1 - j0 : tile;
      const std::size_t first = (p.o + std::size_t(j0)) * Hkv + g;
      const float* kt = k + first * std::size_t(D);
      const float* vt = v + first * std::size_t(D);
      score_row(q_i, p.i, seg_i, kt, kv_stride, j0, a.segment + p.o + std::size_t(j0), n, D, scale, pr);
      probs_from_scores(pr, n, lse[e]);
      for (int jj = 0; jj < n; ++jj) ds[jj] = pr[jj] == 0.0f ? 0.0f : dot(dout_i, vt + jj * kv_stride, D);
      dscores(pr, ds, n, delta[e]);
      accumulate_dq(dqi, D, scale, ds, kt, kv_stride, n);
    }
  for (int d = 0; d < D; ++d) dq[e * std::size_t(D) + std::size_t(d)] = dqi[d];
}

} // namespace prefopt::flash
