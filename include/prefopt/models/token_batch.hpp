// prefopt/models/token_batch.hpp — a packed batch of token sequences, as transformers read it.
//
// Tokens of several rows are packed back to back (no padding). Each token has a position id and
// a segment id (see core/transformer_ops.hpp: segment 0 is a shared prefix, others see it and
// themselves). What the model scores is a list of *predictions*: hidden row predict_from[h]
// predicts token predict_token[h], which belongs to output sequence predict_sequence[h]. A
// sequence's log-prob is the sum of its predictions' log-probs.
//
// Two layouts of a preference pair (prompt p, chosen c, rejected r):
//   two rows:      [p c] and [p r]; positions 0.. in each row
//   prefix-shared: one row [p c r]; c at positions |p|.., r at positions |p|.. again, segments
//                  0 / 1 / 2; the last prompt token predicts both c₀ and r₀. A pair whose rows
//                  have different prompts (tokenized_pair::rejected_prompt) gets two rows here too.
// Output sequences of a pair batch: the B chosen completions first, then the B rejected ones.
//
// Padding (optional, pad_to_multiple_of > 1): each row is followed by pad tokens until its length is
// a multiple of N, for kernels that want aligned row lengths. A pad token has id pad_id, position 0
// (valid for any position table) and segment −1: attention gives it no keys and no token attends to
// it (core/transformer_ops.hpp), it predicts nothing and nothing predicts it, so sequence log-probs
// are those of the unpadded batch.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "prefopt/core/error.hpp"

namespace prefopt::models {

struct token_batch {
  std::vector<std::int32_t> tokens{};            // T token ids
  std::vector<std::int32_t> positions{};         // T position ids
  std::vector<std::int32_t> segment{};           // T segment ids
  std::vector<std::int32_t> row_offsets{0};      // R + 1
  std::vector<std::int32_t> predict_from{};      // H token indices
  std::vector<std::int32_t> predict_token{};     // H target ids
  std::vector<std::int32_t> predict_sequence{};  // H output sequence indices
  std::int32_t sequences = 0;                    // S output sequences

  [[nodiscard]] std::size_t size() const noexcept { return tokens.size(); }
  [[nodiscard]] int rows() const noexcept { return int(row_offsets.size()) - 1; }

  // Appends a row [prefix, completion_1, ..., completion_k] where completion j (segment j + 1,
  // positions continuing from the prefix) is scored as output sequence sequence_ids[j]. With a
  // single completion this is an ordinary prompt + completion row. An empty prefix is allowed if
  // the completion then starts unconditioned — its first token is not scored.
  void add_row(const std::vector<std::int32_t>& prefix, const std::vector<const std::vector<std::int32_t>*>& completions,
               const std::vector<std::int32_t>& sequence_ids) {
    const std::int32_t start = std::int32_t(tokens.size());
    for (std::size_t i = 0; i < prefix.size(); ++i) push(prefix[i], std::int32_t(i), 0);
    for (std::size_t j = 0; j < completions.size(); ++j) {
      const auto& c = *completions[j];
      std::int32_t prev = prefix.empty() ? -1 : start + std::int32_t(prefix.size()) - 1;
      for (std::size_t i = 0; i < c.size(); ++i) {
        const std::int32_t at = std::int32_t(tokens.size());
        push(c[i], std::int32_t(prefix.size() + i), std::int32_t(j + 1));
        if (prev >= 0) {
          predict_from.push_back(prev);
          predict_token.push_back(c[i]);
          predict_sequence.push_back(sequence_ids[j]);
        }
        prev = at;
      }
      if (sequence_ids[j] + 1 > sequences) sequences = sequence_ids[j] + 1;
    }
    row_offsets.push_back(std::int32_t(tokens.size()));
  }

  // Pads the last row (see the top of this file) to a multiple of `multiple` tokens; ≤ 1: nothing.
  void pad_last_row(int multiple, std::int32_t pad_id) {
    if (multiple <= 1 || rows() == 0) return;
    const auto length = row_offsets.back() - row_offsets[row_offsets.size() - 2];
    for (auto n = (multiple - length % multiple) % multiple; n > 0; --n) push(pad_id, 0, -1);
    row_offsets.back() = std::int32_t(tokens.size());
  }

  // Tokens of each output sequence as a row of its own holds them, prompt + completion without
  // padding (a shared prompt counts once per sequence): what TRL's attention_mask counts (num_tokens).
  // The token predicted by hidden row i sits at position positions[i] + 1, so a sequence's length
  // is its last predicted position + 1.
  [[nodiscard]] std::vector<int> sequence_lengths() const {
    std::vector<int> n(std::size_t(sequences), 0);
    for (std::size_t h = 0; h < predict_sequence.size(); ++h) {
      int& len = n[std::size_t(predict_sequence[h])];
      len = std::max(len, int(positions[std::size_t(predict_from[h])]) + 2);
    }
    return n;
  }

  // Completion tokens scored per output sequence.
  [[nodiscard]] std::vector<int> completion_tokens() const {
    std::vector<int> n(std::size_t(sequences), 0);
    for (auto s : predict_sequence) ++n[std::size_t(s)];
    return n;
  }

private:
  void push(std::int32_t tok, std::int32_t pos, std::int32_t seg) {
    tokens.push_back(tok);
    positions.push_back(pos);
    segment.push_back(seg);
  }
};

// A tokenized preference pair, ids used exactly as given (nothing appended).
struct tokenized_pair {
  std::vector<std::int32_t> prompt{}, chosen{}, rejected{};
  // The rejected row's own prompt when it differs from the chosen row's (TRL's keep_end truncation
  // cuts each row prompt + completion separately, so the two rows can keep different prompt parts);
  // empty: both rows share `prompt`. Such a pair is packed as two rows in either layout.
  std::vector<std::int32_t> rejected_prompt{};

  [[nodiscard]] const std::vector<std::int32_t>& rejected_row_prompt() const noexcept {
    return rejected_prompt.empty() ? prompt : rejected_prompt;
  }
  [[nodiscard]] bool split_prompt() const noexcept { return !rejected_prompt.empty(); }
};

// Packs pairs for a transformer: sequence i is pair i's chosen completion, B + i its rejected one.
// With pad_to_multiple_of > 1 every row is padded with pad_id tokens (see the top of this file).
inline token_batch pack_pairs(const std::vector<tokenized_pair>& pairs, bool prefix_sharing, int pad_to_multiple_of = 0,
                              std::int32_t pad_id = 0) {
  token_batch b;
  const auto n = std::int32_t(pairs.size());
  for (std::int32_t i = 0; i < n; ++i) {
    const auto& p = pairs[std::size_t(i)];
    if (p.prompt.empty()) throw data_error("pair " + std::to_string(i), "the prompt is empty: nothing conditions the completion");
    if (p.chosen.empty() || p.rejected.empty())
      throw data_error("pair " + std::to_string(i), "an empty completion has no log-prob (skip such pairs at collation)");
    if (prefix_sharing && !p.split_prompt()) {
      b.add_row(p.prompt, {&p.chosen, &p.rejected}, {i, n + i});
    } else {
      b.add_row(p.prompt, {&p.chosen}, {i});
    }
    b.pad_last_row(pad_to_multiple_of, pad_id);
    if (prefix_sharing && p.split_prompt()) {  // two prompts: nothing to share, two rows
      b.add_row(p.rejected_prompt, {&p.rejected}, {n + i});
      b.pad_last_row(pad_to_multiple_of, pad_id);
    }
  }
  if (!prefix_sharing)
    for (std::int32_t i = 0; i < n; ++i) {
      const auto& p = pairs[std::size_t(i)];
      b.add_row(p.rejected_row_prompt(), {&p.rejected}, {n + i});
      b.pad_last_row(pad_to_multiple_of, pad_id);
    }
  b.sequences = 2 * n;
  return b;
}

} // namespace prefopt::models
