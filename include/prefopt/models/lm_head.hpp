// prefopt/models/lm_head.hpp — the fused, chunked language-model head.
//
// For H hidden rows h [H × C] (only the rows that predict a scored token) and the output
// embedding W [V × C], the head needs per row the target's log-prob log softmax(h·Wᵀ)[target].
// It never holds the H × V logits: rows go through in chunks (rows_per_chunk); each chunk's
// logits [chunk × V] are computed (one gemm), reduced to the row statistics (logsumexp, target
// logit, optional WPO/entropy/mean-logit/top-1 statistics) and dropped. Backward recomputes a chunk's
// logits (not the first chunk's when the forward kept them: see forward), turns them into
// d logits = dlogp·(onehot(target) − softmax), and accumulates
// dh = dlogits·W and dW += dlogitsᵀ·h. Peak head memory is chunk × V floats, not H × V
// (the Liger-Kernel idea, here with the loss's gradient arriving after the forward pass).
// fused() is the variant without the recompute, for losses whose gradient is known per group of rows
// (a preference pair) as soon as that group's log-probs are: see its comment.
// w16 (optional, every entry point): W's bf16 copy under precision bf16 (core/bf16.hpp, "The weight
// copy"); the products with W then read it instead of rounding W per gemm.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "prefopt/core/transformer_ops.hpp"

namespace prefopt::models {

template <class B> class lm_head_chunked {
public:
  // Rows per chunk: chunk_rows, or with 0 (the default) as many as keep a chunk's logits within
  // auto_chunk_floats (2^24 floats, 64 MiB), but at least auto_min_rows. Few rows per chunk cost
  // speed: every chunk's gemms stream all of W for little work (measured, 2048 × 768 rows, V = 32000,
  // one thread: 128-row chunks ran the head's gemms at 71-81 GFLOP/s, 512-row chunks at 86-89).
  static constexpr std::size_t auto_chunk_floats = std::size_t(1) << 24;
  static constexpr int auto_min_rows = 128;
  explicit lm_head_chunked(int chunk_rows = 0) : chunk_(std::max(0, chunk_rows)) {}
  int chunk_rows() const { return chunk_; }  // 0: automatic
  void set_chunk_rows(int r) { chunk_ = std::max(0, r); }
  // The rows per chunk used for vocabulary V.
  int rows_per_chunk(int vocab) const {
    if (chunk_ > 0) return chunk_;
    return int(std::max<std::size_t>(auto_min_rows, auto_chunk_floats / std::size_t(std::max(1, vocab))));
  }
  // Floats of logits the head holds at once for vocabulary V.
  std::size_t peak_floats(int rows, int vocab) const {
    return std::size_t(std::min(rows, rows_per_chunk(vocab))) * std::size_t(vocab);
  }

  // stats spans cover all H rows; empty optional spans are not computed. keep_for_backward: the
  // next backward call gets the same h, w and targets, unchanged; it then takes the first chunk's
  // logits from the scratch instead of recomputing them (chunks run last to first here, so the
  // scratch ends up holding chunk 0; with a single chunk the backward recomputes nothing).
  void forward(B& be, std::span<const float> h, std::span<const float> w, std::span<const std::int32_t> targets, int rows,
               int hidden, int vocab, const lm_head_stats& stats, bool keep_for_backward = false,
               std::span<const std::uint16_t> w16 = {}) {
    check_copy(w, w16);
    const int chunk = rows_per_chunk(vocab);
    ensure(be, rows, vocab);
    kept_ = {};
    for (int r0 = (rows - 1) / chunk * chunk; rows > 0 && r0 >= 0; r0 -= chunk) {
      const int n = std::min(chunk, rows - r0);
      auto logits = scratch_.span().first(std::size_t(n) * vocab);
      gemm_weight(be, {.trans_a = false, .trans_b = true, .m = n, .n = vocab, .k = hidden, .lda = hidden, .ldb = hidden,
                       .ldc = vocab},
                  h.subspan(std::size_t(r0) * hidden, std::size_t(n) * hidden), w, w16, logits);
      be.lm_head_stats(logits, targets.subspan(std::size_t(r0), std::size_t(n)), n, vocab, slice(stats, r0, n));
    }
    if (keep_for_backward && rows > 0) kept_ = {h.data(), w.data(), targets.data(), rows, hidden, vocab, chunk};
  }

  // dh = Σ_chunks dlogits·W (written, not accumulated); dW += dlogitsᵀ·h unless dw is empty.
  void backward(B& be, std::span<const float> h, std::span<const float> w, std::span<const std::int32_t> targets,
                std::span<const float> lse, std::span<const float> dlogp, int rows, int hidden, int vocab,
                std::span<float> dh, std::span<float> dw, std::span<const std::uint16_t> w16 = {}) {
    check_copy(w, w16);
    const int chunk = rows_per_chunk(vocab);
    const bool reuse = kept_ == key{h.data(), w.data(), targets.data(), rows, hidden, vocab, chunk};
    kept_ = {};
    ensure(be, rows, vocab);
    for (int r0 = 0; r0 < rows; r0 += chunk) {
      const int n = std::min(chunk, rows - r0);
      auto logits = scratch_.span().first(std::size_t(n) * vocab);
      const auto hc = h.subspan(std::size_t(r0) * hidden, std::size_t(n) * hidden);
      if (!(reuse && r0 == 0))  // chunk 0's logits are still in the scratch after a keep_for_backward forward
        gemm_weight(be, {.trans_a = false, .trans_b = true, .m = n, .n = vocab, .k = hidden, .lda = hidden, .ldb = hidden,
                         .ldc = vocab},
                    hc, w, w16, logits);
      be.lm_head_backward(logits, targets.subspan(std::size_t(r0), std::size_t(n)), lse.subspan(std::size_t(r0), std::size_t(n)),
                          dlogp.subspan(std::size_t(r0), std::size_t(n)), n, vocab, logits);
      gemm_weight(be, {.m = n, .n = hidden, .k = vocab, .lda = vocab, .ldb = hidden, .ldc = hidden}, logits, w, w16,
                  dh.subspan(std::size_t(r0) * hidden, std::size_t(n) * hidden));
      if (!dw.empty())
        be.gemm({.trans_a = true, .m = vocab, .n = hidden, .k = n, .lda = vocab, .ldb = hidden, .ldc = hidden,
                 .alpha = 1.0f, .beta = 1.0f},
                logits, hc, dw);
    }
  }

  // Forward and backward in one pass, no recompute. Rows come in groups (group g: rows
  // [bounds[g], bounds[g + 1]), e.g. the chosen and rejected rows of one pair); a chunk holds whole
  // groups, as many as fit in rows_per_chunk. Per chunk: logits (one gemm), the statistics into
  // `stats`, then grad(g0, g1) fills dlogp (device, all rows) for groups [g0, g1) from their
  // finished statistics, and the chunk's logits become d logits in place: dh = dlogits·W
  // (written), dW += dlogitsᵀ·h unless dw is empty. A group larger than a chunk alone runs as
  // forward + backward above (its statistics first, then the recompute) for that group only.
  // Head flops: 2 gemms of rows × V × C per pass less than forward() + backward() (+ dW's).
  void fused(B& be, std::span<const float> h, std::span<const float> w, std::span<const std::int32_t> targets,
             std::span<const int> bounds, int hidden, int vocab, const lm_head_stats& stats, std::span<float> dlogp,
             const std::function<void(std::size_t, std::size_t)>& grad, std::span<float> dh, std::span<float> dw,
             std::span<const std::uint16_t> w16 = {}) {
    check_copy(w, w16);
    const int chunk = rows_per_chunk(vocab);
    const std::size_t G = bounds.empty() ? 0 : bounds.size() - 1;
    const int rows = G == 0 ? 0 : bounds[G];
    ensure(be, rows, vocab);
    kept_ = {};
    const auto sub = [](auto s, int r0, int n, int width) {
      return s.subspan(std::size_t(r0) * std::size_t(width), std::size_t(n) * std::size_t(width));
    };
    for (std::size_t g = 0; g < G;) {
      const int r0 = bounds[g];
      std::size_t g1 = g;
      while (g1 < G && bounds[g1 + 1] - r0 <= chunk) ++g1;
      if (g1 == g) {  // one group larger than a chunk: two passes over its rows
        const int n = bounds[g + 1] - r0;
        const auto hg = sub(h, r0, n, hidden);
        const auto tg = targets.subspan(std::size_t(r0), std::size_t(n));
        const lm_head_stats sg = slice(stats, r0, n);
        forward(be, hg, w, tg, n, hidden, vocab, sg, true, w16);
        grad(g, g + 1);
        backward(be, hg, w, tg, sg.lse, sub(std::span<const float>(dlogp), r0, n, 1), n, hidden, vocab, sub(dh, r0, n, hidden),
                 dw, w16);
        g = g + 1;
        continue;
      }
      const int n = bounds[g1] - r0;
      if (n > 0) {
        auto logits = scratch_.span().first(std::size_t(n) * vocab);
        const auto hc = sub(h, r0, n, hidden);
        const auto tc = targets.subspan(std::size_t(r0), std::size_t(n));
        const lm_head_stats sc = slice(stats, r0, n);
        gemm_weight(be, {.trans_a = false, .trans_b = true, .m = n, .n = vocab, .k = hidden, .lda = hidden, .ldb = hidden,
                         .ldc = vocab},
                    hc, w, w16, logits);
        be.lm_head_stats(logits, tc, n, vocab, sc);
        grad(g, g1);
        be.lm_head_backward(logits, tc, sc.lse, sub(std::span<const float>(dlogp), r0, n, 1), n, vocab, logits);
        gemm_weight(be, {.m = n, .n = hidden, .k = vocab, .lda = vocab, .ldb = hidden, .ldc = hidden}, logits, w, w16,
                    sub(dh, r0, n, hidden));
        if (!dw.empty())
          be.gemm({.trans_a = true, .m = vocab, .n = hidden, .k = n, .lda = vocab, .ldb = hidden, .ldc = hidden,
                   .alpha = 1.0f, .beta = 1.0f},
                  logits, hc, dw);
      } else {
        grad(g, g1);
      }
      g = g1;
    }
  }

private:
  // The weight copy, when given, holds w's values in bf16 (core/bf16.hpp, "The weight copy").
  static void check_copy(std::span<const float> w, std::span<const std::uint16_t> w16) {
    if (!w16.empty() && w16.size() != w.size())
      throw shape_error("lm_head_chunked: w16", "the bf16 copy of w must have w's " + std::to_string(w.size()) + " elements");
  }
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
            part(s.mean_logit, r0, n), part(s.top1, r0, n)};
  }
  void ensure(B& be, int rows, int vocab) {
    const std::size_t need = peak_floats(rows, vocab);
    if (scratch_.size() < need) scratch_ = be.template allocate<float>(need);
  }
  int chunk_;
  typename B::template buffer<float> scratch_;
  key kept_{};
};

} // namespace prefopt::models
