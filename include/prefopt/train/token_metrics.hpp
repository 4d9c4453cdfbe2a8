// prefopt/train/token_metrics.hpp — TRL's token metrics of a preference step, with TRL 1.16's
// definitions (trl/trainer/dpo_trainer.py, _compute_loss; the statistics come from its chunked
// LM head, trl/kernels/chunked_logprob.py):
//   entropy              Σ over the completion tokens of chosen and rejected of the predictive
//                        entropy −Σ_v p_v log p_v (nats), / the number of those tokens
//   logits/chosen        Σ over chosen completion tokens of the mean logit over the vocabulary
//                        (Σ_v z_v / V), / the number of chosen completion tokens
//   logits/rejected      the same over the rejected completions
//   mean_token_accuracy  chosen completion tokens that are the argmax of their prediction
//                        (torch.argmax: the first index of the maximum), / chosen completion tokens
//   num_tokens           training only, cumulative since the run began: Σ over every chosen and
//                        rejected sequence of prompt + completion tokens, without padding (TRL's
//                        attention_mask.sum(); a shared prompt counts once per sequence)
// Ratios are token-weighted over the whole batch (all micro-batches, all ranks: the sums are
// all-reduced); a ratio without tokens is 0, as TRL's. With gradient accumulation TRL logs the
// mean over the micro-batches of each micro-batch's ratio instead: the two agree when every
// micro-batch has the same number of tokens. Evaluation reports the first four per eval batch
// (eval_ prefix) and num_tokens as the training count so far (TRL's eval_num_tokens).
#pragma once

#include <array>
#include <cstddef>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "prefopt/models/concepts.hpp"

namespace prefopt::train {

struct token_totals {
  // entropy Σ, its tokens, chosen mean-logit Σ, chosen tokens, rejected mean-logit Σ, rejected
  // tokens, chosen top-1 count, input tokens (num_tokens); one array so ranks add it in one call.
  std::array<double, 8> sum{};
  bool has_stats = false;    // the model filled sequence_logps' token statistics
  bool has_lengths = false;  // the batch gave sequence lengths

  // One forward of `pairs` pairs (sequences: chosen 0..n-1, rejected n..2n-1); lengths may be empty.
  void add(const models::sequence_logps& out, std::size_t pairs, const std::vector<int>& lengths) {
    if (!out.entropy_sum.empty()) {
      has_stats = true;
      for (std::size_t s = 0; s < out.size(); ++s) {
        const bool chosen = s < pairs;
        const double n = double(out.tokens[s]);
        sum[0] += out.entropy_sum[s], sum[1] += n;
        sum[chosen ? 2 : 4] += out.mean_logit_sum[s], sum[chosen ? 3 : 5] += n;
        if (chosen) sum[6] += out.top1_sum[s];
      }
    }
    if (!lengths.empty()) {
      has_lengths = true;
      for (const int l : lengths) sum[7] += double(l);
    }
  }
  // Adds every rank's sums (a collective: every rank calls it); a rank without rows still joins.
  template <class Comm> void all_reduce(Comm& comm) {
    if (comm.size() == 1) return;
    std::array<double, 10> v{};
    for (std::size_t i = 0; i < sum.size(); ++i) v[i] = sum[i];
    v[8] = has_stats ? 1.0 : 0.0, v[9] = has_lengths ? 1.0 : 0.0;
    comm.all_reduce_sum(std::span<double>(v));
    for (std::size_t i = 0; i < sum.size(); ++i) sum[i] = v[i];
    has_stats = v[8] > 0.0, has_lengths = v[9] > 0.0;
  }
  double input_tokens() const { return sum[7]; }
  // entropy, logits/chosen, logits/rejected, mean_token_accuracy into m (when the model gave them).
  void put(std::map<std::string, double>& m) const {
    if (!has_stats) return;
    auto ratio = [](double a, double n) { return n > 0.0 ? a / n : 0.0; };
    m["entropy"] = ratio(sum[0], sum[1]);
    m["logits/chosen"] = ratio(sum[2], sum[3]);
    m["logits/rejected"] = ratio(sum[4], sum[5]);
    m["mean_token_accuracy"] = ratio(sum[6], sum[3]);
  }
};

// The per-sequence lengths of a batch's sequences, where its input type knows them.
template <class Input> std::vector<int> sequence_lengths_of(const Input& in) {
  if constexpr (requires { in.sequence_lengths(); }) return in.sequence_lengths();
  else return {};
}

} // namespace prefopt::train
