// prefopt/train/batch.hpp — a batch of preference pairs as a trainer consumes it.
#pragma once

#include <cstddef>
#include <vector>

#include "prefopt/losses/batch.hpp"

namespace prefopt::train {

// `sequences` holds 2B sequences in the model's input type: the B chosen completions first, then
// the B rejected ones (pair i = sequences i and B + i). Optional per-pair columns feed the losses
// that read them; reference_* hold precomputed reference log-probs (reference::precomputed).
template <class Input> struct preference_batch {
  Input sequences{};
  std::size_t pairs = 0;
  std::vector<double> preference_prob{}, score_chosen{}, score_rejected{}, cost{};
  std::vector<double> reference_chosen{}, reference_rejected{};
};

} // namespace prefopt::train
