// expect: f_divergence<Loss> needs a loss written on the chosen/rejected scores
// f_divergence swaps the scores a loss is written on; nca_pair reads the log-ratios directly
// (it has no scores() form), so TRL rejects f_divergence_type for it and prefopt does not compile.
#include "prefopt/losses.hpp"

int main() {
  prefopt::losses::f_divergence<prefopt::losses::nca_pair> loss{};
  return loss.alpha > 0 ? 0 : 1;
}
