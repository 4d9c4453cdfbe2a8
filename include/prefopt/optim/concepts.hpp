// prefopt/optim/concepts.hpp — the optimizer concept.
//
// An optimizer is an aggregate of hyperparameters (`adamw{.lr = 1e-6}`) plus a state type it
// makes for a backend and a parameter count. step() updates the trainable slices of a flat
// parameter buffer from the flat gradient buffer with the learning rate the schedule gives.
// The state exposes its buffers by name so checkpoints can save and restore it exactly.
#pragma once

#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "prefopt/core/backend.hpp"
#include "prefopt/models/concepts.hpp"

namespace prefopt::optim {

// A named state buffer of an optimizer ("exp_avg", "exp_avg_sq", "momentum_buffer").
struct state_view {
  std::string name;
  std::span<float> data;
};

template <class O, class B>
concept Optimizer = Backend<B> && requires(const O& o, B& be, std::size_t n, std::span<float> p, std::span<const float> g,
                                            const std::vector<models::parameter_slice>& s, double lr) {
  { o.lr } -> std::convertible_to<double>;                          // base learning rate
  typename O::template state<B>;
  { o.make_state(be, n) } -> std::same_as<typename O::template state<B>>;
  o.validate();                                                     // config_error on impossible values
} && requires(const O& o, B& be, typename O::template state<B>& st, std::span<float> p, std::span<const float> g,
              const std::vector<models::parameter_slice>& s, double lr) {
  o.step(be, st, p, g, s, lr);                                      // one update at learning rate lr
  { st.buffers() } -> std::same_as<std::vector<state_view>>;        // for checkpoints
  { st.steps } -> std::convertible_to<long>;                        // updates taken
};

namespace detail {
// Maximal runs of adjacent trainable slices that share the weight-decay flag.
struct run {
  std::size_t offset, size;
  bool decay;
};
inline std::vector<run> runs_of(const std::vector<models::parameter_slice>& slices, std::size_t total) {
  std::vector<run> out;
  if (slices.empty()) {
    out.push_back({0, total, true});
    return out;
  }
  for (const auto& s : slices) {
    if (!s.trainable || s.size() == 0) continue;
    if (!out.empty() && out.back().offset + out.back().size == s.offset && out.back().decay == s.weight_decay)
      out.back().size += s.size();
    else
      out.push_back({s.offset, s.size(), s.weight_decay});
  }
  return out;
}
} // namespace detail

} // namespace prefopt::optim
