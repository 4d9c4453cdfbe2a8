// prefopt/optim/any_optimizer.hpp — an optimizer chosen at run time (configuration files).
//
// Holds adamw or sgd; its state holds the matching state. Satisfies optim::Optimizer, so the
// trainer takes it like any other.
#pragma once

#include <variant>

#include "prefopt/optim/adamw.hpp"
#include "prefopt/optim/sgd.hpp"

namespace prefopt::optim {

struct any_optimizer {
  std::variant<adamw, sgd> which{adamw{}};
  double lr = 1e-6;

  any_optimizer() = default;
  any_optimizer(adamw a) : which(a), lr(a.lr) {}
  any_optimizer(sgd s) : which(s), lr(s.lr) {}

  template <Backend B> struct state {
    std::variant<typename adamw::template state<B>, typename sgd::template state<B>> s;
    long steps = 0;
    std::vector<state_view> buffers() {
      return std::visit([](auto& x) { return x.buffers(); }, s);
    }
  };

  template <Backend B> state<B> make_state(B& be, std::size_t n) const {
    return std::visit(
        [&](const auto& o) { return state<B>{decltype(state<B>::s)(o.make_state(be, n)), 0}; }, which);
  }
  void validate() const {
    std::visit([](const auto& o) { o.validate(); }, which);
  }
  template <Backend B>
  void step(B& be, state<B>& st, std::span<float> params, std::span<const float> grads,
            const std::vector<models::parameter_slice>& slices, double lr_now) const {
    std::visit(
        [&](const auto& o) {
          using O = std::remove_cvref_t<decltype(o)>;
          auto& inner = std::get<typename O::template state<B>>(st.s);
          inner.steps = st.steps;
          o.step(be, inner, params, grads, slices, lr_now);
          st.steps = inner.steps;
        },
        which);
  }
};

} // namespace prefopt::optim
