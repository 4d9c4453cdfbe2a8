// The cuda backend's FlashAttention kernels (backends/cuda/src/flash_attention.cu) executed on the
// CPU: the same core/flash_attention_tiled.hpp functions in the same order — every block of the
// grid in turn, each phase between two __syncthreads as a loop over the block's threads, the
// block's shared memory as one float array carved by the same *_smem_at functions, the same tile
// sizes (tiles<DC>) and the same causal skip rules. Plain C++ (no doctest) so that the GPU test
// (tests/cuda/flash_attention_device_test.cu) can compare the kernels with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "prefopt/core/flash_attention_tiled.hpp"

namespace prefopt::test::tiled_driver {

namespace ft = prefopt::flash::tiled;
using flash::packed_attention;

inline std::size_t grid_x(const packed_attention& a, int len) {
  return a.max_row_length > 0 ? std::size_t(a.rows) * std::size_t(ft::tiles_per_row(a, len)) : 0;
}

// out [T × Hq·D], lse [T × Hq].
template <int DC>
void forward(const packed_attention& a, const float* q, const float* k, const float* v, float* out, float* lse) {
  using T = ft::tiles<DC>;
  const int d = a.head_dim, group = a.q_heads / a.kv_heads;
  const std::size_t Hq = std::size_t(a.q_heads), Hkv = std::size_t(a.kv_heads), D = std::size_t(d);
  const float scale = flash::head_scale(d);
  std::vector<float> smem(ft::forward_smem_bytes<DC>(d) / sizeof(float) + 1);
  std::vector<flash::row_state> st(T::q);
  std::vector<float> acc(std::size_t(T::q) * T::cap);
  for (int h = 0; h < a.q_heads; ++h)           // blockIdx.y
    for (std::size_t b = 0; b < grid_x(a, T::q); ++b) {  // blockIdx.x
      const ft::tile_place tp = ft::place_tile(a, unsigned(b), T::q);
      if (tp.count == 0) continue;
      const int g = h / group;
      const ft::forward_smem sm = ft::forward_smem_at<DC>(smem.data(), d);
      for (int tid = 0; tid < T::q; ++tid) {
        ft::stage_rows(sm.q, d + 1, q + ((tp.o + std::size_t(tp.start)) * Hq + std::size_t(h)) * D, Hq * D, tp.count, d,
                       tid, T::q);
        st[std::size_t(tid)] = flash::row_state{};
        for (int e = 0; e < T::cap; ++e) acc[std::size_t(tid) * T::cap + std::size_t(e)] = 0.0f;
      }
      const int last = tp.start + tp.count - 1;
      for (int j0 = 0; j0 <= last; j0 += T::k) {
        const int n = last + 1 - j0 < T::k ? last + 1 - j0 : T::k;
        const std::size_t first = tp.o + std::size_t(j0);
        for (int tid = 0; tid < T::q; ++tid) {  // __syncthreads(); stage; __syncthreads()
          ft::stage_rows(sm.k, d, k + (first * Hkv + std::size_t(g)) * D, Hkv * D, n, d, tid, T::q);
          ft::stage_rows(sm.v, d, v + (first * Hkv + std::size_t(g)) * D, Hkv * D, n, d, tid, T::q);
          ft::stage_column(sm.seg_k, T::k, a.segment + first, 1, n, std::int32_t(-1), tid, T::q);
        }
        for (int tid = 0; tid < tp.count; ++tid) {
          const int i = tp.start + tid;
          const std::int32_t seg_i = a.segment[tp.o + std::size_t(i)];
          if (seg_i >= 0 && j0 <= i)
            ft::forward_tile<DC, T::k>(st[std::size_t(tid)], &acc[std::size_t(tid) * T::cap], sm.q + tid * (d + 1), i,
                                       seg_i, sm.k, sm.v, j0, sm.seg_k, d, scale);
        }
      }
      for (int tid = 0; tid < tp.count; ++tid) {
        const std::size_t e = (tp.o + std::size_t(tp.start + tid)) * Hq + std::size_t(h);
        ft::finalize<DC>(st[std::size_t(tid)], &acc[std::size_t(tid) * T::cap], d, out + e * D, lse + e);
      }
    }
}

// Δ [T × Hq] (one thread per token and head), then dk, dv [T × Hkv·D] and dq [T × Hq·D].
template <int DC>
void backward(const packed_attention& a, const float* dout, const float* q, const float* k, const float* v,
              const float* out, const float* lse, float* delta, float* dq, float* dk, float* dv) {
  using T = ft::tiles<DC>;
  const int d = a.head_dim, group = a.q_heads / a.kv_heads;
  const std::size_t Hq = std::size_t(a.q_heads), Hkv = std::size_t(a.kv_heads), D = std::size_t(d);
  const float scale = flash::head_scale(d);
  for (std::size_t e = 0; e < a.tokens * Hq; ++e) delta[e] = flash::row_delta(dout + e * D, out + e * D, d);

  // dk, dv: block (key tile, kv head g), one thread per key.
  std::vector<float> smem(ft::dkdv_smem_bytes<DC>(d) / sizeof(float) + 1);
  std::vector<float> dvr(std::size_t(T::kd) * T::cap);
  for (int g = 0; g < a.kv_heads; ++g)
    for (std::size_t b = 0; b < grid_x(a, T::kd); ++b) {
      const ft::tile_place tp = ft::place_tile(a, unsigned(b), T::kd);
      if (tp.count == 0) continue;
      const ft::dkdv_smem sm = ft::dkdv_smem_at<DC>(smem.data(), d);
      const std::size_t first_key = tp.o + std::size_t(tp.start);
      for (int tid = 0; tid < T::kd; ++tid) {
        ft::stage_rows(sm.k, d + 1, k + (first_key * Hkv + std::size_t(g)) * D, Hkv * D, tp.count, d, tid, T::kd);
        ft::stage_rows(sm.v, d + 1, v + (first_key * Hkv + std::size_t(g)) * D, Hkv * D, tp.count, d, tid, T::kd);
        for (int e = 0; e < d; ++e) sm.dk[tid * (d + 1) + e] = 0.0f;
        for (int e = 0; e < T::cap; ++e) dvr[std::size_t(tid) * T::cap + std::size_t(e)] = 0.0f;
      }
      for (int h = g * group; h < (g + 1) * group; ++h)
        for (int i0 = tp.start; i0 < tp.L; i0 += T::qd) {
          const int m = tp.L - i0 < T::qd ? tp.L - i0 : T::qd;
          const std::size_t first = tp.o + std::size_t(i0);
          for (int tid = 0; tid < T::kd; ++tid) {
            ft::stage_rows(sm.q, d, q + (first * Hq + std::size_t(h)) * D, Hq * D, m, d, tid, T::kd);
            ft::stage_rows(sm.dout, d, dout + (first * Hq + std::size_t(h)) * D, Hq * D, m, d, tid, T::kd);
            ft::stage_column(sm.lse, T::qd, lse + first * Hq + std::size_t(h), Hq, m, float(INFINITY), tid, T::kd);
            ft::stage_column(sm.delta, T::qd, delta + first * Hq + std::size_t(h), Hq, m, 0.0f, tid, T::kd);
            ft::stage_column(sm.seg_q, T::qd, a.segment + first, 1, m, std::int32_t(-1), tid, T::kd);
          }
          for (int tid = 0; tid < tp.count; ++tid) {
            const int j = tp.start + tid;
            const std::int32_t seg_j = a.segment[tp.o + std::size_t(j)];
            if (seg_j >= 0)
              ft::dkdv_tile<DC>(sm.dk + tid * (d + 1), &dvr[std::size_t(tid) * T::cap], sm.k + tid * (d + 1),
                                sm.v + tid * (d + 1), j, seg_j, sm.q, sm.dout, m, i0, sm.seg_q, sm.lse, sm.delta, d,
                                scale);
          }
        }
      for (int tid = 0; tid < tp.count; ++tid) {
        const std::size_t e = (first_key + std::size_t(tid)) * Hkv + std::size_t(g);
        for (int x = 0; x < d; ++x) {
          dk[e * D + std::size_t(x)] = sm.dk[tid * (d + 1) + x];
          dv[e * D + std::size_t(x)] = dvr[std::size_t(tid) * T::cap + std::size_t(x)];
        }
      }
    }

  // dq: block (query tile, query head h), one thread per query.
  std::vector<float> qsmem(ft::dq_smem_bytes<DC>(d) / sizeof(float) + 1);
  std::vector<float> dqr(std::size_t(T::q) * T::cap);
  for (int h = 0; h < a.q_heads; ++h)
    for (std::size_t b = 0; b < grid_x(a, T::q); ++b) {
      const ft::tile_place tp = ft::place_tile(a, unsigned(b), T::q);
      if (tp.count == 0) continue;
      const int g = h / group;
      const ft::dq_smem sm = ft::dq_smem_at<DC>(qsmem.data(), d);
      const std::size_t first_q = tp.o + std::size_t(tp.start);
      for (int tid = 0; tid < T::q; ++tid) {
        ft::stage_rows(sm.q, d + 1, q + (first_q * Hq + std::size_t(h)) * D, Hq * D, tp.count, d, tid, T::q);
        ft::stage_rows(sm.dout, d + 1, dout + (first_q * Hq + std::size_t(h)) * D, Hq * D, tp.count, d, tid, T::q);
        for (int e = 0; e < T::cap; ++e) dqr[std::size_t(tid) * T::cap + std::size_t(e)] = 0.0f;
      }
      const int last = tp.start + tp.count - 1;
      for (int j0 = 0; j0 <= last; j0 += T::k) {
        const int n = last + 1 - j0 < T::k ? last + 1 - j0 : T::k;
        const std::size_t first = tp.o + std::size_t(j0);
        for (int tid = 0; tid < T::q; ++tid) {
          ft::stage_rows(sm.k, d, k + (first * Hkv + std::size_t(g)) * D, Hkv * D, n, d, tid, T::q);
          ft::stage_rows(sm.v, d, v + (first * Hkv + std::size_t(g)) * D, Hkv * D, n, d, tid, T::q);
          ft::stage_column(sm.seg_k, T::k, a.segment + first, 1, n, std::int32_t(-1), tid, T::q);
        }
        for (int tid = 0; tid < tp.count; ++tid) {
          const int i = tp.start + tid;
          const std::size_t e = (tp.o + std::size_t(i)) * Hq + std::size_t(h);
          const std::int32_t seg_i = a.segment[tp.o + std::size_t(i)];
          if (seg_i >= 0 && j0 <= i)
            ft::dq_tile<DC>(&dqr[std::size_t(tid) * T::cap], sm.q + tid * (d + 1), sm.dout + tid * (d + 1), i, seg_i,
                            lse[e], delta[e], sm.k, sm.v, n, j0, sm.seg_k, d, scale);
        }
      }
      for (int tid = 0; tid < tp.count; ++tid) {
        const std::size_t e = (first_q + std::size_t(tid)) * Hq + std::size_t(h);
        for (int x = 0; x < d; ++x) dq[e * D + std::size_t(x)] = dqr[std::size_t(tid) * T::cap + std::size_t(x)];
      }
    }
}

} // namespace prefopt::test::tiled_driver
