// prefopt/core/flash_attention.hpp — FlashAttention's tile math, shared by every attention backend.
//
// The algorithm of Dao et al., "FlashAttention" (2022) and Dao, "FlashAttention-2" (2023), over
// the packed, segmented layout of core/transformer_ops.hpp. For one head of one packed row, with
// query i and key j the positions inside the row, D = head_dim and c = 1/√D:
//   s_ij = c·q_i·k_j where visible(i, j), −∞ elsewhere
//   lse_i = log Σ_j exp(s_ij),  P_ij = exp(s_ij − lse_i),  o_i = Σ_j P_ij·v_j
// Forward walks the keys tile by tile keeping, per query row, a running max m and a running sum
// l of exp(s − m) and an unnormalised output accumulator acc (row_state + D floats): a new tile
// with max m' ≥ m rescales l and acc by α = exp(m − m'). At the end o_i = acc / l and
// lse_i = m + log l — the only per-query number backward needs.
// Backward recomputes P tile by tile from the scores and lse:
//   Δ_i = dO_i·o_i,  dP_ij = dO_i·v_j,  dS_ij = P_ij·(dP_ij − Δ_i)
//   dq_i += c·Σ_j dS_ij·k_j,  dk_j += c·Σ_i dS_ij·q_i,  dv_j += Σ_i P_ij·dO_i
// A padding query (segment −1) sees no key: out 0 and lse = +∞, so every recomputed P of it is
// exp(s − ∞) = 0 and it contributes nothing to any gradient.
// The CPU backends form dP and dS with GEMMs over tiles (probs_from_scores below); the cuda
// kernels' per-thread backward steps are in core/flash_attention_tiled.hpp.
//
// Contract common to every function below (they are the steps a CUDA kernel thread runs, so they
// are written by hand: no library offers them as __host__ __device__ code over raw pointers):
// - float math and float accumulators; no allocation, no exceptions, no std:: containers;
//   nothing is checked (the backend validates sizes and layouts before calling).
// - Positions i, j are 0-based inside the packed row; `seg_i` is segment[i] of the row and
//   `seg_keys` points at segment[j0] of the row, the first key of the tile (j0 = its position).
// - q_i, dout_i, out_i, dq_i, dk_j, dv_j point at D contiguous floats (one head of one token);
//   `k`, `v`, `q`, `dout` tiles are row-major with a stride in floats between consecutive tokens
//   (Hkv·D or Hq·D in the packed [T × H·D] activations), pointing at the tile's first token.
// - Score/probability rows `s`, `p`, `dp` are n contiguous floats (n = keys in the tile, n ≥ 0).
#pragma once

#include <cmath>
#include <cstdint>

#include "prefopt/core/config.hpp"
#include "prefopt/core/numerics.hpp"

namespace prefopt::flash {

// Head dimensions the per-thread code accepts (its accumulators are arrays of this many floats;
// the backends check head_dim against it), and the key tile of the per-item decoding code
// (core/cached_attention.hpp).
inline constexpr int max_head_dim = 256;
inline constexpr int tile = 32;

// The softmax scale c = 1/√D.
PREFOPT_HD inline float head_scale(int D) { return 1.0f / num::sqrt(float(D)); }

// Online-softmax state of one query row: running max m (−∞ until a visible key is seen) and
// running sum l = Σ exp(s_j − m) over the keys seen so far.
struct row_state {
  float m = -INFINITY;
  float l = 0.0f;
};

// The visibility rule of core/transformer_ops.hpp: query i may attend key j of the same row iff
// j ≤ i, the query is not padding and the key is in the query's segment or the shared prefix 0.
// (A padding key, segment −1, is therefore never visible to a query of segment ≥ 0.)
PREFOPT_HD inline bool visible(int i, int j, std::int32_t seg_i, std::int32_t seg_j) {
  return j <= i && seg_i >= 0 && (seg_j == seg_i || seg_j == 0);
}

// Σ_e a[e]·b[e] over D contiguous floats.
PREFOPT_HD inline float dot(const float* a, const float* b, int D) {
  float acc = 0.0f;
  for (int e = 0; e < D; ++e) acc += a[e] * b[e];
  return acc;
}

// s[0..n) holds already-scaled scores c·q_i·k_j of query i against keys j0..j0+n−1 (computed by a
// GEMM, say): sets the invisible ones to −∞ and returns the max over the tile (−∞ if none visible).
PREFOPT_HD inline float mask_scores(float* s, int n, int i, std::int32_t seg_i, int j0, const std::int32_t* seg_keys) {
  float mx = -INFINITY;
  for (int jj = 0; jj < n; ++jj) {
    if (visible(i, j0 + jj, seg_i, seg_keys[jj])) mx = s[jj] > mx ? s[jj] : mx;
    else s[jj] = -INFINITY;
  }
  return mx;
}

// Computes the masked scores of query i against a key tile: s[jj] = scale·q_i·k_{j0+jj} where
// visible, −∞ elsewhere (no dot product is formed for invisible keys). Returns the tile max.
PREFOPT_HD inline float score_row(const float* q_i, int i, std::int32_t seg_i, const float* k, int k_stride, int j0,
                                  const std::int32_t* seg_keys, int n, int D, float scale, float* s) {
  float mx = -INFINITY;
  for (int jj = 0; jj < n; ++jj) {
    if (visible(i, j0 + jj, seg_i, seg_keys[jj])) {
      s[jj] = scale * dot(q_i, k + jj * k_stride, D);
      mx = s[jj] > mx ? s[jj] : mx;
    } else {
      s[jj] = -INFINITY;
    }
  }
  return mx;
}

// One online-softmax step over a tile of masked scores s[0..n) (−∞ = invisible): the new max is
// m' = max(st.m, max_j s_j); s_j becomes p_j = exp(s_j − m') in place (0 for −∞); st.l becomes
// α·st.l + Σ_j p_j and st.m becomes m'. Returns α = exp(m_old − m'), the factor the caller must
// apply to its output accumulator before adding Σ_j p_j·v_j (accumulate_pv). While no key has
// been visible (m' = −∞) every p_j is 0 and α is 1. The accumulator must start at 0.
PREFOPT_HD inline float online_softmax(row_state& st, float* s, int n) {
  float m_new = st.m;
  for (int jj = 0; jj < n; ++jj) m_new = s[jj] > m_new ? s[jj] : m_new;
  if (m_new == -INFINITY) {
    for (int jj = 0; jj < n; ++jj) s[jj] = 0.0f;
    return 1.0f;
  }
  const float alpha = num::exp(st.m - m_new);  // exp(−∞) = 0 on the first visible tile
  float sum = 0.0f;
  for (int jj = 0; jj < n; ++jj) {
    s[jj] = s[jj] == -INFINITY ? 0.0f : num::exp(s[jj] - m_new);
    sum += s[jj];
  }
  st.l = alpha * st.l + sum;
  st.m = m_new;
  return alpha;
}

// acc[0..D) = alpha·acc + Σ_j p_j·v_j over the n keys of a value tile (zero p_j skipped).
PREFOPT_HD inline void accumulate_pv(float* acc, int D, float alpha, const float* p, const float* v, int v_stride,
                                     int n) {
  for (int e = 0; e < D; ++e) acc[e] *= alpha;
  for (int jj = 0; jj < n; ++jj) {
    if (p[jj] == 0.0f) continue;
    const float* vj = v + jj * v_stride;
    for (int e = 0; e < D; ++e) acc[e] += p[jj] * vj[e];
  }
}

// One forward step of query row i over the key/value tile j0..j0+n−1 (score_row, online_softmax,
// accumulate_pv); s is n floats of scratch. A thread that owns one query row calls it for every
// key tile that may hold a visible key (tiles starting after i may be skipped), then finalize_row.
PREFOPT_HD inline void forward_row_tile(row_state& st, float* acc, const float* q_i, int i, std::int32_t seg_i,
                                        const float* k, const float* v, int kv_stride, int j0,
                                        const std::int32_t* seg_keys, int n, int D, float scale, float* s) {
  score_row(q_i, i, seg_i, k, kv_stride, j0, seg_keys, n, D, scale, s);
  const float alpha = online_softmax(st, s, n);
  accumulate_pv(acc, D, alpha, s, v, kv_stride, n);
}

// Ends a query row: out[0..D) = acc / l and *lse = m + log l; a row that saw no visible key (a
// padding query; every other query sees at least itself) gets out = 0 and *lse = +∞.
// out may alias acc.
PREFOPT_HD inline void finalize_row(const row_state& st, const float* acc, int D, float* out, float* lse) {
  if (!(st.l > 0.0f)) {
    for (int e = 0; e < D; ++e) out[e] = 0.0f;
    *lse = INFINITY;
    return;
  }
  const float inv = 1.0f / st.l;
  for (int e = 0; e < D; ++e) out[e] = acc[e] * inv;
  *lse = st.m + num::log(st.l);
}

// ---- backward -------------------------------------------------------------------------------------

// Δ_i = dO_i·o_i (= Σ_j P_ij·dP_ij), once per query row and head before its key tiles.
PREFOPT_HD inline float row_delta(const float* dout_i, const float* out_i, int D) { return dot(dout_i, out_i, D); }

// Masked scores s[0..n) (−∞ = invisible) → P_ij = exp(s_ij − lse_i) in place (0 where invisible
// and everywhere when lse_i = +∞).
PREFOPT_HD inline void probs_from_scores(float* s, int n, float lse) {
  for (int jj = 0; jj < n; ++jj) s[jj] = (s[jj] == -INFINITY || lse == INFINITY) ? 0.0f : num::exp(s[jj] - lse);
}

} // namespace prefopt::flash
