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
// TRL computes each ratio per forward (one micro-batch, its sums gathered over the ranks), appends
// it to a list, and logs the mean of the list (log(): sum(val) / len(val)); prefopt does the same:
// with gradient accumulation a step's ratio is the mean over its micro-batches of each
// micro-batch's token-weighted ratio (all ranks' sums of micro-batch m added first). A DPO ratio
// without tokens is 0, as TRL's. KTO (TRL's KTOTrainer, _compute_loss) logs entropy,
// logits/chosen and logits/rejected (chosen: desirable examples, over their completion tokens; a
// micro-batch without desirable, or undesirable, completion tokens adds no value to that list)
// and num_tokens (the examples' prompt + completion tokens; not its KL rows), no
// mean_token_accuracy. Evaluation reports them per eval batch (eval_ prefix) and num_tokens as
// the training count so far (TRL's eval_num_tokens).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "prefopt/models/concepts.hpp"

namespace prefopt::train {

struct token_totals {
  // Per forward (micro-batch): entropy Σ, its tokens, chosen mean-logit Σ, chosen tokens, rejected
  // mean-logit Σ, rejected tokens, chosen top-1 count, input tokens (num_tokens).
  using sums = std::array<double, 8>;
  std::vector<sums> micro{};
  bool has_stats = false;    // the model filled sequence_logps' token statistics
  bool has_lengths = false;  // the batch gave sequence lengths

  // One forward of `pairs` pairs (sequences: chosen 0..n-1, rejected n..2n-1); lengths may be empty.
  void add(const models::sequence_logps& out, std::size_t pairs, const std::vector<int>& lengths) {
    add_rows(out, out.size(), [&](std::size_t s) { return s < pairs; }, lengths);
  }
  // One forward whose first `rows` sequences count (the rest, e.g. KTO's KL rows, do not);
  // chosen(s): whether sequence s counts as chosen; lengths: those rows' lengths, or empty.
  template <class Chosen>
  void add_rows(const models::sequence_logps& out, std::size_t rows, Chosen&& chosen, std::span<const int> lengths) {
    sums& sum = micro.emplace_back();
    if (!out.entropy_sum.empty()) {
      has_stats = true;
      for (std::size_t s = 0; s < std::min(rows, out.size()); ++s) {
        const bool c = chosen(s);
        const double n = double(out.tokens[s]);
        sum[0] += out.entropy_sum[s], sum[1] += n;
        sum[c ? 2 : 4] += out.mean_logit_sum[s], sum[c ? 3 : 5] += n;
        if (c) sum[6] += out.top1_sum[s];
      }
    }
    if (!lengths.empty()) {
      has_lengths = true;
      for (const int l : lengths.first(std::min(rows, lengths.size()))) sum[7] += double(l);
    }
  }
  // Adds every rank's sums, micro-batch by micro-batch (a collective: every rank calls it); a rank
  // with fewer forwards (or none) still joins, its missing ones counting as zero.
  template <class Comm> void all_reduce(Comm& comm) {
    if (comm.size() == 1) return;
    std::vector<double> count(std::size_t(comm.size()), 0.0);
    count[std::size_t(comm.rank())] = double(micro.size());
    comm.all_reduce_sum(std::span<double>(count));
    micro.resize(std::size_t(*std::max_element(count.begin(), count.end())));
    std::vector<double> v;
    for (const sums& m : micro) v.insert(v.end(), m.begin(), m.end());
    v.push_back(has_stats ? 1.0 : 0.0), v.push_back(has_lengths ? 1.0 : 0.0);
    comm.all_reduce_sum(std::span<double>(v));
    for (std::size_t m = 0; m < micro.size(); ++m) std::copy_n(v.begin() + std::ptrdiff_t(8 * m), 8, micro[m].begin());
    has_stats = v[v.size() - 2] > 0.0, has_lengths = v.back() > 0.0;
  }
  double input_tokens() const {
    double n = 0.0;
    for (const sums& m : micro) n += m[7];
    return n;
  }
  // entropy, logits/chosen, logits/rejected, mean_token_accuracy into m (when the model gave them):
  // the mean over the micro-batches of each one's ratio, as DPOTrainer logs them.
  void put(std::map<std::string, double>& m) const {
    if (!has_stats || micro.empty()) return;
    auto ratio = [](double a, double n) { return n > 0.0 ? a / n : 0.0; };
    double e = 0.0, lc = 0.0, lr = 0.0, acc = 0.0;
    for (const sums& s : micro)
      e += ratio(s[0], s[1]), lc += ratio(s[2], s[3]), lr += ratio(s[4], s[5]), acc += ratio(s[6], s[3]);
    const double k = double(micro.size());
    m["entropy"] = e / k;
    m["logits/chosen"] = lc / k;
    m["logits/rejected"] = lr / k;
    m["mean_token_accuracy"] = acc / k;
  }
  // KTOTrainer's: entropy (0 without tokens), logits/chosen and logits/rejected averaged over the
  // micro-batches that have such tokens (absent when none has); no mean_token_accuracy.
  // counts (when given): how many micro-batch values each of them averages (step_result::counts).
  void put_unpaired(std::map<std::string, double>& m, std::map<std::string, double>* counts = nullptr) const {
    if (!has_stats || micro.empty()) return;
    double e = 0.0, lc = 0.0, lr = 0.0, nc = 0.0, nr = 0.0;
    for (const sums& s : micro) {
      e += s[1] > 0.0 ? s[0] / s[1] : 0.0;
      if (s[3] > 0.0) lc += s[2] / s[3], nc += 1.0;
      if (s[5] > 0.0) lr += s[4] / s[5], nr += 1.0;
    }
    m["entropy"] = e / double(micro.size());
    if (nc > 0.0) m["logits/chosen"] = lc / nc;
    if (nr > 0.0) m["logits/rejected"] = lr / nr;
    if (counts) {
      (*counts)["entropy"] = double(micro.size());
      if (nc > 0.0) (*counts)["logits/chosen"] = nc;
      if (nr > 0.0) (*counts)["logits/rejected"] = nr;
    }
  }
};

// The per-sequence lengths of a batch's sequences, where its input type knows them.
template <class Input> std::vector<int> sequence_lengths_of(const Input& in) {
  if constexpr (requires { in.sequence_lengths(); }) return in.sequence_lengths();
  else return {};
}

} // namespace prefopt::train
