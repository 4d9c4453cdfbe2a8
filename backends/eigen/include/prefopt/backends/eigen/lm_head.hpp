// prefopt/backends/eigen/lm_head.hpp — eigen backend: LM-head row statistics and the logits gradient.
//
// lm_head_stats walks each row of logits once, in blocks of block_elements: a running max m
// (sums rescaled by e^(m_old − m_new) when it grows), and per block the vectorized exponentials
// (float, as torch) and the sums S = Σ e^(z−m), S2 = Σ e^(2(z−m)), Z = Σ e^(z−m)·(z−m):
// vectorized float sums of 128 values, added in double (chunked_sum); Σ z in double (logits near
// −FLT_MAX, as masks, would overflow a float partial sum).
//   lse = m + log S, log Σ p² = log S2 − 2 log S, entropy = log S − Z/S, mean = Σz / V.
// top1 (the target is the first index of the row maximum) compares the target logit with the
// running max m and with the max of the entries before the target: one more read of at most the
// row, while it is still in cache.
// A −∞ logit (a masked vocabulary entry) has p = 0 and adds nothing to S, S2 or Z (exp_or_zero);
// its mean is −∞ and its logp, if it is the target, −∞.
// The optional sums run only when their output span is non-empty. OpenMP across rows.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>

#include "prefopt/backends/eigen/common.hpp"
#include "prefopt/core/device_math.hpp"
#include "prefopt/core/transformer_ops.hpp"

namespace prefopt::backends::detail {

inline void check_targets(std::span<const std::int32_t> targets, std::size_t rows, std::size_t V, const char* op) {
  require_size(targets.size(), rows, op, "targets");
  for (std::size_t r = 0; r < rows; ++r)
    if (targets[r] >= 0 && std::size_t(targets[r]) >= V)
      throw shape_error(std::string("backend op '") + op + "': argument 'targets'",
                        "element " + std::to_string(r) + " is " + std::to_string(targets[r]) + ", vocabulary size is " +
                            std::to_string(V));
}

// Σ x: float sums of 128 consecutive values (vectorized), accumulated in double.
template <class E> double chunked_sum(const E& x) {
  constexpr Eigen::Index chunk = 128;
  double s = 0.0;
  for (Eigen::Index k = 0; k < x.size(); k += chunk) s += double(x.segment(k, std::min(chunk, x.size() - k)).sum());
  return s;
}

// e^d for d = z − m ≤ 0, exactly 0 where float's exp underflows (d < −104, −∞ included); NaN stays
// NaN. Written out because Eigen's vectorized exp clamps its argument at −88.7 and returns ~3e−39,
// not 0, for −∞ or for a logit near −FLT_MAX (masks written as torch.finfo.min): p·(z − m) was then
// −∞ (entropy +∞) or about −1 per masked entry, and dlogits not 0 where p = 0.
inline constexpr float exp_underflow = -104.0f;
template <class E> auto exp_or_zero(const E& d) { return (d < exp_underflow).select(0.0f, d.exp()); }

struct eigen_lm_head_ops {
  void lm_head_stats(std::span<const float> logits, std::span<const std::int32_t> targets, int rows, int V,
                     const prefopt::lm_head_stats& st) const {
    const char* op = "lm_head_stats";
    const op_checks::row_dims d = op_checks::lm_head_stats(logits.size(), targets.size(), rows, V, st);
    const std::size_t R = d.rows, n = d.cols;
    check_targets(targets, R, n, op);
    const bool want_sq = !st.log_sum_sq.empty(), want_ent = !st.entropy.empty(), want_mean = !st.mean_logit.empty(),
               want_top1 = !st.top1.empty();
#pragma omp parallel for schedule(static) if (R * n > parallel_grain)
    for (std::ptrdiff_t r = 0; r < std::ptrdiff_t(R); ++r) {
      const float* z = logits.data() + std::size_t(r) * n;
      float m = -INFINITY;
      double s = 0.0, s2 = 0.0, sz = 0.0, zsum = 0.0;
      for (std::size_t b0 = 0; b0 < n; b0 += block_elements) {
        const Eigen::Index len = Eigen::Index(std::min(block_elements, n - b0));
        const carray_map Z(z + b0, len);
        if (want_mean) zsum += Z.cast<double>().sum();
        const float bm = Z.maxCoeff();
        if (bm > m) {
          if (s > 0.0) {
            const double shift = double(m) - double(bm), f = std::exp(shift);
            sz = f * (sz + shift * s);
            s *= f;
            s2 *= f * f;
          }
          m = bm;
        }
        if (m == -INFINITY) continue;  // only −∞ logits so far: they add nothing
        const block_array e = exp_or_zero(Z - m);
        s += chunked_sum(e);
        if (want_sq) s2 += chunked_sum(e.square());
        if (want_ent) sz += chunked_sum((e > 0.0f).select(e * (Z - m), 0.0f));
      }
      const double log_s = std::log(s), lse = double(m) + log_s;
      const std::int32_t tr = targets[std::size_t(r)];
      st.lse[std::size_t(r)] = float(lse);
      st.logp[std::size_t(r)] = tr >= 0 ? float(double(z[tr]) - lse) : 0.0f;
      if (want_sq) st.log_sum_sq[std::size_t(r)] = float(std::log(s2) - 2.0 * log_s);
      if (want_ent) st.entropy[std::size_t(r)] = float(log_s - sz / s);
      if (want_mean) st.mean_logit[std::size_t(r)] = float(zsum / double(n));
      if (want_top1) {
        bool top = false;
        if (tr >= 0) {
          const float zt = z[tr];
          // beaten: some logit is larger (zt < m), or an earlier one is as large
          const bool beaten = zt < m || (tr > 0 && carray_map(z, Eigen::Index(tr)).maxCoeff() >= zt);
          top = device_math::target_is_top1(beaten, zt);
        }
        st.top1[std::size_t(r)] = top ? 1.0f : 0.0f;
      }
    }
  }

  // dlogits[r,:] = dlogp[r]·(onehot(target_r) − exp(z_r − lse_r)); zero rows where target_r < 0.
  void lm_head_backward(std::span<const float> logits, std::span<const std::int32_t> targets,
                        std::span<const float> lse, std::span<const float> dlogp, int rows, int V,
                        std::span<float> dlogits) const {
    const char* op = "lm_head_backward";
    const op_checks::row_dims d =
        op_checks::lm_head_backward(logits.size(), targets.size(), lse.size(), dlogp.size(), rows, V, dlogits.size());
    const std::size_t R = d.rows, n = d.cols;
    check_targets(targets, R, n, op);
#pragma omp parallel for schedule(static) if (R * n > parallel_grain)
    for (std::ptrdiff_t r = 0; r < std::ptrdiff_t(R); ++r) {
      const std::size_t o = std::size_t(r) * n;
      array_map dz(dlogits.data() + o, Eigen::Index(n));
      const std::int32_t tr = targets[std::size_t(r)];
      if (tr < 0) {
        dz.setZero();
        continue;
      }
      const float g = dlogp[std::size_t(r)];
      dz = -g * exp_or_zero(carray_map(logits.data() + o, Eigen::Index(n)) - lse[std::size_t(r)]);
      dz[tr] += g;
    }
  }
};

} // namespace prefopt::backends::detail
