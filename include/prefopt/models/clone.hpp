// prefopt/models/clone.hpp — an independent copy of a transformer: config, weights, adapters.
//
//   auto ref = models::clone(policy);   // e.g. the frozen reference of DPO (train::reference::frozen)
//
// The copy has the same configuration, the same backend (copied by value), the same base weights
// and LM-head chunking, and — when LoRA adapters are attached — the same adapters with their
// weights, so its forward pass gives the same log-probs. Gradients, activations and optimizer
// state are not copied (the copy starts with none). A lora<M> clones into its transformer with
// the adapters attached; wrap a clone of the base in lora<M> to save adapters in PEFT's format.
// Weights are copied inside the backend's memory (no round trip through the host).
#pragma once

#include <span>

#include "prefopt/models/transformer.hpp"

namespace prefopt::models {

template <Backend B, class Arch> transformer<B, Arch> clone(transformer<B, Arch>& m) {
  transformer<B, Arch> out(m.backend(), m.config());
  out.head().set_chunk_rows(m.head().chunk_rows());
  out.set_weight_copy(m.weight_copy());
  out.set_activation_copy(m.activation_copy());
  out.backend().copy(std::span<const float>(m.base_parameters()), out.base_parameters());
  if (!m.adapters().empty()) {
    out.attach_adapters(m.adapters(), m.parameter_slices(), m.parameters().size(), m.adapter_scale());
    out.backend().copy(std::span<const float>(m.parameters()), out.parameters());
  }
  return out;
}

} // namespace prefopt::models
