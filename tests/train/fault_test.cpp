// PREFOPT_FAULT_KILL's value: "rank=R,step=S" in either order; anything else is a config_error
// naming the variable; empty means no fault. (The kill itself: tests/cli/mpi_test.sh.)
#include <doctest/doctest.h>

#include "prefopt/train/fault.hpp"

using namespace prefopt;

TEST_CASE("PREFOPT_FAULT_KILL: parsed, or an error naming the variable") {
  const auto f = train::parse_fault_kill("rank=1,step=3");
  REQUIRE(f);
  CHECK(f->rank == 1);
  CHECK(f->step == 3);
  const auto g = train::parse_fault_kill("step=12,rank=0");
  REQUIRE(g);
  CHECK(g->rank == 0);
  CHECK(g->step == 12);
  CHECK_FALSE(train::parse_fault_kill(""));
  for (const char* bad : {"rank=1", "step=2", "rank=one,step=2", "rank=1,step=0", "rank=-1,step=2", "rank=1;step=2",
                          "rank=1,step=2x", "node=1,step=2", "rank=1,step"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(train::parse_fault_kill(bad), doctest::Contains("PREFOPT_FAULT_KILL"), config_error);
  }
  train::fault_point(f, 0, 3);  // another rank, or another step: nothing happens
  train::fault_point(f, 1, 2);
  train::fault_point(std::nullopt, 1, 3);
}
