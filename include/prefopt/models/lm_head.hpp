// prefopt/models/lm_head.hpp — the fused, chunked language-model head.
//
// For H hidden rows h [H × C] (only the rows that predict a scored token) and the output
// embedding W [V × C], the head needs per row the target's log-prob log softmax(h·Wᵀ)[target].
// It never holds the H × V logits: rows go through in chunks of `chunk_rows`; each chunk's
// logits [chunk × V] are computed (one gemm), reduced to the row statistics (logsumexp, target
// logit, optional WPO/entropy/mean-logit statistics) and dropped. Backward recomputes a chunk's
// logits (not the first chunk's when the forward kept them: see forward), turns them into
// d logits = dlogp·(onehot(target) − softmax), and accumulates
// dh = dlogits·W and dW += dlogitsᵀ·h. Peak head memory is chunk × V floats, not H × V
// (the Liger-Kernel idea, here with the loss's gradient arriving after the forward pass).
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>

#include "prefopt/core/transformer_ops.hpp"

namespace prefopt::models {

template <class B> class lm_head_chunked {
public:
  explicit lm_head_chunked(int chunk_rows = 128) : chunk_(std::max(1, chunk_rows)) {}
  int chunk_rows() const { return chunk_; }
  void set_chunk_rows(int r) { chunk_ = std::max(1, r); }
  // Floats of logits the head holds at once for vocabulary V.
  std::size_t peak_floats(int rows, int vocab) const { return std::size_t(std::min(rows, chunk_)) * std::size_t(vocab); }

  // stats spans cover all H rows; empty optional spans are not computed. keep_for_backward: the
  // next backward call gets the same h, w and targets, unchanged; it then takes the first chunk's
  // logits from the scratch instead of recomputing them (chunks run last to first here, so the
  // scratch ends up holding chunk 0; with a single chunk the backward recomputes nothing).
  void forward(B& be, std::span<const float> h, std::span<const float> w, std::span<const std::int32_t> targets, int rows,
               int hidden, int vocab, const lm_head_stats& stats, bool keep_for_backward = false) {
    ensure(be, rows, vocab);
    kept_ = {};
    for (int r0 = (rows - 1) / chunk_ * chunk_; rows > 0 && r0 >= 0; r0 -= chunk_) {
      const int n = std::min(chunk_, rows - r0);
      auto logits = scratch_.span().first(std::size_t(n) * vocab);
      be.gemm({.trans_a = false, .trans_b = true, .m = n, .n = vocab, .k = hidden, .lda = hidden, .ldb = hidden,
               .ldc = vocab},
              h.subspan(std::size_t(r0) * hidden, std::size_t(n) * hidden), w, logits);
      be.lm_head_stats(logits, targets.subspan(std::size_t(r0), std::size_t(n)), n, vocab, slice(stats, r0, n));
    }
    if (keep_for_backward && rows > 0) kept_ = {h.data(), w.data(), targets.data(), rows, hidden, vocab, chunk_};
  }

  // dh = Σ_chunks dlogits·W (written, not accumulated); dW += dlogitsᵀ·h unless dw is empty.
  void backward(B& be, std::span<const float> h, std::span<const float> w, std::span<const std::int32_t> targets,
                std::span<const float> lse, std::span<const float> dlogp, int rows, int hidden, int vocab,
                std::span<float> dh, std::span<float> dw) {
    const bool reuse = kept_ == key{h.data(), w.data(), targets.data(), rows, hidden, vocab, chunk_};
    kept_ = {};
    ensure(be, rows, vocab);
    for (int r0 = 0; r0 < rows; r0 += chunk_) {
      const int n = std::min(chunk_, rows - r0);
      auto logits = scratch_.span().first(std::size_t(n) * vocab);
      const auto hc = h.subspan(std::size_t(r0) * hidden, std::size_t(n) * hidden);
      if (!(reuse && r0 == 0))  // chunk 0's logits are still in the scratch after a keep_for_backward forward
        be.gemm({.trans_a = false, .trans_b = true, .m = n, .n = vocab, .k = hidden, .lda = hidden, .ldb = hidden,
                 .ldc = vocab},
                hc, w, logits);
      be.lm_head_backward(logits, targets.subspan(std::size_t(r0), std::size_t(n)), lse.subspan(std::size_t(r0), std::size_t(n)),
                          dlogp.subspan(std::size_t(r0), std::size_t(n)), n, vocab, logits);
      be.gemm({.m = n, .n = hidden, .k = vocab, .lda = vocab, .ldb = hidden, .ldc = hidden}, logits, w,
              dh.subspan(std::size_t(r0) * hidden, std::size_t(n) * hidden));
      if (!dw.empty())
        be.gemm({.trans_a = true, .m = vocab, .n = hidden, .k = n, .lda = vocab, .ldb = hidden, .ldc = hidden,
                 .alpha = 1.0f, .beta = 1.0f},
                logits, hc, dw);
    }
  }

private:
  // What the scratch's chunk-0 logits were computed from (kept_for_backward), or all zero.
  struct key {
    const float *h = nullptr, *w = nullptr;
    const std::int32_t* targets = nullptr;
    int rows = 0, hidden = 0, vocab = 0, chunk = 0;
    bool operator==(const key&) const = default;
  };
  static std::span<float> part(std::span<float> s, int r0, int n) {
    return s.empty() ? s : s.subspan(std::size_t(r0), std::size_t(n));
  }
  static lm_head_stats slice(const lm_head_stats& s, int r0, int n) {
    return {part(s.lse, r0, n), part(s.logp, r0, n), part(s.log_sum_sq, r0, n), part(s.entropy, r0, n),
            part(s.mean_logit, r0, n)};
  }
  void ensure(B& be, int rows, int vocab) {
    const std::size_t need = std::size_t(std::min(rows, chunk_)) * std::size_t(vocab);
    if (scratch_.size() < need) scratch_ = be.template allocate<float>(need);
  }
  int chunk_;
  typename B::template buffer<float> scratch_;
  key kept_{};
};

} // namespace prefopt::models
