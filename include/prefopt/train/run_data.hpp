// prefopt/train/run_data.hpp — how a training run (train/runner.hpp) reads each kind of dataset:
// the row lengths its seeded plan sorts by, the batch of a list of planned indices, and one rank's
// share of a planned batch. A dataset kind brings these three overloads; preference pairs and
// unpaired (KTO) examples are here, reward pairs in train/reward_trainer.hpp.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "prefopt/data/collate.hpp"

namespace prefopt::train {

// Preference pairs and unpaired (KTO) examples.
inline std::vector<std::size_t> lengths_of(const data::tokenized_preferences& d, bool prefix_sharing) {
  return data::row_lengths(d, prefix_sharing);
}
inline std::vector<std::size_t> lengths_of(const data::tokenized_unpaired& d, bool) { return data::row_lengths(d); }
template <class Trainer>
auto batch_of(const Trainer&, const data::tokenized_preferences& d, std::span<const std::size_t> idx, bool prefix_sharing, int pad) {
  return data::make_batch(d, idx, prefix_sharing, pad);
}
template <class Trainer>
auto batch_of(const Trainer&, const data::tokenized_unpaired& d, std::span<const std::size_t> idx, bool, int pad) {
  return data::make_unpaired_batch(d, idx, Trainer::needs_kl, pad);
}
// Rows [from, to) of the planned batch `idx` (a rank's share). KTO's KL rows take their
// completions from the whole planned batch, as one process would.
template <class Trainer>
auto shard_of(const Trainer& t, const data::tokenized_preferences& d, std::span<const std::size_t> idx, std::size_t from,
              std::size_t to, bool prefix_sharing, int pad) {
  return batch_of(t, d, idx.subspan(from, to - from), prefix_sharing, pad);
}
template <class Trainer>
auto shard_of(const Trainer&, const data::tokenized_unpaired& d, std::span<const std::size_t> idx, std::size_t from,
              std::size_t to, bool, int pad) {
  std::vector<std::size_t> kl;
  for (std::size_t k = from; k < to; ++k) kl.push_back(idx[(k + idx.size() - 1) % idx.size()]);
  return data::make_unpaired_batch(d, idx.subspan(from, to - from), Trainer::needs_kl, pad, kl);
}

} // namespace prefopt::train
