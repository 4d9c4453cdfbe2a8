// prefopt/comm/none.hpp — the communicator of a run in one process (the trainers' default).
// Every operation is the identity: a reduction over one rank, a gather of one vector.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "prefopt/comm/buckets.hpp"
#include "prefopt/comm/concepts.hpp"

namespace prefopt::comm {

struct none {
  static constexpr int rank() noexcept { return 0; }
  static constexpr int size() noexcept { return 1; }
  void all_reduce_sum(std::span<float>) const noexcept {}
  void all_reduce_sum(std::span<double>) const noexcept {}
  void all_reduce_sum(std::span<std::int64_t>) const noexcept {}
  // The non-blocking all-reduce (comm/buckets.hpp): complete at once.
  struct request {};
  request start_all_reduce_sum(std::span<float>) const noexcept { return {}; }
  bool test(request&) const noexcept { return true; }
  void wait(request&) const noexcept {}
  std::vector<double> all_gather(std::span<const double> mine) const { return {mine.begin(), mine.end()}; }
  std::vector<double> all_gather(std::span<const double> mine, std::vector<std::size_t>& counts) const {
    counts.assign(1, mine.size());
    return {mine.begin(), mine.end()};
  }
  void reduce_scatter_sum(std::span<const float> in, std::span<float> out, const std::vector<std::size_t>&) const {
    std::copy(in.begin(), in.begin() + std::ptrdiff_t(out.size()), out.begin());
  }
  void all_gather_in_place(std::span<float>, const std::vector<std::size_t>&) const noexcept {}
  void gather(std::span<const float> mine, std::span<float> all, const std::vector<std::size_t>&, int) const {
    std::copy(mine.begin(), mine.end(), all.begin());
  }
  void broadcast(std::span<std::uint64_t>, int) const noexcept {}
  void broadcast(std::span<double>, int) const noexcept {}
  void barrier() const noexcept {}
};

static_assert(Communicator<none>);
static_assert(AsyncAllReduce<none>);

} // namespace prefopt::comm
