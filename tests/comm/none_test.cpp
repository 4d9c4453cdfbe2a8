// comm::none and the communicator helpers in one process: every operation is the identity, the
// global batch is the local one, and the hash used to compare ranks tells buffers apart.
#include <doctest/doctest.h>

#include "prefopt/comm/collectives.hpp"
#include "prefopt/comm/none.hpp"
#include "prefopt/train/distributed.hpp"

using namespace prefopt;

TEST_CASE("comm::none is one rank and changes nothing") {
  comm::none c;
  CHECK(c.rank() == 0);
  CHECK(c.size() == 1);
  std::vector<float> g{1.f, 2.f, 3.f};
  comm::all_reduce_gradients(c, std::span<float>(g), 2);
  CHECK(g == std::vector<float>{1.f, 2.f, 3.f});
  std::vector<std::size_t> counts;
  const std::vector<double> v{4.0, 5.0};
  CHECK(c.all_gather(std::span<const double>(v), counts) == v);
  CHECK(counts == std::vector<std::size_t>{2});
  CHECK_NOTHROW(comm::check_same(c, 1234, "config"));
}

TEST_CASE("the gathered batch of one rank is its own") {
  comm::none c;
  pair_batch<double> b;
  b.policy_chosen = {-1.0, -2.0};
  b.policy_rejected = {-3.0, -4.0};
  b.chosen_tokens = {3, 4};
  std::size_t first = 9;
  const pair_batch<double> g = train::gather_pairs(c, b, first);
  CHECK(first == 0);
  CHECK(g.policy_rejected == b.policy_rejected);
  CHECK(g.chosen_tokens == b.chosen_tokens);
  const auto ctx = train::global_context(c, {2.0, 7.0});
  CHECK(ctx.pairs == 2.0);
  CHECK(ctx.chosen_tokens == 7.0);
}

TEST_CASE("the weight hash tells buffers apart and is stable") {
  const std::vector<float> a{1.f, 2.f, 3.f, 4.f, 5.f}, b{1.f, 2.f, 3.f, 4.f, 5.0000005f};
  CHECK(comm::hash_values(std::span<const float>(a)) == comm::hash_values(std::span<const float>(a)));
  CHECK(comm::hash_values(std::span<const float>(a)) != comm::hash_values(std::span<const float>(b)));
  CHECK(comm::hash_values(std::span<const float>(a.data(), 4)) != comm::hash_values(std::span<const float>(a)));
}
