// prefopt/models/detail/transformer_head.hpp — transformer's LM head: the head part of forward
// (per-sequence sums, LD-DPO weights, WPO and token statistics), the fused head (forward_fused,
// backward_fused) and next_token_logprobs.
//
// The fused head needs each pair's rows adjacent; in the two-row layout chosen i and rejected i
// sit in different rows of the batch. Rather than gathering hidden rows into pair order and
// scattering d hidden back, order_rows_by_pair permutes the prediction indices themselves
// (predict_from, predict_token): the head's gather (embedding_forward of nf) then produces the
// rows in pair order and backward's scatter-add (embedding_backward) returns them, at no extra
// cost. The order within a sequence is kept, so every per-sequence sum adds the same terms in the
// same order as the unfused forward.
#pragma once

#include <algorithm>
#include <numeric>
#include <vector>

namespace prefopt::models {

template <Backend B, class Arch>
void transformer<B, Arch>::head_forward(const input_type& in, sequence_logps& out, const forward_options& opt,
                                        const head_gradient* fused) {
  const int T = T_, H = H_, C = cfg_.hidden, V = cfg_.vocab_size;
  const std::size_t t = std::size_t(T), hs = std::size_t(H), S = std::size_t(in.sequences);
  // The head, on the H rows that predict a scored token only.                                  [H × C]
  grow(hrows_, std::size_t(std::max(H, 1)) * C), grow(lse_, std::max(H, 1)), grow(logp_, std::max(H, 1)), grow(lss_, std::max(H, 1));
  be_.embedding_forward(predict_from_.span().first(hs), nf_.span().first(t * C), C, hrows_.span().first(hs * C));
  if (opt.token_stats) grow(entropy_, std::max(H, 1)), grow(mean_logit_, std::max(H, 1)), grow(top1_, std::max(H, 1));
  auto when = [&](bool on, fbuf& b) { return on ? b.span().first(hs) : std::span<float>{}; };
  lm_head_stats st{lse_.span().first(hs),          logp_.span().first(hs),
                   when(opt.wpo_weights, lss_),    when(opt.token_stats, entropy_),
                   when(opt.token_stats, mean_logit_), when(opt.token_stats, top1_)};
  // Token counts; LD-DPO weights tokens of a pair past the shorter completion by ld_alpha.
  out.tokens.assign(S, 0);
  for (std::size_t h = 0; h < hs; ++h) ++out.tokens[std::size_t(predict_sequence_[h])];
  token_weight_.assign(hs, 1.0f);
  if (opt.ld_alpha) {
    if (S % 2 != 0) throw shape_error("forward_options: ld_alpha", "LD-DPO needs a pair batch (chosen then rejected sequences)");
    std::vector<int> seen(S, 0);
    for (std::size_t h = 0; h < hs; ++h) {
      const std::size_t s = std::size_t(predict_sequence_[h]), partner = s < S / 2 ? s + S / 2 : s - S / 2;
      const int shared = std::min(out.tokens[s], out.tokens[partner]);
      if (seen[s]++ >= shared) token_weight_[h] = float(*opt.ld_alpha);
    }
  }
  // Per-sequence sums of rows [r0, r1) (their statistics are final).
  out.logp.assign(S, 0.0);
  out.wpo_aligned.clear();
  if (opt.wpo_weights) out.wpo_aligned.assign(S, 0.0);
  std::vector<float> lp(hs), ls(opt.wpo_weights ? hs : 0);
  auto add_rows = [&](std::size_t r0, std::size_t r1) {
    if (r1 == r0) return;
    be_.download(logp_.span().subspan(r0, r1 - r0), std::span<float>(lp).subspan(r0, r1 - r0));
    if (opt.wpo_weights) be_.download(lss_.span().subspan(r0, r1 - r0), std::span<float>(ls).subspan(r0, r1 - r0));
    for (std::size_t h = r0; h < r1; ++h) {
      const auto s = std::size_t(predict_sequence_[h]);
      out.logp[s] += double(token_weight_[h]) * lp[h];
      if (opt.wpo_weights) out.wpo_aligned[s] += double(lp[h]) - ls[h];
    }
  };
  const auto w = params_.span().subspan(layout_.head, std::size_t(V) * C);
  if (!fused) {
    head_.forward(be_, hrows_.span().first(hs * C), w, predict_token_.span().first(hs), H, C, V, st, opt.keep_activations,
                  wcopy(layout_.head, std::size_t(V) * C));
    add_rows(0, hs);
    if (opt.wpo_weights)
      for (std::size_t s = 0; s < S; ++s) out.wpo_aligned[s] /= std::max(1, out.tokens[s]);
  } else {
    // Per chunk of pairs: their sums, the loss's d / d log-prob, and d log p of each row (= d of its
    // sequence · its LD weight) written over the row's log-prob in logp_ (read already).
    ensure_grads();
    grow(dhrows_, std::size_t(std::max(H, 1)) * C);
    const std::size_t n = S / 2;
    std::vector<double> d(S, 0.0);
    std::vector<float> dl(hs);
    auto grad = [&](std::size_t g0, std::size_t g1) {
      const auto r0 = std::size_t(pair_bounds_[g0]), r1 = std::size_t(pair_bounds_[g1]);
      add_rows(r0, r1);
      if (opt.wpo_weights)
        for (std::size_t p = g0; p < g1; ++p)
          for (std::size_t s : {p, n + p}) out.wpo_aligned[s] /= std::max(1, out.tokens[s]);
      (*fused)(out, g0, g1 - g0, std::span<double>(d));
      for (std::size_t h = r0; h < r1; ++h) dl[h] = float(d[std::size_t(predict_sequence_[h])]) * token_weight_[h];
      if (r1 > r0) be_.upload(std::span<const float>(dl).subspan(r0, r1 - r0), logp_.span().subspan(r0, r1 - r0));
    };
    head_.fused(be_, hrows_.span().first(hs * C), w, predict_token_.span().first(hs), std::span<const int>(pair_bounds_), C,
                V, st, logp_.span().first(hs), grad, dhrows_.span().first(hs * C),
                base_trainable() ? grads_.span().subspan(layout_.head, std::size_t(V) * C) : std::span<float>{},
                wcopy(layout_.head, std::size_t(V) * C));
    head_done_ = true;
  }
  out.entropy_sum.clear(), out.mean_logit_sum.clear(), out.top1_sum.clear();
  if (opt.token_stats) {  // TRL's token metrics: per-sequence sums over the completion tokens
    std::vector<float> e(hs), m(hs), k(hs);
    be_.download(entropy_.span().first(hs), std::span<float>(e));
    be_.download(mean_logit_.span().first(hs), std::span<float>(m));
    be_.download(top1_.span().first(hs), std::span<float>(k));
    out.entropy_sum.assign(S, 0.0), out.mean_logit_sum.assign(S, 0.0), out.top1_sum.assign(S, 0.0);
    for (std::size_t h = 0; h < hs; ++h) {
      const auto s = std::size_t(predict_sequence_[h]);
      out.entropy_sum[s] += e[h], out.mean_logit_sum[s] += m[h], out.top1_sum[s] += k[h];
    }
  }
}

// Stable order of the predictions by (pair, chosen before rejected); re-uploads predict_from_ and
// predict_token_ in that order and fills pair_bounds_.
template <Backend B, class Arch> void transformer<B, Arch>::order_rows_by_pair(const input_type& in) {
  const int sequences = in.sequences;
  if (sequences % 2 != 0)
    throw shape_error("transformer::forward_fused", "needs a pair batch (chosen then rejected sequences), got " +
                                                        std::to_string(sequences) + " sequences");
  const std::size_t H = predict_sequence_.size(), n = std::size_t(sequences) / 2;
  auto slot = [&](std::size_t h) {  // 2·pair + (rejected ? 1 : 0)
    const auto s = std::size_t(predict_sequence_[h]);
    return s < n ? 2 * s : 2 * (s - n) + 1;
  };
  std::vector<std::size_t> order(H);
  std::iota(order.begin(), order.end(), std::size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return slot(a) < slot(b); });
  std::vector<std::int32_t> from(H), token(H), seq(H);
  pair_bounds_.assign(n + 1, 0);
  for (std::size_t i = 0; i < H; ++i) {
    from[i] = in.predict_from[order[i]], token[i] = in.predict_token[order[i]], seq[i] = predict_sequence_[order[i]];
    ++pair_bounds_[slot(order[i]) / 2 + 1];
  }
  for (std::size_t p = 0; p < n; ++p) pair_bounds_[p + 1] += pair_bounds_[p];
  predict_sequence_ = std::move(seq);
  be_.upload(std::span<const std::int32_t>(from), predict_from_.span().first(H));
  be_.upload(std::span<const std::int32_t>(token), predict_token_.span().first(H));
}

template <Backend B, class Arch>
void transformer<B, Arch>::forward_fused(const input_type& in, sequence_logps& out, const forward_options& opt,
                                         const head_gradient& grad) {
  if (!opt.keep_activations) throw error("transformer::forward_fused", "a fused head needs a training forward (keep_activations)");
  if (!grad) throw error("transformer::forward_fused", "no gradient callback");
  forward_impl(in, out, opt, &grad);
}

template <Backend B, class Arch> void transformer<B, Arch>::backward_fused() {
  if (!has_acts_ || !head_done_) throw error("transformer::backward_fused", "the last forward was not forward_fused");
  ensure_backward(std::max(T_, 1));
  head_done_ = false;
  backward_from_head_rows();
}

template <Backend B, class Arch>
std::vector<float> transformer<B, Arch>::next_token_logprobs(const input_type& in, std::span<const std::int32_t> at,
                                                             const forward_options& opt) {
  forward_options o = opt;
  o.keep_activations = false;
  o.wpo_weights = false;
  o.ld_alpha.reset();
  o.dropout_seed.reset();
  sequence_logps ignored;
  forward(in, ignored, o);
  const int C = cfg_.hidden, V = cfg_.vocab_size, R = int(at.size());
  for (std::size_t r = 0; r < at.size(); ++r)
    if (at[r] < 0 || std::size_t(at[r]) >= in.tokens.size()) throw shape_error("next_token_logprobs: row " + std::to_string(r), "token index outside the batch");
  std::vector<float> out(std::size_t(R) * V);
  if (R == 0) return out;
  auto idx = be_.template allocate<std::int32_t>(std::size_t(R));
  be_.upload(at, idx.span());
  grow(hrows_, std::size_t(R) * C);
  be_.embedding_forward(idx.span(), nf_.span().first(in.tokens.size() * std::size_t(C)), C, hrows_.span().first(std::size_t(R) * C));
  auto logits = be_.template allocate<float>(std::size_t(R) * V), logp = be_.template allocate<float>(std::size_t(R) * V);
  gemm_weight(be_, {.trans_b = true, .m = R, .n = V, .k = C, .lda = C, .ldb = C, .ldc = V}, hrows_.span().first(std::size_t(R) * C),
              params_.span().subspan(layout_.head, std::size_t(V) * C), wcopy(layout_.head, std::size_t(V) * C), logits.span());
  be_.log_softmax_rows(R, V, logits.span(), logp.span());
  be_.download(logp.span(), std::span<float>(out));
  return out;
}

} // namespace prefopt::models
