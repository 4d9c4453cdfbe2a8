// prefopt/backends/eigen/attention.hpp — eigen backend: causal attention over a packed, segmented layout.
//
// FlashAttention (core/flash_attention.hpp): no L×L matrix is kept; forward saves one log-sum-exp
// per query and head, backward recomputes the probabilities tile by tile.
// Forward, one task per (row, query head), OpenMP across tasks: for each tile of q_tile queries,
// for each tile of at most k_tile keys up to the query tile's last position (later keys are
// invisible): S = Q_t·K_tᵀ/√D (a GEMM), then per query row flash::mask_scores and the online-softmax
// step of flash::online_softmax (exponentials vectorised by Eigen), acc = diag(α)·acc + P·V_t (a
// GEMM); at the end flash::finalize_row (out = acc / l, lse = m + log l; padding: 0 and +∞).
// Backward, one task per (row, key/value head) so dK and dV of a group are owned by one thread:
// for each query head h of the group and each query tile: Δ = rowsum(dO∘O); for each key tile:
// S as above, P = exp(S − lse), dV_t += Pᵀ·dO, dP = dO·V_tᵀ, dS = P∘(dP − Δ), dQ += dS·K_t/√D,
// dK_t += dSᵀ·Q/√D (all products GEMMs). Scratch: two q_tile × k_tile blocks per thread.
// The per-task products go through Eigen (to BLAS under EIGEN_USE_BLAS); 128 × 256 tiles keep
// them near sgemm speed at head_dim 64 while the blocks stay in L2. Tasks spread over
// OpenMP threads unless the BLAS is a multi-threaded pthreads OpenBLAS (blas_inside_openmp_ok):
// then the tasks run in order and each product uses OpenBLAS's threads, instead of two thread
// pools fighting for the cores. OpenBLAS's OpenMP build (one threading owner) or
// OPENBLAS_NUM_THREADS=1 gives the parallel-over-tasks path.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "prefopt/backends/eigen/common.hpp"
#include "prefopt/core/flash_attention.hpp"
#include "prefopt/core/transformer_ops.hpp"

namespace prefopt::backends::detail {

// A checked layout: token offset of every row.
struct attention_plan {
  std::vector<std::size_t> offset;  // rows + 1
  std::size_t tokens = 0, q_heads = 0, kv_heads = 0, head_dim = 0, max_length = 0;
  std::size_t length(std::size_t r) const { return offset[r + 1] - offset[r]; }

  static attention_plan make(const attention_layout& lay, const attention_shape& sh, const char* op) {
    auto fail = [&](const std::string& why) { throw shape_error(std::string("backend op '") + op + "'", why); };
    attention_plan p;
    if (sh.tokens < 0) fail("shape.tokens is negative");
    p.tokens = std::size_t(sh.tokens);
    p.q_heads = positive(sh.q_heads, op, "shape.q_heads");
    p.kv_heads = positive(sh.kv_heads, op, "shape.kv_heads");
    p.head_dim = positive(sh.head_dim, op, "shape.head_dim");
    if (p.q_heads % p.kv_heads != 0)
      fail("q_heads (" + std::to_string(p.q_heads) + ") is not a multiple of kv_heads (" + std::to_string(p.kv_heads) + ")");
    if (lay.rows < 0) fail("layout.rows is negative");
    const std::size_t rows = std::size_t(lay.rows);
    require_size(lay.row_offsets.size(), rows + 1, op, "layout.row_offsets");
    require_size(lay.segment.size(), p.tokens, op, "layout.segment");
    if (lay.row_offsets[0] != 0) fail("layout.row_offsets[0] is " + std::to_string(lay.row_offsets[0]) + ", not 0");
    if (std::size_t(lay.row_offsets[rows]) != p.tokens)
      fail("layout.row_offsets[rows] is " + std::to_string(lay.row_offsets[rows]) + ", shape.tokens is " +
           std::to_string(p.tokens));
    p.offset.resize(rows + 1);
    for (std::size_t r = 0; r <= rows; ++r) {
      if (r > 0 && lay.row_offsets[r] < lay.row_offsets[r - 1])
        fail("layout.row_offsets decreases at row " + std::to_string(r));
      p.offset[r] = std::size_t(lay.row_offsets[r]);
      if (r > 0) {
        const std::size_t l = p.length(r - 1);
        if (l > std::size_t(std::max(lay.max_row_length, 0)))
          fail("row " + std::to_string(r - 1) + " has " + std::to_string(l) + " tokens, layout.max_row_length is " +
               std::to_string(lay.max_row_length));
        p.max_length = std::max(p.max_length, l);
      }
    }
    for (std::size_t t = 0; t < p.tokens; ++t)
      if (lay.segment[t] < -1) fail("layout.segment[" + std::to_string(t) + "] is " + std::to_string(lay.segment[t]));
    return p;
  }
  std::size_t q_size() const { return tokens * q_heads * head_dim; }
  std::size_t kv_size() const { return tokens * kv_heads * head_dim; }
  std::size_t lse_size() const { return attention_lse_size(tokens, int(q_heads)); }
  std::size_t rows() const { return offset.size() - 1; }
};

struct eigen_attention_ops {
  static constexpr int q_tile = 128, k_tile = 256;

  void attention_forward(std::span<const float> q, std::span<const float> k, std::span<const float> v,
                         const attention_layout& lay, const attention_shape& sh, std::span<float> out,
                         std::span<float> lse) const {
    const char* op = "attention_forward";
    const attention_plan p = attention_plan::make(lay, sh, op);
    op_checks::attention_forward({p.q_size(), p.kv_size(), p.lse_size()}, q.size(), k.size(), v.size(), out.size(),
                                 lse.size());
    const std::size_t Hq = p.q_heads, Hkv = p.kv_heads, D = p.head_dim, group = Hq / Hkv;
    const int qld = int(Hq * D), kvld = int(Hkv * D), d = int(D);
    const float scale = 1.0f / std::sqrt(float(D));
    const std::int32_t* seg = lay.segment.data();
    const std::ptrdiff_t tasks = std::ptrdiff_t(p.rows() * Hq);
    // Read by the pragma only: unused when built without OpenMP.
    [[maybe_unused]] const bool threaded = p.q_size() * p.max_length > parallel_grain && blas_inside_openmp_ok();
#pragma omp parallel if (threaded)
    {
      std::vector<float> sbuf(std::size_t(q_tile) * k_tile), abuf(std::size_t(q_tile) * D), alpha(q_tile);
      std::vector<flash::row_state> st(q_tile);
#pragma omp for schedule(dynamic, 1)
      for (std::ptrdiff_t task = 0; task < tasks; ++task) {
        const std::size_t r = std::size_t(task) / Hq, h = std::size_t(task) % Hq, g = h / group;
        const std::size_t o = p.offset[r];
        const int L = int(p.length(r));
        const std::int32_t* rs = seg + o;  // the row's segment ids
        for (int i0 = 0; i0 < L; i0 += q_tile) {
          const int m = std::min(q_tile, L - i0);
          const cmatrix_map Q(q.data() + (o + i0) * Hq * D + h * D, m, d, Eigen::OuterStride<>(qld));
          matrix_map acc(abuf.data(), m, d, Eigen::OuterStride<>(d));
          acc.setZero();
          std::fill(st.begin(), st.end(), flash::row_state{});
          for (int j0 = 0; j0 < i0 + m; j0 += k_tile) {
            const int n = std::min(k_tile, i0 + m - j0);
            const cmatrix_map K(k.data() + (o + j0) * Hkv * D + g * D, n, d, Eigen::OuterStride<>(kvld));
            const cmatrix_map V(v.data() + (o + j0) * Hkv * D + g * D, n, d, Eigen::OuterStride<>(kvld));
            matrix_map S(sbuf.data(), m, n, Eigen::OuterStride<>(n));
            S.noalias() = scale * (Q * K.transpose());
            for (int ii = 0; ii < m; ++ii)
              alpha[std::size_t(ii)] = online_row(st[std::size_t(ii)], &S(ii, 0), n, i0 + ii, rs[i0 + ii], j0, rs + j0);
            for (int ii = 0; ii < m; ++ii) acc.row(ii) *= alpha[std::size_t(ii)];
            acc.noalias() += S * V;
          }
          for (int ii = 0; ii < m; ++ii) {
            const std::size_t t = o + std::size_t(i0 + ii);
            flash::finalize_row(st[std::size_t(ii)], &acc(ii, 0), d, out.data() + t * Hq * D + h * D, &lse[t * Hq + h]);
          }
        }
      }
    }
  }

  void attention_backward(std::span<const float> dout, std::span<const float> q, std::span<const float> k,
                          std::span<const float> v, std::span<const float> out, std::span<const float> lse,
                          const attention_layout& lay, const attention_shape& sh, std::span<float> dq,
                          std::span<float> dk, std::span<float> dv) const {
    const char* op = "attention_backward";
    const attention_plan p = attention_plan::make(lay, sh, op);
    op_checks::attention_backward({p.q_size(), p.kv_size(), p.lse_size()}, dout.size(), q.size(), k.size(), v.size(),
                                  out.size(), lse.size(), dq.size(), dk.size(), dv.size());
    const std::size_t Hq = p.q_heads, Hkv = p.kv_heads, D = p.head_dim, group = Hq / Hkv;
    const int qld = int(Hq * D), kvld = int(Hkv * D), d = int(D);
    const float scale = 1.0f / std::sqrt(float(D));
    const std::int32_t* seg = lay.segment.data();
    const std::ptrdiff_t tasks = std::ptrdiff_t(p.rows() * Hkv);
    // Read by the pragma only: unused when built without OpenMP.
    [[maybe_unused]] const bool threaded = p.q_size() * p.max_length > parallel_grain && blas_inside_openmp_ok();
#pragma omp parallel if (threaded)
    {
      std::vector<float> pbuf(std::size_t(q_tile) * k_tile), dbuf(std::size_t(q_tile) * k_tile), delta(q_tile);
#pragma omp for schedule(dynamic, 1)
      for (std::ptrdiff_t task = 0; task < tasks; ++task) {
        const std::size_t r = std::size_t(task) / Hkv, g = std::size_t(task) % Hkv;
        const std::size_t o = p.offset[r];
        const int L = int(p.length(r));
        const std::int32_t* rs = seg + o;
        matrix_map(dk.data() + o * Hkv * D + g * D, L, d, Eigen::OuterStride<>(kvld)).setZero();
        matrix_map(dv.data() + o * Hkv * D + g * D, L, d, Eigen::OuterStride<>(kvld)).setZero();
        for (std::size_t h = g * group; h < (g + 1) * group; ++h) {
          for (int i0 = 0; i0 < L; i0 += q_tile) {
            const int m = std::min(q_tile, L - i0);
            const std::size_t qo = (o + i0) * Hq * D + h * D;
            const cmatrix_map Q(q.data() + qo, m, d, Eigen::OuterStride<>(qld));
            const cmatrix_map dO(dout.data() + qo, m, d, Eigen::OuterStride<>(qld));
            const cmatrix_map O(out.data() + qo, m, d, Eigen::OuterStride<>(qld));
            matrix_map dQ(dq.data() + qo, m, d, Eigen::OuterStride<>(qld));
            dQ.setZero();
            for (int ii = 0; ii < m; ++ii) delta[std::size_t(ii)] = flash::row_delta(dO.data() + ii * qld, O.data() + ii * qld, d);
            for (int j0 = 0; j0 < i0 + m; j0 += k_tile) {
              const int n = std::min(k_tile, i0 + m - j0);
              const std::size_t ko = (o + j0) * Hkv * D + g * D;
              const cmatrix_map K(k.data() + ko, n, d, Eigen::OuterStride<>(kvld));
              const cmatrix_map V(v.data() + ko, n, d, Eigen::OuterStride<>(kvld));
              matrix_map dK(dk.data() + ko, n, d, Eigen::OuterStride<>(kvld));
              matrix_map dV(dv.data() + ko, n, d, Eigen::OuterStride<>(kvld));
              matrix_map P(pbuf.data(), m, n, Eigen::OuterStride<>(n));
              matrix_map dS(dbuf.data(), m, n, Eigen::OuterStride<>(n));
              P.noalias() = scale * (Q * K.transpose());
              for (int ii = 0; ii < m; ++ii) {
                const std::size_t t = o + std::size_t(i0 + ii);
                probs_row(&P(ii, 0), n, i0 + ii, rs[i0 + ii], j0, rs + j0, lse[t * Hq + h]);
              }
              dV.noalias() += P.transpose() * dO;
              dS.noalias() = dO * V.transpose();  // dP
              for (int ii = 0; ii < m; ++ii)
                dS.row(ii).array() = P.row(ii).array() * (dS.row(ii).array() - delta[std::size_t(ii)]);
              dQ.noalias() += scale * (dS * K);
              dK.noalias() += scale * (dS.transpose() * Q);
            }
          }
        }
      }
    }
  }


private:
  // flash::mask_scores then the step of flash::online_softmax on one row of a score tile, with
  // the exponentials vectorised: s → p = exp(s − m') (0 where invisible); returns α = exp(m − m').
  static float online_row(flash::row_state& st, float* s, int n, int i, std::int32_t seg_i, int j0,
                          const std::int32_t* seg_keys) {
    const float m_new = std::max(st.m, flash::mask_scores(s, n, i, seg_i, j0, seg_keys));
    array_map a(s, Eigen::Index(n));
    if (m_new == -INFINITY) {  // nothing visible yet (or a padding query)
      a.setZero();
      return 1.0f;
    }
    a = (a == -INFINITY).select(0.0f, (a - m_new).exp());
    const float alpha = std::exp(st.m - m_new);
    st.l = alpha * st.l + a.sum();
    st.m = m_new;
    return alpha;
  }
  // flash::mask_scores then flash::probs_from_scores on one row of a score tile, vectorised.
  static void probs_row(float* s, int n, int i, std::int32_t seg_i, int j0, const std::int32_t* seg_keys, float lse) {
    array_map a(s, Eigen::Index(n));
    if (lse == INFINITY) {  // padding query
      a.setZero();
      return;
    }
    flash::mask_scores(s, n, i, seg_i, j0, seg_keys);
    a = (a == -INFINITY).select(0.0f, (a - lse).exp());
  }
};

} // namespace prefopt::backends::detail
