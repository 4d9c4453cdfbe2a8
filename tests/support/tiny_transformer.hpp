// A tiny random transformer shape (GPT-2 with biases or Llama with grouped-query heads and untied
// embeddings), a few short pairs, and random adapter weights: the fixtures of the model tests that
// need every code path of a transformer but not a golden checkpoint.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "prefopt/models/detail/random.hpp"
#include "prefopt/models/token_batch.hpp"
#include "prefopt/models/transformer_config.hpp"

namespace prefopt::test {

inline models::transformer_config tiny_transformer(models::architecture arch, int layers = 2, int max_positions = 32) {
  models::transformer_config c;
  c.arch = arch;
  c.vocab_size = 50;
  c.hidden = 16;
  c.layers = layers;
  c.heads = 2;
  c.head_dim = 8;
  c.intermediate = 32;
  c.max_positions = max_positions;
  if (arch == models::architecture::gpt2) {
    c.kv_heads = 2;
    c.attention_bias = c.o_bias = c.mlp_bias = true;
  } else {
    c.model_type = "llama";
    c.kv_heads = 1;
    c.tie_word_embeddings = false;
  }
  return c;
}

// The trainable parameters (for a LoRA model: the adapters) drawn N(0, 0.2²), so that B ≠ 0 and
// every adapter weight has a gradient.
template <class M> void randomize_trainable(M& m, std::uint64_t seed) {
  std::vector<float> w(m.parameters().size());
  models::detail::normal_source n(seed);
  for (auto& x : w) x = float(0.2 * n());
  m.backend().upload(std::span<const float>(w), m.parameters());
}

// Three short pairs of token ids below the tiny vocabulary (prompt, chosen, rejected).
inline const std::vector<models::tokenized_pair>& tiny_pairs() {
  static const std::vector<models::tokenized_pair> p{{{1, 2, 3, 4}, {5, 6, 7}, {8, 9}},
                                                     {{10, 11}, {12, 13, 14, 15}, {16, 17, 18}},
                                                     {{19, 20, 21}, {22}, {23, 24, 25, 26, 27}}};
  return p;
}

} // namespace prefopt::test
