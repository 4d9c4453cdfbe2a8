// prefopt/core/flash_attention_tiled.hpp — FlashAttention-2's block-tiled work split over the packed
// segment layout with GQA: what one thread block and each of its threads compute in the cuda
// backend's kernels (backends/cuda/src/flash_attention.cu), as PREFOPT_HD functions over tile
// pointers, so that tests/support/flash_attention_tiled_driver.hpp runs the same functions on the
// CPU in the kernels' block, thread and tile order (tests/core/flash_attention_tiled_test.cpp).
//
// The math is core/flash_attention.hpp's (scores, online softmax, Δ, dS; read its header first).
// Blocks, for one packed row r (tokens o .. o+L−1) and a head:
//   forward  (query tile of tiles::q queries, query head h): Q tile staged in shared memory, then
//            for every key tile of tiles::k keys starting at or before the tile's last query
//            (later tiles are causally invisible, skipped): K, V tiles staged, each thread owning
//            one query runs forward_tile; finalize writes out and lse.
//   Δ        one thread per (token, query head): row_delta (core/flash_attention.hpp).
//   dk/dv    (key tile of tiles::kd keys, kv head g): K, V staged; for every query head of the
//            group and every query tile of tiles::qd queries starting at the key tile's first key
//            (earlier queries see none of its keys), Q, dO, lse, Δ, segments staged; each thread
//            owning one key runs dkdv_tile. One writer per dk, dv row: no atomics.
//   dq       (query tile of tiles::q queries, query head h): Q and dO staged, key tiles as in
//            forward; each thread owning one query runs dq_tile.
// One thread owns one query (or key): its dot products read the staged tiles, a row of its own
// (padded stride d + 1, so the 32 threads of a warp hit 32 different banks) or a row every
// thread reads at once (stride d, a broadcast). Splitting D over several threads would need a
// warp reduction per score; one owner per row keeps the per-thread code the CPU runs identical.
// Accumulators (forward's acc, dq, dv) are arrays of tiles<D>::cap floats: registers when D is a
// compile-time head dimension (64, 128: every loop over D unrolls), local memory on the generic
// path (D = 0: any head_dim ≤ max_head_dim). dk_j lives in a thread-private row of shared memory:
// dk_j and dv_j both in registers would need 2·D > 255 registers at D = 128.
//
// Staged tiles are padded past the valid count: key segments −1 (never visible: the padding rule
// of core/transformer_ops.hpp), query segments −1, lse +∞, Δ 0; their K/V/Q rows are never read.
// Hand-written because no library provides these steps as __host__ __device__ code over raw
// pointers; nothing is checked here (the backend validates layouts and sizes before a launch).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "prefopt/core/config.hpp"
#include "prefopt/core/flash_attention.hpp"
#include "prefopt/core/numerics.hpp"

// Loops that index a per-thread array unroll completely (so the array stays in registers); dot
// products over staged rows unroll by 4 only: fully unrolled, the compiler would hoist a row that
// stays fixed across the tile (q_i in dq_tile, k_j and v_j in dkdv_tile) into D more registers.
#if defined(__CUDA_ARCH__)
#define PREFOPT_FLASH_UNROLL _Pragma("unroll")
#define PREFOPT_FLASH_UNROLL_DOT _Pragma("unroll 4")
#else
#define PREFOPT_FLASH_UNROLL
#define PREFOPT_FLASH_UNROLL_DOT
#endif

namespace prefopt::flash {

// A packed batch as the kernels read it (pointers into one memory, host or device): row_offsets
// [rows + 1], segment [T]; q, out [T × Hq·D]; k, v [T × Hkv·D]; lse, Δ [T × Hq].
struct packed_attention {
  const std::int32_t* row_offsets = nullptr;
  const std::int32_t* segment = nullptr;
  std::size_t tokens = 0;
  int rows = 0, q_heads = 0, kv_heads = 0, head_dim = 0, max_row_length = 0;
};

namespace tiled {

// Tile sizes for head dimension DC (0: the generic path, any head_dim ≤ max_head_dim).
template <int DC> struct tiles {
  static constexpr int cap = DC > 0 ? DC : max_head_dim;  // accumulator length per thread
  static constexpr int q = cap <= 128 ? 64 : 32;          // queries per forward / dq block (its threads)
  static constexpr int k = cap <= 128 ? 32 : 16;          // keys per staged K/V tile (forward, dq)
  static constexpr int kd = cap <= 128 ? 64 : 32;         // keys per dk/dv block (its threads)
  static constexpr int qd = cap <= 128 ? 32 : 16;         // queries per staged tile of a dk/dv block
};

// Shared memory of each block, carved from one float array (floats first, then the ints).
// Sizes depend on the runtime head_dim d (the generic path stages d, not cap, floats per row).
struct forward_smem {
  float *q, *k, *v;  // q: tiles::q rows, stride d + 1; k, v: tiles::k rows, stride d
  std::int32_t* seg_k;
};
struct dq_smem {
  float *q, *dout, *k, *v;  // q, dout: tiles::q rows, stride d + 1; k, v: tiles::k rows, stride d
  std::int32_t* seg_k;
};
struct dkdv_smem {
  float *k, *v, *dk;          // tiles::kd rows, stride d + 1 (each thread's own row)
  float *q, *dout, *lse, *delta;  // q, dout: tiles::qd rows, stride d; lse, Δ: tiles::qd
  std::int32_t* seg_q;
};
template <int DC> PREFOPT_HD inline std::size_t forward_smem_bytes(int d) {
  using T = tiles<DC>;
  return sizeof(float) * std::size_t(T::q * (d + 1) + 2 * T::k * d) + sizeof(std::int32_t) * T::k;
}
template <int DC> PREFOPT_HD inline forward_smem forward_smem_at(float* base, int d) {
  using T = tiles<DC>;
  forward_smem s;
  s.q = base, s.k = s.q + T::q * (d + 1), s.v = s.k + T::k * d;
  s.seg_k = reinterpret_cast<std::int32_t*>(s.v + T::k * d);
  return s;
}
template <int DC> PREFOPT_HD inline std::size_t dq_smem_bytes(int d) {
  using T = tiles<DC>;
  return sizeof(float) * std::size_t(2 * T::q * (d + 1) + 2 * T::k * d) + sizeof(std::int32_t) * T::k;
}
template <int DC> PREFOPT_HD inline dq_smem dq_smem_at(float* base, int d) {
  using T = tiles<DC>;
  dq_smem s;
  s.q = base, s.dout = s.q + T::q * (d + 1), s.k = s.dout + T::q * (d + 1), s.v = s.k + T::k * d;
  s.seg_k = reinterpret_cast<std::int32_t*>(s.v + T::k * d);
  return s;
}
template <int DC> PREFOPT_HD inline std::size_t dkdv_smem_bytes(int d) {
  using T = tiles<DC>;
  return sizeof(float) * std::size_t(3 * T::kd * (d + 1) + 2 * T::qd * d + 2 * T::qd) + sizeof(std::int32_t) * T::qd;
}
template <int DC> PREFOPT_HD inline dkdv_smem dkdv_smem_at(float* base, int d) {
  using T = tiles<DC>;
  dkdv_smem s;
  s.k = base, s.v = s.k + T::kd * (d + 1), s.dk = s.v + T::kd * (d + 1);
  s.q = s.dk + T::kd * (d + 1), s.dout = s.q + T::qd * d, s.lse = s.dout + T::qd * d, s.delta = s.lse + T::qd;
  s.seg_q = reinterpret_cast<std::int32_t*>(s.delta + T::qd);
  return s;
}

// ---- blocks -----------------------------------------------------------------------------------

// Block b of a grid of rows × tiles_per_row blocks: tokens [start, start + count) of row r
// (positions inside the row); count 0 when the row is shorter (the block has nothing to do).
struct tile_place {
  std::size_t o = 0;  // the row's first token
  int L = 0, start = 0, count = 0;
};
PREFOPT_HD inline int tiles_per_row(const packed_attention& a, int len) { return (a.max_row_length + len - 1) / len; }
PREFOPT_HD inline tile_place place_tile(const packed_attention& a, unsigned block, int len) {
  const int per = tiles_per_row(a, len), r = int(block) / per;
  tile_place p;
  p.o = std::size_t(a.row_offsets[r]);
  p.L = int(std::size_t(a.row_offsets[r + 1]) - p.o);
  p.start = (int(block) % per) * len;
  p.count = p.start < p.L ? (p.L - p.start < len ? p.L - p.start : len) : 0;
  return p;
}

// Thread tid of nthreads copies rows [0, n) of d floats (global, src_stride floats apart) to dst
// (dst_stride apart), elements tid, tid + nthreads, ...: consecutive threads read consecutive floats.
PREFOPT_HD inline void stage_rows(float* dst, int dst_stride, const float* src, std::size_t src_stride, int n, int d,
                                  int tid, int nthreads) {
  for (int x = tid; x < n * d; x += nthreads) {
    const int r = x / d, e = x - r * d;
    dst[r * dst_stride + e] = src[std::size_t(r) * src_stride + std::size_t(e)];
  }
}
// dst[x] = x < n ? src[x·src_stride] : fill, for x in [0, len) (per-token segments, lse, Δ).
template <class T>
PREFOPT_HD inline void stage_column(T* dst, int len, const T* src, std::size_t src_stride, int n, T fill, int tid,
                                    int nthreads) {
  for (int x = tid; x < len; x += nthreads) dst[x] = x < n ? src[std::size_t(x) * src_stride] : fill;
}

// ---- threads ----------------------------------------------------------------------------------

// Forward of query i (segment seg_i ≥ 0, q_i its staged row) over the staged key tile of BK keys
// at positions j0.. (ks, vs: stride d; seg_k: BK segments, −1 past the row's keys): scores,
// online-softmax step, acc = α·acc + Σ p_j·v_j — core/flash_attention.hpp's forward_row_tile with
// the tile length and D fixed at compile time, so s[] and acc[] stay in registers.
template <int DC, int BK>
PREFOPT_HD inline void forward_tile(row_state& st, float* acc, const float* q_i, int i, std::int32_t seg_i,
                                    const float* ks, const float* vs, int j0, const std::int32_t* seg_k, int d,
                                    float scale) {
  const int D = DC > 0 ? DC : d;
  float s[BK];
  float m_new = st.m;
  PREFOPT_FLASH_UNROLL
  for (int jj = 0; jj < BK; ++jj) {
    s[jj] = -INFINITY;
    if (!visible(i, j0 + jj, seg_i, seg_k[jj])) continue;
    float x = 0.0f;
    PREFOPT_FLASH_UNROLL_DOT
    for (int e = 0; e < D; ++e) x += q_i[e] * ks[jj * D + e];
    s[jj] = scale * x;
    m_new = s[jj] > m_new ? s[jj] : m_new;
  }
  if (m_new == -INFINITY) return;  // nothing visible yet: every p is 0 and α is 1
  const float alpha = num::exp(st.m - m_new);  // 0 on the first visible tile (st.m = −∞)
  float sum = 0.0f;
  PREFOPT_FLASH_UNROLL
  for (int jj = 0; jj < BK; ++jj) {
    s[jj] = s[jj] == -INFINITY ? 0.0f : num::exp(s[jj] - m_new);
    sum += s[jj];
  }
  st.l = alpha * st.l + sum;
  st.m = m_new;
  PREFOPT_FLASH_UNROLL
  for (int e = 0; e < D; ++e) acc[e] *= alpha;
  PREFOPT_FLASH_UNROLL
  for (int jj = 0; jj < BK; ++jj) {
    if (s[jj] == 0.0f) continue;
    PREFOPT_FLASH_UNROLL
    for (int e = 0; e < D; ++e) acc[e] += s[jj] * vs[jj * D + e];
  }
}

// out = acc / l, lse = m + log l; a query that saw no key (padding) gets out 0 and lse +∞.
template <int DC>
PREFOPT_HD inline void finalize(const row_state& st, const float* acc, int d, float* out, float* lse) {
  const int D = DC > 0 ? DC : d;
  const bool none = !(st.l > 0.0f);
  const float inv = none ? 0.0f : 1.0f / st.l;
  PREFOPT_FLASH_UNROLL
  for (int e = 0; e < D; ++e) out[e] = none ? 0.0f : acc[e] * inv;
  *lse = none ? INFINITY : st.m + num::log(st.l);
}

// dq_i += c·Σ_j dS_ij·k_j over the n staged keys at positions j0.. (stride d) for query i (staged
// q_i, dout_i; lse_i, Δ_i): P_ij = exp(c·q_i·k_j − lse_i), dS_ij = P_ij·(dout_i·v_j − Δ_i).
template <int DC>
PREFOPT_HD inline void dq_tile(float* dq_i, const float* q_i, const float* dout_i, int i, std::int32_t seg_i, float lse,
                               float delta, const float* ks, const float* vs, int n, int j0,
                               const std::int32_t* seg_k, int d, float scale) {
  const int D = DC > 0 ? DC : d;
  for (int jj = 0; jj < n; ++jj) {
    if (!visible(i, j0 + jj, seg_i, seg_k[jj])) continue;
    const float* k_j = ks + jj * D;
    const float* v_j = vs + jj * D;
    float x = 0.0f, y = 0.0f;
    PREFOPT_FLASH_UNROLL_DOT
    for (int e = 0; e < D; ++e) x += q_i[e] * k_j[e];
    const float p = num::exp(scale * x - lse);
    if (p == 0.0f) continue;
    PREFOPT_FLASH_UNROLL_DOT
    for (int e = 0; e < D; ++e) y += dout_i[e] * v_j[e];
    const float w = scale * (p * (y - delta));
    PREFOPT_FLASH_UNROLL
    for (int e = 0; e < D; ++e) dq_i[e] += w * k_j[e];
  }
}

// Key j (segment seg_j, staged k_j, v_j) over the m staged queries at positions i0.. (qs, dout
// rows of stride d; seg_q, lse, delta per query): dk_j += c·Σ_i dS_ij·q_i, dv_j += Σ_i P_ij·dout_i.
template <int DC>
PREFOPT_HD inline void dkdv_tile(float* dk_j, float* dv_j, const float* k_j, const float* v_j, int j, std::int32_t seg_j,
                                 const float* qs, const float* dout, int m, int i0, const std::int32_t* seg_q,
                                 const float* lse, const float* delta, int d, float scale) {
  const int D = DC > 0 ? DC : d;
  for (int ii = 0; ii < m; ++ii) {
    if (!visible(i0 + ii, j, seg_q[ii], seg_j)) continue;
    const float* q_i = qs + ii * D;
    const float* dout_i = dout + ii * D;
    float x = 0.0f, y = 0.0f;
    PREFOPT_FLASH_UNROLL_DOT
    for (int e = 0; e < D; ++e) x += q_i[e] * k_j[e];
    const float p = num::exp(scale * x - lse[ii]);
    if (p == 0.0f) continue;
    PREFOPT_FLASH_UNROLL_DOT
    for (int e = 0; e < D; ++e) y += dout_i[e] * v_j[e];
    const float w = scale * (p * (y - delta[ii]));
    PREFOPT_FLASH_UNROLL
    for (int e = 0; e < D; ++e) {
      dk_j[e] += w * q_i[e];
      dv_j[e] += p * dout_i[e];
    }
  }
}

} // namespace tiled
} // namespace prefopt::flash
