// prefopt/train/reference.hpp — where a trainer's reference log-probs come from.
//
//   reference::none         reference-free losses (simpo, cpo, orpo, sft); a loss that reads the
//                           reference does not compile with it
//   reference::precomputed  the batch carries them (computed once before training, e.g. by
//                           `prefopt logps`, and cached)
//   reference::frozen<M>    a second, frozen model instance (typically a copy of the initial policy)
//   reference::adapter_disabled<M>  a LoRA policy with its adapters switched off
//   reference::initial_adapter<M>   a LoRA policy continued from a saved adapter, with that initial
//                           adapter: TRL's reference for a PeftModel passed to DPOTrainer (it adds a
//                           frozen copy of the adapter named "ref"), so rewards are 0 at step 1
// Each strategy fills the chosen and rejected reference log-probs of a batch.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/models/concepts.hpp"
#include "prefopt/train/batch.hpp"

namespace prefopt::train::reference {

struct none {
  static constexpr bool provides_reference = false;
  template <class Input>
  void compute(const preference_batch<Input>&, const models::forward_options&, std::vector<double>& chosen,
               std::vector<double>& rejected) {
    chosen.clear();
    rejected.clear();
  }
};

struct precomputed {
  static constexpr bool provides_reference = true;
  template <class Input>
  void compute(const preference_batch<Input>& b, const models::forward_options&, std::vector<double>& chosen,
               std::vector<double>& rejected) {
    if (b.reference_chosen.size() != b.pairs || b.reference_rejected.size() != b.pairs)
      throw shape_error("preference_batch: reference_chosen/reference_rejected",
                        "reference::precomputed needs one reference log-prob per pair and response (got " +
                            std::to_string(b.reference_chosen.size()) + " and " +
                            std::to_string(b.reference_rejected.size()) + " for " + std::to_string(b.pairs) + " pairs)");
    chosen = b.reference_chosen;
    rejected = b.reference_rejected;
  }
};

namespace detail {
// The reference's log-probs of a batch: a forward of `model` that keeps no activations and no WPO
// weights, its sequence log-probs split into the pairs' chosen rows, then their rejected rows.
template <class M, class Input>
void reference_forward(M& model, const preference_batch<Input>& b, models::forward_options o, std::vector<double>& chosen,
                       std::vector<double>& rejected) {
  o.keep_activations = false;
  o.wpo_weights = false;
  models::sequence_logps out;
  model.forward(b.sequences, out, o);
  chosen.assign(out.logp.begin(), out.logp.begin() + std::ptrdiff_t(b.pairs));
  rejected.assign(out.logp.begin() + std::ptrdiff_t(b.pairs), out.logp.end());
}
} // namespace detail

template <models::PolicyModel M> struct frozen {
  static constexpr bool provides_reference = true;
  M* model = nullptr;

  void compute(const preference_batch<typename M::input_type>& b, const models::forward_options& opt,
               std::vector<double>& chosen, std::vector<double>& rejected) {
    if (!model) throw error("reference::frozen", "no reference model given");
    detail::reference_forward(*model, b, opt, chosen, rejected);
  }
};

// LoRA: the policy itself with its adapters switched off (one copy of the model serves both).
template <models::PolicyModel M> struct adapter_disabled {
  static constexpr bool provides_reference = true;
  M* model = nullptr;

  void compute(const preference_batch<typename M::input_type>& b, const models::forward_options& opt,
               std::vector<double>& chosen, std::vector<double>& rejected) {
    if (!model) throw error("reference::adapter_disabled", "no model given");
    models::forward_options o = opt;
    o.adapters = false;
    detail::reference_forward(*model, b, o, chosen, rejected);
  }
};

// LoRA continued from an adapter: the policy's base with the adapter as it was when training began.
// The adapter is small (the policy's trainable parameters), so a copy is kept in the backend's
// memory and swapped in for the reference forward, then the trained values are put back — one copy
// of the base, as adapter_disabled. Make it with initial_adapter<M>::of(policy) before training.
template <models::PolicyModel M> struct initial_adapter {
  static constexpr bool provides_reference = true;
  using buffer = typename M::backend_type::template buffer<float>;
  struct state {
    buffer initial, trained;
  };
  M* model = nullptr;
  std::shared_ptr<state> saved{};

  static initial_adapter of(M& policy) {
    auto& be = policy.backend();
    const auto p = policy.parameters();
    auto s = std::make_shared<state>(state{be.template allocate<float>(p.size()), be.template allocate<float>(p.size())});
    be.copy(std::span<const float>(p), s->initial.span());
    return {&policy, std::move(s)};
  }

  void compute(const preference_batch<typename M::input_type>& b, const models::forward_options& opt,
               std::vector<double>& chosen, std::vector<double>& rejected) {
    if (!model || !saved) throw error("reference::initial_adapter", "not made with initial_adapter::of(policy)");
    auto& be = model->backend();
    const auto p = model->parameters();
    be.copy(std::span<const float>(p), saved->trained.span());
    be.copy(std::span<const float>(saved->initial.span()), p);
    struct restore {  // the trained adapter goes back even if the forward throws
      initial_adapter* self;
      std::span<float> p;
      ~restore() { self->model->backend().copy(std::span<const float>(self->saved->trained.span()), p); }
    } guard{this, p};
    detail::reference_forward(*model, b, opt, chosen, rejected);
  }
};

template <class R> inline constexpr bool is_none_v = std::is_same_v<R, none>;

} // namespace prefopt::train::reference
