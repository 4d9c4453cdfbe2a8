// prefopt/train/zero.hpp — ZeRO-1 (Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training
// Trillion Parameter Models", SC 2020, stage 1): the optimizer state is split across the ranks.
// Rank r owns the contiguous range [lo, hi) of the flat parameter buffer (ceil(n / ranks) values,
// the last rank fewer); after backward the gradient is reduce-scattered (each rank receives the
// sum of its range only), the global gradient norm is the all-reduced sum of the ranks' squared
// norms, the optimizer updates the own range with a state of hi − lo values, and the updated
// ranges are all-gathered into every rank's parameters. Enabled by training_args::zero = 1 with
// more than one rank. The optimizer is any whose state is per element (adamw, sgd): it runs on a
// sub-span with the parameter slices cut to the range.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "prefopt/comm/concepts.hpp"
#include "prefopt/models/concepts.hpp"

namespace prefopt::train {

struct zero_shard {
  std::size_t lo = 0, hi = 0;        // this rank's range of the flat buffer
  std::vector<std::size_t> counts;   // every rank's range size, in rank order
  std::vector<models::parameter_slice> slices;  // the model's slices cut to [lo, hi), offsets from lo
  [[nodiscard]] std::size_t size() const noexcept { return hi - lo; }
};

inline zero_shard make_zero_shard(std::size_t n, int rank, int ranks, const std::vector<models::parameter_slice>& slices) {
  zero_shard z;
  const std::size_t chunk = (n + std::size_t(ranks) - 1) / std::size_t(ranks);
  for (int r = 0; r < ranks; ++r) {
    const std::size_t lo = std::min(n, std::size_t(r) * chunk), hi = std::min(n, lo + chunk);
    z.counts.push_back(hi - lo);
    if (r == rank) z.lo = lo, z.hi = hi;
  }
  for (const auto& s : slices) {
    const std::size_t a = std::max(s.offset, z.lo), b = std::min(s.offset + s.size(), z.hi);
    if (a >= b) continue;
    models::parameter_slice c = s;
    c.offset = a - z.lo;
    c.shape = {b - a};
    z.slices.push_back(std::move(c));
  }
  if (slices.empty()) z.slices.push_back({.name = "all", .offset = 0, .shape = {z.size()}});
  return z;
}

namespace detail {
// ZeRO-1's end of a step (see clip_and_update for the one-copy version): reduce-scatter, clip by
// the global norm, update the own range, all-gather the parameters.
// Result: train::step_result; Args: train::training_args (trainer.hpp, which includes this header first).
template <class Result, class Comm, class Model, class Optimizer, class State, class Args, class After>
Result zero_update(Comm& comm, const zero_shard& z, Model& policy, Optimizer& opt, State& state, const Args& args, long& step,
                   double loss, std::map<std::string, double> metrics, After&& after) {
  Result out;
  out.metrics = std::move(metrics);
  out.metrics["loss"] = loss;
  auto& be = policy.backend();
  const auto g = policy.gradients();
  std::vector<float> mine(z.size());
  comm.reduce_scatter_sum(std::span<const float>(g.data(), g.size()), std::span<float>(mine), z.counts);
  std::copy(mine.begin(), mine.end(), g.begin() + std::ptrdiff_t(z.lo));
  const std::span<float> own = g.subspan(z.lo, z.size());
  double sq = be.sum_squares(own);
  comm.all_reduce_sum(std::span<double>(&sq, 1));
  const double norm = std::sqrt(sq);
  out.metrics["grad_norm"] = norm;
  if (!std::isfinite(loss) || !std::isfinite(norm)) {
    out.skipped = true;
    out.skip_reason = !std::isfinite(loss) ? "non-finite loss" : "non-finite gradient norm";
    policy.zero_grad();
  } else {
    if (args.max_grad_norm > 0.0 && args.max_grad_norm / (norm + 1e-6) < 1.0) be.scale(own, float(args.max_grad_norm / (norm + 1e-6)));
    const auto p = policy.parameters();
    opt.step(be, state, p.subspan(z.lo, z.size()), own, z.slices, opt.lr * args.schedule.factor(step));
    comm.all_gather_in_place(p, z.counts);
    ++step;
    after();
  }
  out.metrics["learning_rate"] = opt.lr * args.schedule.factor(step);
  return out;
}
} // namespace detail

} // namespace prefopt::train
