// prefopt/train/distributed.hpp — the global batch of a data parallel step, built from every
// rank's shard: the per-pair (per-example) vectors are packed into one buffer, all-gathered in
// rank order (one collective) and unpacked, so every rank evaluates the loss on the same global
// batch: rank 0's rows first, then rank 1's, ... The vectors are small (a few numbers per pair);
// the gradient buffer is what is large. Integers and flags travel as doubles, exactly.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "prefopt/comm/concepts.hpp"
#include "prefopt/losses/batch.hpp"
#include "prefopt/losses/kto.hpp"

namespace prefopt::train {

namespace detail {
// Gathers a batch described by `columns(batch, f)` (f called on each column vector in a fixed
// order); `first` becomes the index of this rank's first row in the result.
template <comm::Communicator C, class Batch, class Columns>
Batch gather_columns(C& c, const Batch& mine, std::size_t rows, std::size_t& first, Columns columns) {
  first = 0;
  if (c.size() == 1) return mine;
  std::vector<double> buf{double(rows)};
  columns(mine, [&](const auto& v) {
    buf.push_back(double(v.size()));
    for (const auto x : v) buf.push_back(double(x));
  });
  std::vector<std::size_t> counts;
  const std::vector<double> all = c.all_gather(std::span<const double>(buf), counts);
  Batch out;
  std::size_t at = 0, before = 0;
  for (std::size_t r = 0; r < counts.size(); ++r) {
    if (int(r) == c.rank()) first = before;
    before += std::size_t(all[at++]);
    columns(out, [&](auto& v) {
      const auto n = std::size_t(all[at++]);
      for (std::size_t i = 0; i < n; ++i) v.push_back(static_cast<typename std::decay_t<decltype(v)>::value_type>(all[at++]));
    });
  }
  return out;
}
} // namespace detail

// Every rank's pairs in rank order; `first`: this rank's first pair in the result.
template <comm::Communicator C> pair_batch<double> gather_pairs(C& c, const pair_batch<double>& mine, std::size_t& first) {
  return detail::gather_columns(c, mine, mine.size(), first, [](auto& b, auto&& f) {
    f(b.policy_chosen), f(b.policy_rejected), f(b.reference_chosen), f(b.reference_rejected);
    f(b.chosen_tokens), f(b.rejected_tokens), f(b.preference_prob), f(b.score_chosen), f(b.score_rejected);
    f(b.cost), f(b.weight);
  });
}

// Every rank's unpaired examples (KTO) in rank order, KL rows included.
template <comm::Communicator C>
unpaired_batch<double> gather_unpaired(C& c, const unpaired_batch<double>& mine, std::size_t& first) {
  return detail::gather_columns(c, mine, mine.size(), first, [](auto& b, auto&& f) {
    f(b.policy), f(b.reference), f(b.desirable), f(b.policy_kl), f(b.reference_kl);
  });
}

// The global batch_context of a single-pass step: pairs and chosen tokens summed over the ranks.
template <comm::Communicator C> batch_context<double> global_context(C& c, batch_context<double> local) {
  double v[2] = {local.pairs, local.chosen_tokens};
  c.all_reduce_sum(std::span<double>(v, 2));
  return {v[0], v[1]};
}

} // namespace prefopt::train
