// prefopt/comm/buckets.hpp — the gradient all-reduce in buckets, started while backward runs.
//
//   comm::bucket_reducer r(world, policy.gradients(), 1 << 22);
//   policy.set_gradients_ready([&](std::size_t at, std::size_t n) { r.ready(at, n); });   // overlap
//   policy.backward(d);            // buckets start as soon as every value in them is final
//   r.finish();                    // starts the rest, waits for all: the buffer holds the sum
// The buckets are cut from the END of the buffer ([n − B, n), [n − 2B, n − B), ..., the first one
// shorter), because a transformer's backward finishes its flat buffer from the end (the final norm
// and the last layer first, the embeddings last). Buckets are started in that fixed order on every
// rank, whatever order the ranks' backwards finish them in (a rank without pairs runs no backward
// and starts them all in finish()): non-blocking collectives are matched by their order.
// Overlapped or not (no ready() calls), the same buckets go through the same collective, so the
// sums are bit-equal between the two. A communicator with a non-blocking all-reduce
// (start_all_reduce_sum / test / wait: comm::mpi's MPI_Iallreduce, comm::nccl's stream-ordered
// ncclAllReduce, comm::none, comm::any) overlaps; any other Communicator reduces every bucket in
// finish(), blocking.
//
// Open MPI progresses a non-blocking collective only inside MPI calls (no progress thread by
// default): every ready() also tests the started buckets, which moves them on between layers.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

#include "prefopt/comm/concepts.hpp"

namespace prefopt::comm {

// A communicator whose float all-reduce can be started and waited for later.
template <class C>
concept AsyncAllReduce = Communicator<C> && requires(C& c, std::span<float> f, typename C::request& r) {
  { c.start_all_reduce_sum(f) } -> std::same_as<typename C::request>;  // in place; f must stay alive until wait
  { c.test(r) } -> std::convertible_to<bool>;                          // true once complete (drives progress)
  c.wait(r);                                                           // blocks until complete
};

namespace detail {
struct no_request {};
template <class C> struct request_of {
  using type = no_request;
};
template <AsyncAllReduce C> struct request_of<C> {
  using type = typename C::request;
};
} // namespace detail

template <Communicator C> class bucket_reducer {
public:
  static constexpr std::size_t max_bucket = std::size_t(1) << 26;  // MPI counts are int

  bucket_reducer(C& c, std::span<float> g, std::size_t bucket = std::size_t(1) << 22) : c_(c), g_(g) {
    bucket = std::clamp<std::size_t>(bucket, 1, max_bucket);
    for (std::size_t hi = g.size(); hi > 0;) {
      const std::size_t lo = hi > bucket ? hi - bucket : 0;
      lo_.push_back(lo), hi_.push_back(hi), left_.push_back(hi - lo);
      hi = lo;
    }
  }
  bucket_reducer(const bucket_reducer&) = delete;
  bucket_reducer& operator=(const bucket_reducer&) = delete;
  // No wait here: a rank that leaves a step by an exception must not block in a collective its
  // peers may never finish (the run ends through MPI_Abort); the buffer is the model's, still alive.
  ~bucket_reducer() = default;

  std::size_t buckets() const noexcept { return lo_.size(); }
  std::size_t started() const noexcept { return next_; }
  // Bucket k (k = 0 is the buffer's end): [lo, hi).
  std::size_t bucket_begin(std::size_t k) const { return lo_[k]; }
  std::size_t bucket_end(std::size_t k) const { return hi_[k]; }

  // The values [at, at + n) are final: start every bucket, in order, whose values all are.
  void ready(std::size_t at, std::size_t n) {
    const std::size_t end = std::min(at + n, g_.size());
    for (std::size_t k = next_; k < lo_.size(); ++k) {  // buckets go down the buffer: stop below `at`
      if (hi_[k] <= at) break;
      const std::size_t a = std::max(at, lo_[k]), b = std::min(end, hi_[k]);
      if (a < b) left_[k] -= std::min(left_[k], b - a);
    }
    if constexpr (AsyncAllReduce<C>) {
      while (next_ < lo_.size() && left_[next_] == 0) start(next_++);
      for (auto& r : requests_) (void)c_.test(r);
    }
  }

  // Starts the buckets not started yet (in order) and waits for every one: g holds the sum.
  void finish() {
    if constexpr (AsyncAllReduce<C>) {
      while (next_ < lo_.size()) start(next_++);
      for (auto& r : requests_) c_.wait(r);
      requests_.clear();
    } else {
      for (; next_ < lo_.size(); ++next_) c_.all_reduce_sum(g_.subspan(lo_[next_], hi_[next_] - lo_[next_]));
    }
  }

private:
  void start(std::size_t k) {
    if constexpr (AsyncAllReduce<C>) requests_.push_back(c_.start_all_reduce_sum(g_.subspan(lo_[k], hi_[k] - lo_[k])));
  }
  C& c_;
  std::span<float> g_;
  std::vector<std::size_t> lo_, hi_, left_;  // per bucket: range and values not final yet
  std::size_t next_ = 0;                     // buckets [0, next_) are started
  std::vector<typename detail::request_of<C>::type> requests_;
};

// The backend's compute stream, for a communicator that must order its device collectives after
// the work queued on it (comm::nccl with the CUDA backend); nothing for the others.
template <class C, class Backend> void follow_backend(C& c, Backend& be) {
  if constexpr (requires { c.follow_stream(be.ctx().stream()); }) c.follow_stream(be.ctx().stream());
}

} // namespace prefopt::comm
