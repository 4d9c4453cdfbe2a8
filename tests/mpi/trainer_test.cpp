// Data parallel training over MPI, run on 2 ranks: 2 ranks × micro-batch b step exactly as
// 1 rank × micro-batch 2b (loss, metrics and weights after 5 AdamW steps, to 1e-6 relative) for a
// pointwise loss (sigmoid), a token-count mixture (sigmoid + sft), a batch-coupled loss (aot, with
// one and with two local micro-batches) and KTO with its KL baseline. Every rank computes the
// one-process run itself (comm::none) and compares; the weights are also checked bit-equal
// across ranks every step. Plus the communicator's own operations and the mismatch errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "prefopt/comm/mpi.hpp"
#include "prefopt/losses.hpp"
#include "prefopt/losses/kto.hpp"
#include "prefopt/models/log_linear_problem.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/train/kto_trainer.hpp"
#include "prefopt/train/trainer.hpp"
#include "prefopt/backends/eigen.hpp"
#include "support/unpaired_log_linear.hpp"

using namespace prefopt;
using B = backends::eigen;
using model = models::log_linear<B>;
using batch = train::preference_batch<models::log_linear_input>;

namespace {
const auto problem = models::log_linear_problem::make(3, 4, 3);
model make_model() { return model(B{}, problem.prompts, problem.responses, problem.dims, problem.features, problem.theta_ref); }

batch make_batch(const std::vector<models::sampled_pair>& p) { return {models::log_linear_problem::input_of(p), p.size()}; }

// Differences relative to each value's scale: max(|a|, |b|, scale). The weights and log-probs are
// float32, so a value far smaller than its neighbours (a weight near 0, a reward that is the
// difference of two log-probs near -1) carries their absolute rounding: scale is the largest
// weight for weights and 1 for metrics (log-probs, losses and rewards of order 1).
struct tally {
  std::size_t values = 0, bit_equal = 0;
  double worst = 0.0;  // largest relative difference
  void add(double a, double b, double scale) {
    ++values;
    if (a == b) ++bit_equal;
    const double rel = std::abs(a - b) / std::max({std::abs(a), std::abs(b), scale, 1e-30});
    worst = std::max(worst, a == b ? 0.0 : rel);
    CHECK(rel <= 1e-6);
  }
};

void compare_metrics(const train::step_result& one, const train::step_result& dp, tally& t) {
  CHECK(one.skipped == dp.skipped);
  REQUIRE(one.metrics.size() == dp.metrics.size());
  for (const auto& kv : one.metrics) {
    INFO(kv.first);
    REQUIRE(dp.metrics.count(kv.first));
    t.add(kv.second, dp.metrics.at(kv.first), 1.0);
  }
}

void compare_weights(model& one, model& dp, tally& t) {
  double scale = 0.0;
  for (const float x : one.parameters()) scale = std::max(scale, double(std::abs(x)));
  for (std::size_t i = 0; i < one.parameters().size(); ++i) t.add(one.parameters()[i], dp.parameters()[i], scale);
}

void report(const std::string& what, const tally& m, const tally& w) {
  MESSAGE(what << ": metrics " << m.bit_equal << "/" << m.values << " bit-equal (worst relative difference " << m.worst
               << "), weights " << w.bit_equal << "/" << w.values << " bit-equal (worst " << w.worst << ")");
}

// 5 steps of 8 pairs: one process with one micro-batch of 8, and this rank with its `local`
// micro-batches of its share (2 ranks: 4 pairs each).
template <class Loss> void paired_equality(Loss loss, std::size_t local, const std::string& what, int zero = 0) {
  comm::mpi world;
  REQUIRE(world.size() == 2);
  auto one = make_model(), dp = make_model(), ref = make_model();
  using frozen = train::reference::frozen<model>;
  train::training_args args{.max_grad_norm = 0.5};
  args.weight_check_steps = 1;
  args.zero = zero;
  train::trainer<model, Loss, optim::adamw, frozen> a(one, loss, optim::adamw{.lr = 0.05}, {&ref}, args);
  train::trainer<model, Loss, optim::adamw, frozen, comm::mpi> d(dp, loss, optim::adamw{.lr = 0.05}, {&ref}, args, world);
  std::mt19937_64 rng(7);
  tally m, w;
  const std::size_t share = 8 / std::size_t(world.size());
  for (int step = 0; step < 5; ++step) {
    const auto p = problem.sample_pairs(8, rng);
    const auto ra = a.step(make_batch(p));
    std::vector<batch> micro;
    const std::size_t begin = share * std::size_t(world.rank()), per = share / local;
    for (std::size_t k = 0; k < local; ++k)
      micro.push_back(make_batch({p.begin() + std::ptrdiff_t(begin + k * per), p.begin() + std::ptrdiff_t(begin + (k + 1) * per)}));
    const auto rd = d.step(std::span<const batch>(micro));
    compare_metrics(ra, rd, m);
  }
  compare_weights(one, dp, w);
  CHECK(a.global_step() == 5);
  CHECK(d.global_step() == 5);
  if (zero) {  // each rank holds its half of AdamW's state (12 parameters: 6 each)
    REQUIRE(d.zero());
    CHECK(d.optimizer_state().m.span().size() == one.parameters().size() / 2);
    CHECK(d.optimizer_state().v.span().size() == one.parameters().size() / 2);
    CHECK(a.optimizer_state().m.span().size() == one.parameters().size());
  }
  report(what + (zero ? ", ZeRO-1" : ""), m, w);
}

// comm::mpi held to equal ranges in reduce-scatter and all-gather, as NCCL is (comm::nccl::equal_ranges).
struct equal_ranges_mpi : comm::mpi {
  static constexpr bool equal_ranges = true;
  int calls = 0;
  void reduce_scatter_sum(std::span<const float> in, std::span<float> out, const std::vector<std::size_t>& counts) {
    ++calls;
    for (auto c : counts) REQUIRE(c == out.size());
    comm::mpi::reduce_scatter_sum(in, out, counts);
  }
  void all_gather_in_place(std::span<float> buf, const std::vector<std::size_t>& counts) {
    ++calls;
    for (auto c : counts) REQUIRE(c == counts.front());
    comm::mpi::all_gather_in_place(buf, counts);
  }
};
static_assert(comm::needs_equal_ranges<equal_ranges_mpi>);
static_assert(!comm::needs_equal_ranges<comm::mpi>);

// KTO: n examples and n KL rows (the previous example's response): tests/support/unpaired_log_linear.hpp.
using unpaired = test::unpaired_batch;
using test::slice;
unpaired make_unpaired(std::size_t n, std::mt19937_64& rng) { return test::make_unpaired(problem, n, rng); }
} // namespace

TEST_CASE("2 ranks × micro-batch b equal 1 rank × micro-batch 2b") {
  SUBCASE("sigmoid (pointwise: one pass per micro-batch with the global context)") {
    paired_equality(losses::sigmoid{.beta = 0.5}, 1, "sigmoid");
  }
  SUBCASE("sigmoid + sft (the token-mean NLL needs the global chosen-token count)") {
    paired_equality(0.5 * losses::sigmoid{} + 1.0 * losses::sft{}, 2, "sigmoid+sft, 2 micro-batches per rank");
  }
  SUBCASE("aot (batch-coupled), one local micro-batch: one pass") { paired_equality(losses::aot{.beta = 0.5}, 1, "aot"); }
  SUBCASE("aot (batch-coupled), two local micro-batches: two passes") {
    paired_equality(losses::aot{.beta = 0.5}, 2, "aot, 2 micro-batches per rank");
  }
}

TEST_CASE("ZeRO-1: the split optimizer state gives the same steps") {
  SUBCASE("sigmoid") { paired_equality(losses::sigmoid{.beta = 0.5}, 1, "sigmoid", 1); }
  SUBCASE("aot, two local micro-batches") { paired_equality(losses::aot{.beta = 0.5}, 2, "aot, 2 micro-batches per rank", 1); }
}

TEST_CASE("KTO: 2 ranks × b examples equal 1 rank × 2b, KL baseline over the global batch") {
  for (const int zero : {0, 1}) {
  CAPTURE(zero);
  comm::mpi world;
  auto one = make_model(), dp = make_model(), ref = make_model();
  for (auto* m : {&one, &dp}) m->parameters()[0] += 0.5f, m->parameters()[3] -= 0.4f;  // a non-zero KL baseline
  train::training_args args{};
  args.weight_check_steps = 1;
  args.zero = zero;
  using T1 = train::kto_trainer<model, losses::kto, optim::adamw>;
  using T2 = train::kto_trainer<model, losses::kto, optim::adamw, model, comm::mpi>;
  T1 a(one, losses::kto{.beta = 0.5}, optim::adamw{.lr = 0.05}, {.model = &ref}, args);
  T2 d(dp, losses::kto{.beta = 0.5}, optim::adamw{.lr = 0.05}, {.model = &ref}, args, world);
  std::mt19937_64 rng(11);
  tally m, w;
  int kl_steps = 0;
  for (int step = 0; step < 5; ++step) {
    const unpaired b = make_unpaired(10, rng);
    const auto ra = a.step(b);
    const auto rd = d.step(world.rank() == 0 ? slice(b, 0, 5) : slice(b, 5, 10));
    kl_steps += ra.metrics.at("kl") > 0.0 ? 1 : 0;
    compare_metrics(ra, rd, m);
  }
  CHECK(kl_steps > 0);  // the KL baseline (clamped at 0) took part
  compare_weights(one, dp, w);
  CHECK(d.zero().has_value() == (zero == 1));
  report(zero ? "kto, ZeRO-1" : "kto", m, w);
  }
}

TEST_CASE("comm::mpi operations") {
  comm::mpi world;
  const int r = world.rank(), n = world.size();
  std::vector<double> v{1.0 + r, 10.0 * r};
  world.all_reduce_sum(std::span<double>(v));
  CHECK(v[0] == double(n) + double(n * (n - 1)) / 2.0);
  std::vector<float> g(10, float(r + 1));
  comm::all_reduce_gradients(world, std::span<float>(g), 3);  // buckets of 3, the last one short
  for (float x : g) CHECK(x == float(n * (n + 1) / 2));
  // ZeRO-1's pair: rank r receives the sum of its range, then the ranges go to every rank
  const auto z = train::make_zero_shard(7, r, n, {});
  std::vector<float> full(7);
  for (std::size_t i = 0; i < full.size(); ++i) full[i] = float(i) + float(r);
  std::vector<float> own(z.size());
  world.reduce_scatter_sum(std::span<const float>(full), std::span<float>(own), z.counts);
  for (std::size_t i = 0; i < own.size(); ++i) CHECK(own[i] == float(n) * float(z.lo + i) + float(n * (n - 1) / 2));
  // the trainer's reduce-scatter in pieces of 2 values per rank (several pieces, the last ones short)
  std::vector<float> grad(7);
  for (std::size_t i = 0; i < grad.size(); ++i) grad[i] = float(i) + float(r);
  B be;
  train::detail::reduce_scatter_in_buckets(world, be, z, std::span<float>(grad), 2);
  for (std::size_t i = z.lo; i < z.hi; ++i) CHECK(grad[i] == float(n) * float(i) + float(n * (n - 1) / 2));
  {  // the same through equal ranges only (NCCL's rule): 7 values over 2 ranks are padded
    equal_ranges_mpi eq;
    std::vector<float> g2(7), p2(7, -1.0f);
    for (std::size_t i = 0; i < g2.size(); ++i) g2[i] = float(i) + float(r);
    train::detail::reduce_scatter_in_buckets(eq, be, z, std::span<float>(g2), 2);
    for (std::size_t i = z.lo; i < z.hi; ++i) CHECK(g2[i] == float(n) * float(i) + float(n * (n - 1) / 2));
    for (std::size_t i = z.lo; i < z.hi; ++i) p2[i] = float(i);
    train::detail::all_gather_ranges(eq, be, z, std::span<float>(p2));
    for (std::size_t i = 0; i < p2.size(); ++i) CHECK(p2[i] == float(i));
    CHECK(eq.calls == 3);  // two reduce-scatters (pieces of 2 per rank: [2, 2], [2, 1 + a zero]), one all-gather
  }
  std::vector<float> at_root(r == 0 ? 7 : 0);  // checkpoints: the ranges on rank 0 only
  world.gather(std::span<const float>(own), std::span<float>(at_root), z.counts, 0);
  for (std::size_t i = 0; i < at_root.size(); ++i) CHECK(at_root[i] == float(n) * float(i) + float(n * (n - 1) / 2));
  std::fill(full.begin(), full.end(), -1.0f);
  std::copy(own.begin(), own.end(), full.begin() + std::ptrdiff_t(z.lo));
  world.all_gather_in_place(std::span<float>(full), z.counts);
  for (std::size_t i = 0; i < full.size(); ++i) CHECK(full[i] == float(n) * float(i) + float(n * (n - 1) / 2));
  std::vector<double> mine(std::size_t(r + 1), double(r));  // lengths differ per rank
  std::vector<std::size_t> counts;
  const auto all = world.all_gather(std::span<const double>(mine), counts);
  REQUIRE(counts.size() == std::size_t(n));
  CHECK(all.size() == std::size_t(n * (n + 1) / 2));
  CHECK(all.back() == double(n - 1));
  std::uint64_t u = r == 0 ? 77 : 0;
  world.broadcast(std::span<std::uint64_t>(&u, 1), 0);
  CHECK(u == 77);
  world.barrier();
}

TEST_CASE("ranks that disagree stop with an error naming what differs") {
  comm::mpi world;
  CHECK_NOTHROW(comm::check_same(world, 42, "config"));
  CHECK_THROWS_WITH_AS(comm::check_same(world, std::uint64_t(world.rank()), "training data"),
                       doctest::Contains("training data: differs between ranks: rank(s) 1"), comm::comm_error);
  SUBCASE("weights that drift apart are caught at the next check, naming the step") {
    auto m = make_model(), ref = make_model();
    train::training_args args{};
    args.weight_check_steps = 2;
    train::trainer<model, losses::sigmoid, optim::adamw, train::reference::frozen<model>, comm::mpi> t(
        m, losses::sigmoid{}, optim::adamw{.lr = 0.05}, {&ref}, args, world);
    std::mt19937_64 rng(3);
    const auto p = problem.sample_pairs(4, rng);
    t.step(make_batch(p));  // step 1: no check
    if (world.rank() == 1) m.parameters()[2] += 1e-3f;
    CHECK_THROWS_WITH_AS(t.step(make_batch(p)), doctest::Contains("weights after step 2"), comm::comm_error);
  }
}

TEST_CASE("uneven shares, and a rank without pairs, still equal one process") {
  comm::mpi world;
  auto one = make_model(), dp = make_model(), ref = make_model();
  using frozen = train::reference::frozen<model>;
  train::trainer<model, losses::aot, optim::adamw, frozen> a(one, losses::aot{.beta = 0.5}, optim::adamw{.lr = 0.05}, {&ref});
  train::trainer<model, losses::aot, optim::adamw, frozen, comm::mpi> d(dp, losses::aot{.beta = 0.5}, optim::adamw{.lr = 0.05},
                                                                        {&ref}, {}, world);
  std::mt19937_64 rng(5);
  tally m, w;
  for (const std::size_t n : {3u, 1u, 5u}) {  // rank 0 takes ceil(n/2) pairs, rank 1 the rest (none when n = 1)
    const auto p = problem.sample_pairs(n, rng);
    const auto ra = a.step(make_batch(p));
    const std::size_t cut = (n + 1) / 2;
    std::vector<batch> micro;
    if (world.rank() == 0) micro.push_back(make_batch({p.begin(), p.begin() + std::ptrdiff_t(cut)}));
    else if (cut < n) micro.push_back(make_batch({p.begin() + std::ptrdiff_t(cut), p.end()}));
    compare_metrics(ra, d.step(std::span<const batch>(micro)), m);
  }
  compare_weights(one, dp, w);
  report("aot, uneven shares", m, w);
}
