// expect: multiplies each pair's loss by its weight, which needs a loss whose pairs are independent
// WPO weights each pair's loss; aot sorts across the batch, so its pairs are not independent.
#include "prefopt/losses.hpp"

int main() {
  prefopt::losses::weighted<prefopt::losses::aot> loss{};
  return loss.base.beta > 0 ? 0 : 1;
}
