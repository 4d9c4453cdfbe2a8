// prefopt/optim/sgd.hpp — stochastic gradient descent with momentum, as torch.optim.SGD.
//
//   g ← g + wd·p;  b ← μ·b + (1 − dampening)·g  (b ← g at the first step);
//   g ← g + μ·b (nesterov) or g ← b;  p ← p − lr·g
// Frozen slices are not touched; weight decay skips slices marked weight_decay = false.
#pragma once

#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/optim/concepts.hpp"

namespace prefopt::optim {

struct sgd {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;

  template <Backend B> struct state {
    typename B::template buffer<float> momentum_buffer;
    long steps = 0;
    std::vector<state_view> buffers() { return {{"momentum_buffer", momentum_buffer.span()}}; }
  };

  template <Backend B> state<B> make_state(B& be, std::size_t n) const {
    return {be.template allocate<float>(momentum != 0.0 ? n : 0), 0};
  }

  void validate() const {
    auto bad = [](const char* f, double v, const char* rule) {
      throw config_error(std::string("optimizer 'sgd': field '") + f + "'", "value " + std::to_string(v) + " " + rule);
    };
    if (!(lr >= 0.0)) bad("lr", lr, "must be >= 0");
    if (!(momentum >= 0.0)) bad("momentum", momentum, "must be >= 0");
    if (!(weight_decay >= 0.0)) bad("weight_decay", weight_decay, "must be >= 0");
    if (nesterov && (momentum <= 0.0 || dampening != 0.0))
      bad("nesterov", 1.0, "needs momentum > 0 and dampening = 0 (as torch.optim.SGD)");
  }

  template <Backend B>
  void step(B& be, state<B>& st, std::span<float> params, std::span<const float> grads,
            const std::vector<models::parameter_slice>& slices, double lr_now) const {
    sgd_args a;
    a.lr = float(lr_now);
    a.momentum = float(momentum);
    a.dampening = float(dampening);
    a.nesterov = nesterov;
    a.first_step = st.steps == 0;
    ++st.steps;
    for (const auto& r : detail::runs_of(slices, params.size())) {
      a.weight_decay = r.decay ? float(weight_decay) : 0.0f;
      std::span<float> buf = momentum != 0.0 ? st.momentum_buffer.span().subspan(r.offset, r.size) : std::span<float>{};
      be.sgd_step(params.subspan(r.offset, r.size), grads.subspan(r.offset, r.size), buf, a);
    }
  }
};

} // namespace prefopt::optim
