// prefopt/train/distributed.hpp — the global batch of a data parallel step, built from every
// rank's shard: the per-pair (per-example) vectors are packed into one buffer, all-gathered in
// rank order (one collective) and unpacked, so every rank evaluates the loss on the same global
// batch: rank 0's rows first, then rank 1's, ... The vectors are small (a few numbers per pair);
// the gradient buffer is what is large. Integers and flags travel as doubles, exactly. And the
// gradient all-reduce of a step, its buckets started during the step's last backward.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "prefopt/comm/buckets.hpp"
#include "prefopt/comm/concepts.hpp"
#include "prefopt/losses/batch.hpp"
#include "prefopt/losses/kto.hpp"

namespace prefopt::train {

namespace detail {
// Gathers a batch described by `columns(batch, f)` (f called on each column vector in a fixed
// order); `first` becomes the index of this rank's first row in the result.
template <comm::Communicator C, class Batch, class Columns>
Batch gather_columns(C& c, const Batch& mine, std::size_t rows, std::size_t& first, Columns columns) {
  first = 0;
  if (c.size() == 1) return mine;
  std::vector<double> buf{double(rows)};
  columns(mine, [&](const auto& v) {
    buf.push_back(double(v.size()));
    for (const auto x : v) buf.push_back(double(x));
  });
  std::vector<std::size_t> counts;
  const std::vector<double> all = c.all_gather(std::span<const double>(buf), counts);
  Batch out;
  std::size_t at = 0, before = 0;
  for (std::size_t r = 0; r < counts.size(); ++r) {
    if (int(r) == c.rank()) first = before;
    before += std::size_t(all[at++]);
    columns(out, [&](auto& v) {
      const auto n = std::size_t(all[at++]);
      for (std::size_t i = 0; i < n; ++i) v.push_back(static_cast<typename std::decay_t<decltype(v)>::value_type>(all[at++]));
    });
  }
  return out;
}
} // namespace detail

// Every rank's pairs in rank order; `first`: this rank's first pair in the result.
template <comm::Communicator C> pair_batch<double> gather_pairs(C& c, const pair_batch<double>& mine, std::size_t& first) {
  return detail::gather_columns(c, mine, mine.size(), first, [](auto& b, auto&& f) {
    f(b.policy_chosen), f(b.policy_rejected), f(b.reference_chosen), f(b.reference_rejected);
    f(b.chosen_tokens), f(b.rejected_tokens), f(b.preference_prob), f(b.score_chosen), f(b.score_rejected);
    f(b.cost), f(b.weight);
  });
}

// Every rank's unpaired examples (KTO) in rank order, KL rows included.
template <comm::Communicator C>
unpaired_batch<double> gather_unpaired(C& c, const unpaired_batch<double>& mine, std::size_t& first) {
  return detail::gather_columns(c, mine, mine.size(), first, [](auto& b, auto&& f) {
    f(b.policy), f(b.reference), f(b.desirable), f(b.policy_kl), f(b.reference_kl);
  });
}

namespace detail {
// The gradient all-reduce of one data parallel step without ZeRO-1 (comm::bucket_reducer), as the
// trainers run it. The step's last backward on this rank runs through backward(true, f): with
// `overlap` (training_args::overlap_reduce) and a model that announces finished gradients
// (set_gradients_ready), each bucket starts as soon as it is final; finish() starts the rest and
// waits for all. Nothing in one process or with ZeRO-1 (whose reduce-scatter runs after
// backward, train/zero.hpp).
template <class Comm, class Model> class gradient_reduce {
public:
  gradient_reduce(Comm& c, Model& m, bool active, bool overlap, std::size_t bucket)
      : c_(c), m_(m), active_(active && c.size() > 1), overlap_(overlap), bucket_(bucket) {}
  gradient_reduce(const gradient_reduce&) = delete;
  gradient_reduce& operator=(const gradient_reduce&) = delete;
  ~gradient_reduce() { disarm(); }
  template <class F> void backward(bool last, F&& f) {
    if constexpr (announces) {
      if (active_ && last && overlap_) {
        auto& r = reducer();
        m_.set_gradients_ready([&r](std::size_t at, std::size_t n) { r.ready(at, n); });
        f();
        disarm();
        return;
      }
    }
    f();
  }
  void finish() {
    if (active_) reducer().finish();
  }

private:
  static constexpr bool announces =
      requires(Model& m, std::function<void(std::size_t, std::size_t)> f) { m.set_gradients_ready(f); };
  comm::bucket_reducer<Comm>& reducer() {
    if (!r_) r_.emplace(c_, m_.gradients(), bucket_);
    return *r_;
  }
  void disarm() {
    if constexpr (announces) m_.set_gradients_ready({});
  }
  Comm& c_;
  Model& m_;
  bool active_, overlap_;
  std::size_t bucket_;
  std::optional<comm::bucket_reducer<Comm>> r_;
};
} // namespace detail

// The global batch_context of a single-pass step: pairs and chosen tokens summed over the ranks.
template <comm::Communicator C> batch_context<double> global_context(C& c, batch_context<double> local) {
  double v[2] = {local.pairs, local.chosen_tokens};
  c.all_reduce_sum(std::span<double>(v, 2));
  return {v[0], v[1]};
}

} // namespace prefopt::train
