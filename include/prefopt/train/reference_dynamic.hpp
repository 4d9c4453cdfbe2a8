// prefopt/train/reference_dynamic.hpp — TR-DPO's synced reference, and a reference strategy
// chosen at run time.
//
//   reference::synced<M>   a frozen copy that follows the policy: every τ optimizer steps
//                          π_ref ← α·π_θ + (1 − α)·π_ref (Gorbatovski et al., "Learn Your Reference
//                          Model for Real Good Alignment", 2024; TRL: sync_ref_model,
//                          ref_model_sync_steps = τ, ref_model_mixup_alpha = α). Not with LoRA.
//   reference::any<M, R>   one of none, precomputed, frozen, adapter_disabled, synced, initial_adapter, picked at run
//                          time (configuration files; R: the reference model's type); a loss that needs a reference is checked at
//                          run time against `none`.
#pragma once

#include <string>
#include <variant>

#include "prefopt/train/reference.hpp"

namespace prefopt::train::reference {

template <models::PolicyModel M> struct synced {
  static constexpr bool provides_reference = true;
  M* model = nullptr;
  long every = 512;
  double alpha = 0.6;

  void compute(const preference_batch<typename M::input_type>& b, const models::forward_options& opt,
               std::vector<double>& chosen, std::vector<double>& rejected) {
    frozen<M>{model}.compute(b, opt, chosen, rejected);
  }
  // After optimizer step `step`: mix the policy into the reference every `every` steps.
  template <class P> void after_step(P& policy, long step) {
    if (!model || every <= 0 || step % every != 0) return;
    auto ref = model->parameters();
    auto pol = policy.parameters();
    if (ref.size() != pol.size())
      throw shape_error("reference::synced", "the reference and the policy must have the same parameters (LoRA is not supported)");
    auto& be = model->backend();
    be.scale(ref, float(1.0 - alpha));
    be.axpy(float(alpha), pol, ref);
  }
};

template <models::PolicyModel M, models::PolicyModel R = M> class any {
public:
  using input_type = typename M::input_type;
  any() = default;
  explicit any(none s) : s_(s) {}
  explicit any(precomputed s) : s_(s) {}
  explicit any(frozen<R> s) : s_(s) {}
  explicit any(adapter_disabled<M> s) : s_(s) {}
  explicit any(synced<R> s) : s_(s) {}
  explicit any(initial_adapter<M> s) : s_(std::move(s)) {}

  bool provides_reference() const { return !std::holds_alternative<none>(s_); }
  std::string name() const {
    static const char* names[] = {"none", "precomputed", "frozen", "adapter_disabled", "synced", "initial_adapter"};
    return names[s_.index()];
  }
  void compute(const preference_batch<input_type>& b, const models::forward_options& opt, std::vector<double>& chosen,
               std::vector<double>& rejected) {
    std::visit([&](auto& s) { s.compute(b, opt, chosen, rejected); }, s_);
  }
  template <class P> void after_step(P& policy, long step) {
    if (auto* s = std::get_if<synced<R>>(&s_)) s->after_step(policy, step);
  }
  R* synced_model() {
    auto* s = std::get_if<synced<R>>(&s_);
    return s ? s->model : nullptr;
  }

private:
  std::variant<none, precomputed, frozen<R>, adapter_disabled<M>, synced<R>, initial_adapter<M>> s_{};
};

} // namespace prefopt::train::reference
