// prefopt/train/zero.hpp — ZeRO-1 (Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training
// Trillion Parameter Models", SC 2020, stage 1): the optimizer state is split across the ranks.
// Rank r owns the contiguous range [lo, hi) of the flat parameter buffer (ceil(n / ranks) values,
// the last rank fewer); after backward the gradient is reduce-scattered (each rank receives the
// sum of its range only), the global gradient norm is the all-reduced sum of the ranks' squared
// norms, the optimizer updates the own range with a state of hi − lo values, and the updated
// ranges are all-gathered into every rank's parameters. Enabled by training_args::zero = 1 with
// more than one rank. The optimizer is any whose state is per element (adamw, sgd): it runs on a
// sub-span with the parameter slices cut to the range. Every buffer involved is the backend's: with
// the CUDA backend and comm::nccl the reduce-scatter, the own-range AdamW and the all-gather run
// in device memory (ncclReduceScatter / ncclAllGather).
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "prefopt/comm/concepts.hpp"
#include "prefopt/models/concepts.hpp"
#include "prefopt/train/finish_step.hpp"

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
// reduce-scatter of the whole buffer at once allocated temporaries of its size). The staging
// buffers are the backend's (device memory for the CUDA backend, which comm::nccl reduces there);
// a communicator that takes equal ranges only (comm::needs_equal_ranges: NCCL) gets every rank's
// piece padded with zeros to the longest, which leaves the sums unchanged.
template <class Comm, class Backend>
void reduce_scatter_in_buckets(Comm& comm, Backend& be, const zero_shard& z, std::span<float> g,
                               std::size_t piece = std::size_t(1) << 20) {
  constexpr bool equal = comm::needs_equal_ranges<Comm>;
  const std::size_t ranks = z.counts.size();
  std::vector<std::size_t> first(ranks, 0);
  for (std::size_t r = 1; r < ranks; ++r) first[r] = first[r - 1] + z.counts[r - 1];
  const std::size_t longest = *std::max_element(z.counts.begin(), z.counts.end());
  auto send = be.template allocate<float>(std::max<std::size_t>(ranks * std::min(piece, longest), 1));
  auto recv = be.template allocate<float>(std::max<std::size_t>(std::min(piece, longest), 1));
  std::vector<std::size_t> counts(ranks), width(ranks);
  for (std::size_t at = 0; at < longest; at += piece) {
    std::size_t packed = 0;
    for (std::size_t r = 0; r < ranks; ++r) {
      counts[r] = z.counts[r] > at ? std::min(piece, z.counts[r] - at) : 0;
      width[r] = equal ? std::min(piece, longest - at) : counts[r];
      packed += width[r];
    }
    const auto out = send.span().first(packed);
    if (equal) be.fill(out, 0.0f);
    for (std::size_t r = 0, to = 0; r < ranks; to += width[r], ++r)
      if (counts[r]) be.copy(std::span<const float>(g.subspan(first[r] + at, counts[r])), out.subspan(to, counts[r]));
    const std::size_t me = std::size_t(comm.rank());
    comm.reduce_scatter_sum(std::span<const float>(out), recv.span().first(width[me]), width);
    if (counts[me]) be.copy(std::span<const float>(recv.span().first(counts[me])), g.subspan(z.lo + at, counts[me]));
  }
}

// Every rank's range of the parameters `p` to every rank. For a communicator of equal ranges only
// (NCCL) whose ranges are not (a size that is not a multiple of the ranks), through a padded
// buffer of the backend's of ranks × ceil(n / ranks) values.
template <class Comm, class Backend> void all_gather_ranges(Comm& comm, Backend& be, const zero_shard& z, std::span<float> p) {
  if constexpr (comm::needs_equal_ranges<Comm>) {
    const std::size_t longest = *std::max_element(z.counts.begin(), z.counts.end());
    bool uneven = false;
    for (auto c : z.counts) uneven = uneven || c != longest;
    if (uneven) {
      const std::size_t ranks = z.counts.size(), me = std::size_t(comm.rank());
      auto buf = be.template allocate<float>(ranks * longest);
      if (z.size()) be.copy(std::span<const float>(p.subspan(z.lo, z.size())), buf.span().subspan(me * longest, z.size()));
      comm.all_gather_in_place(buf.span(), std::vector<std::size_t>(ranks, longest));
      for (std::size_t r = 0, at = 0; r < ranks; at += z.counts[r], ++r)
        if (z.counts[r]) be.copy(std::span<const float>(buf.span().subspan(r * longest, z.counts[r])), p.subspan(at, z.counts[r]));
      return;
    }
  }
  comm.all_gather_in_place(p, z.counts);
}

// ZeRO-1's end of a step (see clip_and_update for the one-copy version): reduce-scatter, clip by
// the global norm, update the own range, all-gather the parameters.
// Result: train::step_result; Args: train::training_args (training_args.hpp; step_update.hpp calls this).
template <class Result, class Comm, class Model, class Optimizer, class State, class Args, class After>
Result zero_update(Comm& comm, const zero_shard& z, Model& policy, Optimizer& opt, State& state, const Args& args, long& step,
                   double loss, std::map<std::string, double> metrics, After&& after) {
  Result out;
  out.metrics = std::move(metrics);
  out.metrics["loss"] = loss;
  auto& be = policy.backend();
  const auto g = policy.gradients();
  reduce_scatter_in_buckets(comm, be, z, g);
  const std::span<float> own = g.subspan(z.lo, z.size());
  double sq = be.sum_squares(own);
  comm.all_reduce_sum(std::span<double>(&sq, 1));
  const double norm = std::sqrt(sq);
  const auto p = policy.parameters();
  finish_step(
      out, policy, opt, args, step, loss, norm,
      [&](double lr) {
        if (args.max_grad_norm > 0.0 && args.max_grad_norm / (norm + 1e-6) < 1.0) be.scale(own, float(args.max_grad_norm / (norm + 1e-6)));
        opt.step(be, state, p.subspan(z.lo, z.size()), own, z.slices, lr);
        all_gather_ranges(comm, be, z, p);
      },
      after);
  return out;
}
} // namespace detail

} // namespace prefopt::train
