// prefopt's losses against TRL 1.16's own loss code in float64: every DPO loss_type, the
// f-divergences, WPO, MPO, CPO/SimPO, ORPO, KTO, and probabilistic (from its formula).
//
// Expected values and tolerances: see golden.hpp (data from tools/reference/losses_make_reference.py).
#include "losses/golden.hpp"

TEST_CASE("golden: TRL 1.16 in float64") {
  const tally t = check_file<double>("trl_float64.json", 1e-6, 1e-12);
  CHECK(t.cases >= 120);
  CHECK(t.max_rel_err < 1e-6);
}
