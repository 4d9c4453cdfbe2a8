// expect: shifts the chosen score, so the base loss must be a ScoreLoss
// chosen_floor (DPOP) shifts the chosen score inside the loss; bco_pair is written on the pair's
// log-ratios, not on scores, so there is no score to shift.
#include "prefopt/losses.hpp"

int main() {
  auto loss = prefopt::losses::constrain(prefopt::losses::bco_pair{}, prefopt::losses::chosen_floor{});
  return loss.base.beta > 0 ? 0 : 1;
}
