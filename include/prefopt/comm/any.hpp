// prefopt/comm/any.hpp — a communicator chosen at run time: one process (comm::none) or MPI
// (comm::mpi, when prefopt::mpi is linked: PREFOPT_HAVE_MPI). The command line program uses it, so
// one build of `prefopt` runs both alone and under mpirun; a program that knows its set-up at
// compile time passes comm::none or comm::mpi to the trainer directly (no dispatch).
#pragma once

#include <cstdint>
#include <span>
#include <type_traits>
#include <variant>
#include <vector>

#include "prefopt/comm/buckets.hpp"
#include "prefopt/comm/none.hpp"
#ifdef PREFOPT_HAVE_MPI
#include "prefopt/comm/mpi.hpp"
#endif

namespace prefopt::comm {

class any {
public:
  any() = default;
  any(none c) : c_(c) {}
#ifdef PREFOPT_HAVE_MPI
  any(mpi c) : c_(c) {}
#endif
  int rank() const {
    return std::visit([](const auto& c) { return c.rank(); }, c_);
  }
  int size() const {
    return std::visit([](const auto& c) { return c.size(); }, c_);
  }
  template <class T> void all_reduce_sum(std::span<T> v) {
    std::visit([&](auto& c) { c.all_reduce_sum(v); }, c_);
  }
#ifdef PREFOPT_HAVE_MPI
  struct request {
    std::variant<none::request, mpi::request> r;
  };
#else
  struct request {
    std::variant<none::request> r;
  };
#endif
  request start_all_reduce_sum(std::span<float> v) {
    return std::visit([&](auto& c) { return request{c.start_all_reduce_sum(v)}; }, c_);
  }
  bool test(request& q) {
    return std::visit([&](auto& c) { return c.test(std::get<typename std::decay_t<decltype(c)>::request>(q.r)); }, c_);
  }
  void wait(request& q) {
    std::visit([&](auto& c) { c.wait(std::get<typename std::decay_t<decltype(c)>::request>(q.r)); }, c_);
  }
  std::vector<double> all_gather(std::span<const double> mine) {
    return std::visit([&](auto& c) { return c.all_gather(mine); }, c_);
  }
  std::vector<double> all_gather(std::span<const double> mine, std::vector<std::size_t>& counts) {
    return std::visit([&](auto& c) { return c.all_gather(mine, counts); }, c_);
  }
  void reduce_scatter_sum(std::span<const float> in, std::span<float> out, const std::vector<std::size_t>& counts) {
    std::visit([&](auto& c) { c.reduce_scatter_sum(in, out, counts); }, c_);
  }
  void all_gather_in_place(std::span<float> buf, const std::vector<std::size_t>& counts) {
    std::visit([&](auto& c) { c.all_gather_in_place(buf, counts); }, c_);
  }
  void gather(std::span<const float> mine, std::span<float> all, const std::vector<std::size_t>& counts, int root) {
    std::visit([&](auto& c) { c.gather(mine, all, counts, root); }, c_);
  }
  template <class T> void broadcast(std::span<T> v, int root) {
    std::visit([&](auto& c) { c.broadcast(v, root); }, c_);
  }
  void barrier() {
    std::visit([](auto& c) { c.barrier(); }, c_);
  }

private:
#ifdef PREFOPT_HAVE_MPI
  std::variant<none, mpi> c_{};
#else
  std::variant<none> c_{};
#endif
};

static_assert(Communicator<any>);
static_assert(AsyncAllReduce<any>);

} // namespace prefopt::comm
