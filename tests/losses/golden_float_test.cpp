// prefopt's losses in float against TRL 1.16's own loss code run in float32 (same cases as
// golden_test.cpp).
//
// Expected values and tolerances: see golden.hpp (data from tools/reference/losses_make_reference.py).
#include "losses/golden.hpp"

TEST_CASE("golden: TRL 1.16 in float32") {
  const tally t = check_file<float>("trl_float32.json", 2e-5, 1e-6);
  CHECK(t.cases >= 120);
  CHECK(t.max_rel_err_bulk < 2e-5);
}
