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
// The reduce-scatter of the gradient buffer `g` in pieces of at most `piece` values per rank: the
// pieces k of every rank's range are packed side by side, reduce-scattered, and this rank's sum is
// written back into its range of g. Memory: (ranks + 1) × piece values, never a copy of g (MPI's
// reduce-scatter of the whole buffer at once allocated temporaries of its size).
template <class Comm>
void reduce_scatter_in_buckets(Comm& comm, const zero_shard& z, std::span<float> g, std::size_t piece = std::size_t(1) << 20) {
  const std::size_t ranks = z.counts.size();
  std::vector<std::size_t> first(ranks, 0);
  for (std::size_t r = 1; r < ranks; ++r) first[r] = first[r - 1] + z.counts[r - 1];
  const std::size_t longest = *std::max_element(z.counts.begin(), z.counts.end());
  std::vector<float> send, recv;
  std::vector<std::size_t> counts(ranks);
  for (std::size_t at = 0; at < longest; at += piece) {
    send.clear();
    for (std::size_t r = 0; r < ranks; ++r) {
      counts[r] = z.counts[r] > at ? std::min(piece, z.counts[r] - at) : 0;
      send.insert(send.end(), g.begin() + std::ptrdiff_t(first[r] + at), g.begin() + std::ptrdiff_t(first[r] + at + counts[r]));
    }
    const std::size_t mine = counts[std::size_t(comm.rank())];
    recv.resize(mine);
    comm.reduce_scatter_sum(std::span<const float>(send), std::span<float>(recv), counts);
    std::copy(recv.begin(), recv.end(), g.begin() + std::ptrdiff_t(z.lo + at));
  }
}

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
  reduce_scatter_in_buckets(comm, z, g);
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
