// prefopt/comm/concepts.hpp — the communicator policy of the trainers (data parallel training).
//
//   train::trainer<model, losses::sigmoid, optim::adamw, reference::frozen<model>, comm::mpi> t(..., comm::mpi{});
// A communicator connects the ranks of one run. Each rank holds a disjoint shard of every global
// batch; the trainer gathers the small per-pair vectors (log-probs, token counts, columns) so that
// every rank evaluates the loss on the global batch, runs backward for its own pairs and sums the
// flat gradient buffer over the ranks. comm::none (one process) is the default and costs nothing.
// docs/training.md, "More than one process", shows how to run it.
#pragma once

#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "prefopt/core/error.hpp"

namespace prefopt::comm {

// A communication failure, or ranks that disagree (config, data, weights). Says which.
class comm_error : public error {
  using error::error;
};

template <class C>
concept Communicator = requires(C& c, const C& cc, std::span<float> f, std::span<double> d, std::span<std::int64_t> i,
                                std::span<const double> cd, std::span<std::uint64_t> u, int root) {
  { cc.rank() } -> std::convertible_to<int>;   // 0 .. size()-1; rank 0 owns every file a run writes
  { cc.size() } -> std::convertible_to<int>;   // number of ranks, ≥ 1
  c.all_reduce_sum(f);                         // in place: every rank ends with the element-wise sum
  c.all_reduce_sum(d);
  c.all_reduce_sum(i);
  // Every rank's vector, concatenated in rank order (lengths may differ); counts[r] = rank r's length.
  { c.all_gather(cd) } -> std::same_as<std::vector<double>>;
  { c.all_gather(cd, std::declval<std::vector<std::size_t>&>()) } -> std::same_as<std::vector<double>>;
  // ZeRO-1: rank r receives the sum over the ranks of its range of `in` (ranges of counts[0],
  // counts[1], ... values in rank order); then every rank's range of a buffer goes to every rank.
  c.reduce_scatter_sum(std::span<const float>(f), f, std::declval<const std::vector<std::size_t>&>());
  c.all_gather_in_place(f, std::declval<const std::vector<std::size_t>&>());
  // Host memory, for checkpoints: every rank's range (counts as above) into `all` on `root` only
  // (`all` may be empty elsewhere).
  c.gather(std::span<const float>(f), f, std::declval<const std::vector<std::size_t>&>(), root);
  c.broadcast(u, root);                        // root's values to every rank
  c.broadcast(d, root);
  c.barrier();
};

// A communicator whose reduce-scatter and all-gather take equal ranges only (NCCL's): it says so
// with `static constexpr bool equal_ranges = true`, and ZeRO-1 (train/zero.hpp) pads for it.
template <class C> constexpr bool needs_equal_ranges = [] {
  if constexpr (requires { C::equal_ranges; }) return bool(C::equal_ranges);
  else return false;
}();

} // namespace prefopt::comm
