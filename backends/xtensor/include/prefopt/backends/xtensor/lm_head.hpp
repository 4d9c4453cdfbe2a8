// prefopt/backends/xtensor/lm_head.hpp — xtensor backend: LM-head row statistics and the logits gradient.
//
// Row by row in double, numpy style: m = max(z), e = exp(z − m), S = sum(e), lse = m + log S,
// logp = z[target] − lse, log Σp² = log sum(e²) − 2 log S, entropy = log S − sum(e·(z − m))/S,
// mean_logit = mean(z), top1 = no entry beats the target (device_math::beats_target: larger, or
// equal at an earlier index); dlogits = dlogp·(onehot(target) − exp(z − lse)).
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <xtensor/xmath.hpp>
#include <xtensor/xreducer.hpp>
#include <xtensor/xtensor.hpp>

#include "prefopt/backends/xtensor/common.hpp"
#include "prefopt/core/device_math.hpp"
#include "prefopt/core/transformer_ops.hpp"

namespace prefopt::backends::xdetail {

struct xtensor_lm_head_ops {
  void lm_head_stats(std::span<const float> logits, std::span<const std::int32_t> targets, int rows, int V,
                     const prefopt::lm_head_stats& st) const {
    const char* op = "lm_head_stats";
    const op_checks::row_dims d = op_checks::lm_head_stats(logits.size(), targets.size(), rows, V, st);
    const std::size_t R = d.rows, n = d.cols;
    check_ids(targets, R, n, true, op, "targets");
    for (std::size_t r = 0; r < R; ++r) {
      const xt::xtensor<double, 1> z = xt::cast<double>(vector(logits.data() + r * n, n));
      const double m = xt::amax(z)();
      const xt::xtensor<double, 1> e = xt::exp(z - m);
      const double log_s = std::log(xt::sum(e)()), lse = m + log_s;
      st.lse[r] = float(lse);
      st.logp[r] = targets[r] >= 0 ? float(z(std::size_t(targets[r])) - lse) : 0.0f;
      if (!st.log_sum_sq.empty()) st.log_sum_sq[r] = float(std::log(xt::sum(e * e)()) - 2.0 * log_s);
      if (!st.entropy.empty()) st.entropy[r] = float(log_s - xt::sum(xt::where(e > 0.0, e * (z - m), 0.0))() / std::exp(log_s));
      if (!st.mean_logit.empty()) st.mean_logit[r] = float(xt::mean(z)());
      if (!st.top1.empty()) {
        bool top = false;
        if (targets[r] >= 0) {
          const int t = targets[r];
          const float zt = logits[r * n + std::size_t(t)];
          bool beaten = false;
          for (std::size_t j = 0; j < n && !beaten; ++j) beaten = device_math::beats_target(logits[r * n + j], int(j), zt, t);
          top = device_math::target_is_top1(beaten, zt);
        }
        st.top1[r] = top ? 1.0f : 0.0f;
      }
    }
  }

  void lm_head_backward(std::span<const float> logits, std::span<const std::int32_t> targets,
                        std::span<const float> lse, std::span<const float> dlogp, int rows, int V,
                        std::span<float> dlogits) const {
    const char* op = "lm_head_backward";
    const op_checks::row_dims d =
        op_checks::lm_head_backward(logits.size(), targets.size(), lse.size(), dlogp.size(), rows, V, dlogits.size());
    const std::size_t R = d.rows, n = d.cols;
    check_ids(targets, R, n, true, op, "targets");
    for (std::size_t r = 0; r < R; ++r) {
      auto dz = vector(dlogits.data() + r * n, n);
      if (targets[r] < 0) {
        dz.fill(0.0f);
        continue;
      }
      dz = -dlogp[r] * xt::exp(vector(logits.data() + r * n, n) - lse[r]);
      dz(std::size_t(targets[r])) += dlogp[r];
    }
  }
};

} // namespace prefopt::backends::xdetail
