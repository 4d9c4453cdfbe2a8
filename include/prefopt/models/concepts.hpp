// prefopt/models/concepts.hpp — the policy model concept.
//
// A policy model turns a batch of sequences into per-sequence completion log-probs (the sum over
// completion tokens and the token count), keeps what backward needs, takes d loss / d log-prob
// per sequence and accumulates parameter gradients. Its parameters are one flat buffer in the
// backend's memory with named slices (Hugging Face tensor names), so optimizers, checkpoints and
// all-reduce each see one span.
//
// Sequence order: outputs follow the input's sequences. A pair batch lists its B chosen
// sequences first, then its B rejected ones (TRL's concatenated layout): pair i is (i, B + i).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "prefopt/core/backend.hpp"

namespace prefopt::models {

// What a forward pass keeps and computes.
struct forward_options {
  bool keep_activations = true;   // false: inference only (reference log-probs), backward not allowed
  bool adapters = true;           // LoRA models: false runs the frozen base (the reference policy)
  // LD-DPO (Liu et al., "Length Desensitization in DPO", 2024; TRL ld_alpha): the log-prob of a
  // pair's completion tokens past the shorter completion's length is scaled by ld_alpha. Models
  // with token sequences apply it; it needs the pair layout above.
  std::optional<double> ld_alpha{};
  bool wpo_weights = false;       // also compute WPO's aligned mean log-prob per sequence
  // Also sum TRL's token statistics per sequence (sequence_logps::entropy_sum, ...). Models with a
  // vocabulary head fill them; it costs the head one more pass over each chunk's logits while they
  // are in cache (no extra gemm). Others leave them empty.
  bool token_stats = false;
  // A training forward: models with dropout (LoRA's lora_dropout) draw their masks from this seed
  // (core/random.hpp) and backward redraws the same ones. Unset: no dropout — inference, the
  // reference policy, evaluation. The trainer derives it from training_args::seed and the step.
  std::optional<std::uint64_t> dropout_seed{};
};

// Host-side results of a forward pass, one entry per sequence.
struct sequence_logps {
  std::vector<double> logp{};      // Σ over completion tokens of log π(token | prefix) (LD-weighted if asked)
  std::vector<int> tokens{};       // completion token counts
  std::vector<double> wpo_aligned{}; // (1/n)·Σ_t [log p_t − log Σ_v p_v²] when forward_options::wpo_weights
  // With forward_options::token_stats (else empty), sums over each sequence's completion tokens of:
  // the predictive entropy −Σ_v p_v log p_v (nats), the mean logit over the vocabulary, and 1 where
  // the token is the argmax (torch.argmax's first index) — TRL's entropy, logits/*, mean_token_accuracy.
  std::vector<double> entropy_sum{}, mean_logit_sum{}, top1_sum{};
  [[nodiscard]] std::size_t size() const noexcept { return logp.size(); }
};

// A named slice of the flat parameter buffer.
struct parameter_slice {
  std::string name{};               // Hugging Face tensor name ("transformer.h.0.attn.c_attn.weight")
  std::size_t offset = 0;           // in elements
  std::vector<std::size_t> shape{}; // as saved
  bool trainable = true;
  bool weight_decay = true;         // false for biases and norm weights, as Hugging Face's Trainer does
  [[nodiscard]] std::size_t size() const {
    std::size_t n = 1;
    for (auto s : shape) n *= s;
    return n;
  }
};

template <class M>
concept PolicyModel = requires(M& m, const M& cm, const typename M::input_type& in, sequence_logps& out,
                               const forward_options& opt, std::span<const double> d) {
  typename M::backend_type;                                    // the tensor backend
  typename M::input_type;                                      // one batch of sequences as the model reads it
  { M::input_sequences(in) } -> std::convertible_to<std::size_t>;  // sequences in a batch
  m.forward(in, out, opt);                                     // fills out; keeps activations if asked
  m.backward(d);                                               // d loss / d out.logp[s] → accumulates gradients
  m.zero_grad();
  { m.parameters() } -> std::same_as<std::span<float>>;        // flat, in backend memory
  { m.gradients() } -> std::same_as<std::span<float>>;         // same layout as parameters()
  { cm.parameter_slices() } -> std::convertible_to<const std::vector<parameter_slice>&>;
  { m.backend() } -> std::same_as<typename M::backend_type&>;
};

} // namespace prefopt::models
