// prefopt/backends/cuda/lm_head.hpp — cuda backend: LM-head row statistics and the logits
// gradient (kernels in backends/cuda/src/lm_head.cu; the chunking is models/lm_head.hpp's).
#pragma once

#include <span>
#include <string>

#include "prefopt/backends/cuda/common.hpp"
#include "prefopt/core/transformer_ops.hpp"

namespace prefopt::backends::cuda_detail {

template <class Self> struct cuda_lm_head_ops {
  void lm_head_stats(std::span<const float> logits, std::span<const std::int32_t> targets, int rows, int V,
                     const prefopt::lm_head_stats& st) const {
    const char* op = "lm_head_stats";
    const op_checks::row_dims d = op_checks::lm_head_stats(logits.size(), targets.size(), rows, V, st);
    const std::size_t R = d.rows;
    if (R == 0) return;
    context& cx = static_cast<const Self&>(*this).ctx();
    reset_flag(cx, op);
    auto opt = [](std::span<float> s) { return s.empty() ? nullptr : s.data(); };
    check(cuda_kernels::lm_head_stats(logits.data(), targets.data(), rows, V, st.lse.data(), st.logp.data(),
                                      opt(st.log_sum_sq), opt(st.entropy), opt(st.mean_logit), opt(st.top1), cx.flag(),
                                      cx.stream()),
          op);
    throw_if_flagged(cx, op, "targets", "is at least the vocabulary size " + std::to_string(V));
  }
  void lm_head_backward(std::span<const float> logits, std::span<const std::int32_t> targets, std::span<const float> lse,
                        std::span<const float> dlogp, int rows, int V, std::span<float> dlogits) const {
    const char* op = "lm_head_backward";
    const op_checks::row_dims d =
        op_checks::lm_head_backward(logits.size(), targets.size(), lse.size(), dlogp.size(), rows, V, dlogits.size());
    const std::size_t R = d.rows;
    if (R == 0) return;
    context& cx = static_cast<const Self&>(*this).ctx();
    reset_flag(cx, op);
    check(cuda_kernels::lm_head_backward(logits.data(), targets.data(), lse.data(), dlogp.data(), rows, V, dlogits.data(),
                                         cx.flag(), cx.stream()),
          op);
    throw_if_flagged(cx, op, "targets", "is at least the vocabulary size " + std::to_string(V));
  }
};

} // namespace prefopt::backends::cuda_detail
