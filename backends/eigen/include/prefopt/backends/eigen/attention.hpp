// prefopt/backends/eigen/attention.hpp — eigen backend: causal attention over a packed, segmented layout.
//
// Forward, one task per (row, query head), OpenMP across tasks:
//   S = Q·Kᵀ/√D (the row's L×L block, written straight into `probs`), then per query i a softmax
//   over the visible keys only (s ≤ i, segment rule of core/transformer_ops.hpp) with a max
//   shift, zeros elsewhere; padding queries get an all-zero row; out = P·V.
// Backward, one task per (row, key/value head) so dK and dV of a group are owned by one thread:
//   for each query head h of the group: dV += Pᵀ·dO, dP = dO·Vᵀ, dS = P∘(dP − rowsum(dP∘P)),
//   dQ = dS·K/√D, dK += dSᵀ·Q/√D. dS lives in per-thread scratch (L_max² floats).
// The per-task products go through Eigen (to BLAS under EIGEN_USE_BLAS). Tasks spread over
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
#include "prefopt/core/transformer_ops.hpp"

namespace prefopt::backends::detail {

// A checked layout: token offset and probability-block offset of every row.
struct attention_plan {
  std::vector<std::size_t> offset, prob_offset;  // rows + 1 each
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
    p.prob_offset.resize(rows + 1);
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
        p.prob_offset[r] = p.prob_offset[r - 1] + p.q_heads * l * l;
      }
    }
    for (std::size_t t = 0; t < p.tokens; ++t)
      if (lay.segment[t] < -1) fail("layout.segment[" + std::to_string(t) + "] is " + std::to_string(lay.segment[t]));
    return p;
  }
  std::size_t q_size() const { return tokens * q_heads * head_dim; }
  std::size_t kv_size() const { return tokens * kv_heads * head_dim; }
  std::size_t probs_size() const { return prob_offset.back(); }
  std::size_t rows() const { return offset.size() - 1; }
};

struct eigen_attention_ops {
  void attention_forward(std::span<const float> q, std::span<const float> k, std::span<const float> v,
                         const attention_layout& lay, const attention_shape& sh, std::span<float> out,
                         std::span<float> probs) const {
    const char* op = "attention_forward";
    const attention_plan p = attention_plan::make(lay, sh, op);
    require_size(q.size(), p.q_size(), op, "q");
    require_size(k.size(), p.kv_size(), op, "k");
    require_size(v.size(), p.kv_size(), op, "v");
    require_size(out.size(), p.q_size(), op, "out");
    require_size(probs.size(), p.probs_size(), op, "probs");
    const std::size_t Hq = p.q_heads, Hkv = p.kv_heads, D = p.head_dim, group = Hq / Hkv;
    const int qld = int(Hq * D), kvld = int(Hkv * D);
    const float scale = 1.0f / std::sqrt(float(D));
    const std::int32_t* seg = lay.segment.data();
    const std::ptrdiff_t tasks = std::ptrdiff_t(p.rows() * Hq);
    const bool threaded = p.q_size() * p.max_length > parallel_grain && blas_inside_openmp_ok();
#pragma omp parallel for schedule(dynamic, 1) if (threaded)
    for (std::ptrdiff_t task = 0; task < tasks; ++task) {
      const std::size_t r = std::size_t(task) / Hq, h = std::size_t(task) % Hq, g = h / group;
      const std::size_t o = p.offset[r], L = p.length(r);
      if (L == 0) continue;
      const int l = int(L), d = int(D);
      const cmatrix_map Q(q.data() + o * Hq * D + h * D, l, d, Eigen::OuterStride<>(qld));
      const cmatrix_map K(k.data() + o * Hkv * D + g * D, l, d, Eigen::OuterStride<>(kvld));
      const cmatrix_map V(v.data() + o * Hkv * D + g * D, l, d, Eigen::OuterStride<>(kvld));
      matrix_map P(probs.data() + p.prob_offset[r] + h * L * L, l, l, Eigen::OuterStride<>(l));
      P.noalias() = scale * (Q * K.transpose());
      for (std::size_t i = 0; i < L; ++i) masked_softmax(P.data() + i * L, seg + o, i, L);
      matrix_map(out.data() + o * Hq * D + h * D, l, d, Eigen::OuterStride<>(qld)).noalias() = P * V;
    }
  }

  void attention_backward(std::span<const float> dout, std::span<const float> q, std::span<const float> k,
                          std::span<const float> v, std::span<const float> probs, const attention_layout& lay,
                          const attention_shape& sh, std::span<float> dq, std::span<float> dk,
                          std::span<float> dv) const {
    const char* op = "attention_backward";
    const attention_plan p = attention_plan::make(lay, sh, op);
    require_size(dout.size(), p.q_size(), op, "dout");
    require_size(q.size(), p.q_size(), op, "q");
    require_size(k.size(), p.kv_size(), op, "k");
    require_size(v.size(), p.kv_size(), op, "v");
    require_size(probs.size(), p.probs_size(), op, "probs");
    require_size(dq.size(), p.q_size(), op, "dq");
    require_size(dk.size(), p.kv_size(), op, "dk");
    require_size(dv.size(), p.kv_size(), op, "dv");
    const std::size_t Hq = p.q_heads, Hkv = p.kv_heads, D = p.head_dim, group = Hq / Hkv;
    const int qld = int(Hq * D), kvld = int(Hkv * D);
    const float scale = 1.0f / std::sqrt(float(D));
    const std::ptrdiff_t tasks = std::ptrdiff_t(p.rows() * Hkv);
    const bool threaded = p.q_size() * p.max_length > parallel_grain && blas_inside_openmp_ok();
#pragma omp parallel if (threaded)
    {
      std::vector<float> scratch(p.max_length * p.max_length);
#pragma omp for schedule(dynamic, 1)
      for (std::ptrdiff_t task = 0; task < tasks; ++task) {
        const std::size_t r = std::size_t(task) / Hkv, g = std::size_t(task) % Hkv;
        const std::size_t o = p.offset[r], L = p.length(r);
        if (L == 0) continue;
        const int l = int(L), d = int(D);
        const cmatrix_map K(k.data() + o * Hkv * D + g * D, l, d, Eigen::OuterStride<>(kvld));
        const cmatrix_map V(v.data() + o * Hkv * D + g * D, l, d, Eigen::OuterStride<>(kvld));
        matrix_map dK(dk.data() + o * Hkv * D + g * D, l, d, Eigen::OuterStride<>(kvld));
        matrix_map dV(dv.data() + o * Hkv * D + g * D, l, d, Eigen::OuterStride<>(kvld));
        matrix_map dS(scratch.data(), l, l, Eigen::OuterStride<>(l));
        dK.setZero();
        dV.setZero();
        for (std::size_t h = g * group; h < (g + 1) * group; ++h) {
          const cmatrix_map P(probs.data() + p.prob_offset[r] + h * L * L, l, l, Eigen::OuterStride<>(l));
          const cmatrix_map dO(dout.data() + o * Hq * D + h * D, l, d, Eigen::OuterStride<>(qld));
          const cmatrix_map Q(q.data() + o * Hq * D + h * D, l, d, Eigen::OuterStride<>(qld));
          dV.noalias() += P.transpose() * dO;
          dS.noalias() = dO * V.transpose();  // dP
          for (int i = 0; i < l; ++i) {
            const float rs = P.row(i).dot(dS.row(i));
            dS.row(i) = P.row(i).cwiseProduct((dS.row(i).array() - rs).matrix());
          }
          matrix_map(dq.data() + o * Hq * D + h * D, l, d, Eigen::OuterStride<>(qld)).noalias() = scale * (dS * K);
          dK.noalias() += scale * (dS.transpose() * Q);
        }
      }
    }
  }

private:
  // Row i of a score block in place → softmax over the keys query i may see (zeros elsewhere).
  static void masked_softmax(float* s, const std::int32_t* seg, std::size_t i, std::size_t L) {
    const std::int32_t si = seg[i];
    if (si < 0) {  // padding: attends to nothing
      std::fill(s, s + L, 0.0f);
      return;
    }
    const std::size_t n = i + 1;
    for (std::size_t j = 0; j < n; ++j) s[j] = (seg[j] == si || seg[j] == 0) ? s[j] : -INFINITY;
    array_map row(s, Eigen::Index(n));
    const float mx = row.maxCoeff();  // finite: s[i] itself is visible
    row = (row - mx).exp();
    for (std::size_t j = 0; j < n; ++j) s[j] = (seg[j] == si || seg[j] == 0) ? s[j] : 0.0f;
    row /= row.sum();
    std::fill(s + n, s + L, 0.0f);
  }
};

} // namespace prefopt::backends::detail
