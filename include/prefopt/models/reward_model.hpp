// prefopt/models/reward_model.hpp — a transformer with a scalar score head (a reward model).
//
//   score(sequence) = score.weight · h_last          score.weight [1 × C], no bias
// h_last: the final-norm hidden state of the sequence's last non-padding token, as Hugging Face's
// GPT2/Llama/Qwen2ForSequenceClassification with num_labels = 1 read it: the last token whose id
// is not config.pad_token_id (the first token when all are padding; the last token when there is
// no pad_token_id). Llama-family bodies give the pad token's embedding row no gradient, as their
// nn.Embedding(padding_idx = pad_token_id) does. The body is any transformer (gpt2<B>, llama<B>)
// or lora<...> of one: with LoRA the adapters and the head train (PEFT's modules_to_save =
// ["score"]), otherwise everything does.
//
// Two parameter groups: the body's (parameters()/gradients() of the body: all weights, or the
// adapters) and the head's [C]. They are separate buffers, so trainers step each with its own
// optimizer state (train/reward_trainer.hpp). An untied lm_head of the body is unused: it is not
// saved and gets no gradient.
//
// Saved as save_pretrained writes a *ForSequenceClassification model: model.safetensors with the
// body under its usual names (GPT-2 "transformer.*", Llama/Qwen2 "model.*") plus "score.weight";
// config.json with architectures [<Arch>ForSequenceClassification], id2label/label2id of one
// label and pad_token_id.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/models/token_batch.hpp"
#include "prefopt/models/transformer.hpp"

namespace prefopt::models {

// Sequences to score, one packed row each, and the token each score is read at.
struct reward_batch {
  token_batch tokens{};                  // no predictions; row s is sequence s
  std::vector<std::int32_t> score_at{};  // S token indices into tokens
  [[nodiscard]] std::size_t sequences() const noexcept { return score_at.size(); }
};

// Packs whole sequences (prompt + completion, as TRL's RewardTrainer tokenizes them), one row each.
// pad_token_id: Hugging Face's rule for the scored token (see the top of this file).
inline reward_batch pack_sequences(const std::vector<std::vector<std::int32_t>>& seqs, std::optional<std::int32_t> pad_token_id) {
  reward_batch b;
  for (std::size_t s = 0; s < seqs.size(); ++s) {
    const auto& q = seqs[s];
    if (q.empty()) throw data_error("sequence " + std::to_string(s), "is empty: nothing to score");
    const std::int32_t start = std::int32_t(b.tokens.tokens.size());
    b.tokens.add_row({}, {&q}, {std::int32_t(s)});
    std::size_t last = q.size() - 1;
    if (pad_token_id) {
      while (last > 0 && q[last] == *pad_token_id) --last;  // all padding: the first token
    }
    b.score_at.push_back(start + std::int32_t(last));
  }
  b.tokens.predict_from.clear(), b.tokens.predict_token.clear(), b.tokens.predict_sequence.clear();
  b.tokens.sequences = std::int32_t(seqs.size());
  return b;
}

// A pair batch: sequences 0..B−1 are the chosen ones, B..2B−1 the rejected ones (TRL's layout).
inline reward_batch pack_reward_pairs(const std::vector<tokenized_pair>& pairs, std::optional<std::int32_t> pad_token_id) {
  std::vector<std::vector<std::int32_t>> seqs;
  seqs.reserve(2 * pairs.size());
  for (int side = 0; side < 2; ++side)
    for (const auto& p : pairs) {
      auto s = side == 0 ? p.prompt : p.rejected_row_prompt();
      const auto& c = side == 0 ? p.chosen : p.rejected;
      s.insert(s.end(), c.begin(), c.end());
      seqs.push_back(std::move(s));
    }
  return pack_sequences(seqs, pad_token_id);
}

template <class Body> class reward_model {
public:
  using body_type = Body;
  using backend_type = typename Body::backend_type;

  // The head starts at zero; set it with head_parameters() or a loader (reward_io.hpp).
  reward_model(Body body, std::optional<std::int32_t> pad_token_id)
      : body_(std::move(body)), pad_(pad_token_id), embed_pad_(pad_token_id) {
    const std::size_t C = std::size_t(body_.config().hidden);
    auto& be = body_.backend();
    score_ = be.template allocate<float>(C);
    dscore_ = be.template allocate<float>(C);
    be.fill(score_.span(), 0.0f), be.fill(dscore_.span(), 0.0f);
    head_slices_ = {parameter_slice{"score.weight", 0, {1, C}, true, true}};
  }

  Body& body() { return body_; }
  const Body& body() const { return body_; }
  backend_type& backend() { return body_.backend(); }
  std::optional<std::int32_t> pad_token_id() const { return pad_; }
  // The scoring rule's pad token. The embedding's padding row stays the one the model was built with,
  // as transformers fixes padding_idx when it builds the model (TRL sets pad_token_id afterwards).
  void set_pad_token_id(std::optional<std::int32_t> p) { pad_ = p; }
  int hidden() const { return body_.config().hidden; }

  // ---- parameters: the body's group and the head's ---------------------------------------------
  std::span<float> body_parameters() { return body_.parameters(); }
  std::span<float> body_gradients() { return body_.gradients(); }
  const std::vector<parameter_slice>& body_slices() const { return body_.parameter_slices(); }
  std::span<float> head_parameters() { return score_.span(); }
  std::span<float> head_gradients() { return dscore_.span(); }
  const std::vector<parameter_slice>& head_slices() const { return head_slices_; }
  void zero_grad() {
    body_.zero_grad();
    body_.backend().fill(dscore_.span(), 0.0f);
  }

  // Packs sequences with this model's pad_token_id rule.
  reward_batch pack(const std::vector<std::vector<std::int32_t>>& seqs) const { return pack_sequences(seqs, pad_); }

  // One score per sequence of b; keeps what backward needs when opt.keep_activations.
  std::vector<double> forward(const reward_batch& b, const forward_options& opt = {}) {
    const int R = int(b.score_at.size()), C = hidden();
    auto& be = body_.backend();
    grow(h_, std::size_t(std::max(R, 1)) * C), grow(s_, std::size_t(std::max(R, 1)));
    body_.forward_hidden(b.tokens, std::span<const std::int32_t>(b.score_at), h_.span(), opt);
    rows_ = opt.keep_activations ? R : -1;
    std::vector<double> out(static_cast<std::size_t>(R));
    if (R == 0) return out;
    // s [R × 1] = h [R × C] · scoreᵀ
    be.gemm({.trans_b = true, .m = R, .n = 1, .k = C, .lda = C, .ldb = C, .ldc = 1}, h_.span().first(std::size_t(R) * C),
            score_.span(), s_.span().first(std::size_t(R)));
    std::vector<float> host(static_cast<std::size_t>(R));
    be.download(s_.span().first(std::size_t(R)), std::span<float>(host));
    for (int r = 0; r < R; ++r) out[std::size_t(r)] = host[std::size_t(r)];
    return out;
  }

  // d loss / d score per sequence of the last forward → accumulates body and head gradients.
  void backward(std::span<const double> d_score) {
    if (rows_ < 0) throw error("reward_model::backward", "the last forward pass did not keep activations");
    const int R = rows_, C = hidden();
    if (d_score.size() != std::size_t(R)) throw shape_error("reward_model::backward", "one gradient per scored sequence expected");
    rows_ = -1;
    auto& be = body_.backend();
    std::vector<float> ds(d_score.begin(), d_score.end());
    grow(dh_, std::size_t(std::max(R, 1)) * C);
    if (R > 0) {
      be.upload(std::span<const float>(ds), s_.span().first(std::size_t(R)));
      const auto sr = s_.span().first(std::size_t(R));
      // d score.weight [1 × C] += dsᵀ [1 × R] · h [R × C];  dh [R × C] = ds [R × 1] · score [1 × C]
      be.gemm({.trans_a = true, .m = 1, .n = C, .k = R, .lda = 1, .ldb = C, .ldc = C, .alpha = 1.0f, .beta = 1.0f}, sr,
              h_.span().first(std::size_t(R) * C), dscore_.span());
      be.gemm({.m = R, .n = C, .k = 1, .lda = 1, .ldb = C, .ldc = C}, sr, score_.span(), dh_.span().first(std::size_t(R) * C));
    }
    body_.backward_hidden(dh_.span().first(std::size_t(R) * C));
    // Llama/Qwen2/Mistral embed with nn.Embedding(padding_idx = pad_token_id): that row gets no gradient.
    if (embed_pad_ && body_.config().arch == architecture::llama && body_.adapters().empty())
      be.fill(body_.gradients().subspan(body_.layout().wte + std::size_t(*embed_pad_) * std::size_t(C), std::size_t(C)), 0.0f);
  }

private:
  using fbuf = typename backend_type::template buffer<float>;
  void grow(fbuf& b, std::size_t n) {
    if (b.size() < n) b = body_.backend().template allocate<float>(n);
  }
  Body body_;
  std::optional<std::int32_t> pad_, embed_pad_;  // scoring rule; embedding padding row (Llama family)
  fbuf score_, dscore_, h_, s_, dh_;  // [C], [C], [R × C], [R], [R × C]
  std::vector<parameter_slice> head_slices_;
  int rows_ = -1;                     // sequences of the last forward that kept activations
};

} // namespace prefopt::models
