// prefopt/models/detail/transformer_hidden.hpp — the transformer body without the LM head.
//
// forward_hidden runs the ordinary forward pass on a copy of the batch without predictions (the
// head then has no rows), and gathers the final-norm hidden states of the chosen tokens.
// backward_hidden scatters d hidden back onto those tokens and runs the body's backward
// (body_backward, as backward() does after the head; recomputing layers when checkpointed).
//
// State: forward_hidden marks its pass by a negative H_ (−1 − R, R rows gathered; forward() always
// leaves H_ ≥ 0), so backward() refuses it (has_acts_ is false) and backward_hidden refuses
// anything but the last forward_hidden that kept activations. The gathered rows' indices stay in
// predict_from_ (the head is not run, so the buffer is free).
#pragma once

#include <string>

namespace prefopt::models {

template <Backend B, class Arch>
void transformer<B, Arch>::forward_hidden(const input_type& in, std::span<const std::int32_t> at, std::span<float> hidden,
                                          const forward_options& opt) {
  const std::size_t C = std::size_t(cfg_.hidden), R = at.size();
  if (hidden.size() < R * C) throw shape_error("transformer::forward_hidden", "hidden holds fewer than rows × hidden floats");
  for (std::size_t r = 0; r < R; ++r)
    if (at[r] < 0 || std::size_t(at[r]) >= in.tokens.size())
      throw shape_error("transformer::forward_hidden: row " + std::to_string(r), "token index outside the batch");
  forward_options o = opt;
  o.wpo_weights = false;
  o.ld_alpha.reset();
  sequence_logps ignored;
  if (in.predict_from.empty()) {
    forward(in, ignored, o);
  } else {
    input_type body = in;
    body.predict_from.clear(), body.predict_token.clear(), body.predict_sequence.clear();
    forward(body, ignored, o);
  }
  const bool kept = has_acts_;
  has_acts_ = false;  // backward() has no head rows to start from
  H_ = kept ? -1 - int(R) : 0;
  if (R == 0) return;
  grow(predict_from_, R);
  be_.upload(at, predict_from_.span().first(R));
  be_.embedding_forward(predict_from_.span().first(R), nf_.span().first(in.tokens.size() * C), int(C), hidden.first(R * C));
}

template <Backend B, class Arch> void transformer<B, Arch>::backward_hidden(std::span<const float> d_hidden) {
  if (H_ >= 0) throw error("transformer::backward_hidden", "the last forward pass was not a forward_hidden keeping activations");
  const int T = T_, C = cfg_.hidden;
  const std::size_t t = std::size_t(T), R = std::size_t(-1 - H_);
  if (d_hidden.size() != R * std::size_t(C))
    throw shape_error("transformer::backward_hidden", "one gradient row per gathered hidden row expected");
  H_ = 0;
  ensure_grads();
  ensure_backward(std::max(T, 1));
  auto dnf = dn_.span().first(t * C);
  be_.fill(dnf, 0.0f);
  if (R > 0) be_.embedding_backward(predict_from_.span().first(R), d_hidden, C, dnf);
  body_backward(T);
}

} // namespace prefopt::models
