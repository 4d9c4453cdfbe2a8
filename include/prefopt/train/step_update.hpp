// prefopt/train/step_update.hpp — the end of every trainer's step (trainer.hpp, kto_trainer.hpp,
// reward_trainer.hpp): gradient clipping and the optimizer update (or ZeRO-1's split one), skipped
// when the loss or the gradient norm is not finite; the ranks' weight-hash check.
#pragma once

#include <cmath>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "prefopt/comm/buckets.hpp"
#include "prefopt/comm/collectives.hpp"
#include "prefopt/optim/clip.hpp"
#include "prefopt/train/distributed.hpp"
#include "prefopt/train/training_args.hpp"
#include "prefopt/train/zero.hpp"

namespace prefopt::train {

namespace detail {
// The end of every trainer's step: clip the gradient, then update unless the loss or the gradient
// norm is not finite (the weights stay untouched and the step counter does not move); `after`
// runs after an update (finish_step.hpp). Metrics: the loss's own, plus loss, grad_norm, learning_rate.
template <class Model, class Optimizer, class State, class After>
step_result clip_and_update(Model& policy, Optimizer& opt, State& state, const training_args& args, long& step, double loss,
                            std::map<std::string, double> metrics, After&& after) {
  step_result out;
  out.metrics = std::move(metrics);
  out.metrics["loss"] = loss;
  auto& be = policy.backend();
  const double norm = optim::clip_grad_norm(be, policy.gradients(), args.max_grad_norm);
  finish_step(out, policy, opt, args, step, loss, norm,
              [&](double lr) { opt.step(be, state, policy.parameters(), policy.gradients(), policy.parameter_slices(), lr); }, after);
  return out;
}

// After an update of a data parallel run: every weight_check_steps steps, the weights' hash of
// every rank must equal rank 0's.
template <class Comm, class Model> void check_weights(Comm& comm, Model& policy, const training_args& args, long step) {
  if (comm.size() == 1 || args.weight_check_steps <= 0 || step % args.weight_check_steps != 0) return;
  const auto w = policy.parameters();  // through the host: a GPU backend's weights live in device memory
  std::vector<std::remove_const_t<typename decltype(w)::element_type>> host(w.size());
  policy.backend().download(w, std::span(host));
  comm::check_same(comm, comm::hash_values(std::span<const typename decltype(host)::value_type>(host)),
                   "weights after step " + std::to_string(step));
}
// The end of a step of any trainer: one copy of the optimizer state (gradients all-reduced first),
// or ZeRO-1's split one.
template <class Comm, class Model, class Optimizer, class State, class Reduce, class After>
step_result update(Comm& comm, const std::optional<zero_shard>& zero, Model& policy, Optimizer& opt, State& state,
                   const training_args& args, long& step, double loss, std::map<std::string, double> metrics,
                   gradient_reduce<Comm, Reduce>& reduce, After&& after) {
  if (zero) return zero_update<step_result>(comm, *zero, policy, opt, state, args, step, loss, std::move(metrics), after);
  reduce.finish();
  return clip_and_update(policy, opt, state, args, step, loss, std::move(metrics), after);
}

template <class Comm, class Model>
std::optional<zero_shard> zero_shard_of(const Comm& comm, Model& policy, const training_args& args) {
  if (args.zero != 1 || comm.size() == 1) return std::nullopt;
  return make_zero_shard(policy.parameters().size(), comm.rank(), comm.size(), policy.parameter_slices());
}
} // namespace detail

} // namespace prefopt::train
