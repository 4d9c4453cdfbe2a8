// expect: PreferenceLoss
// evaluate() takes a PreferenceLoss: a type without name, required_columns(), validate() and a
// value/gradient function is rejected by the concept, which the message names.
#include "prefopt/losses.hpp"

struct not_a_loss {
  double beta = 0.1;
};

int main() {
  prefopt::pair_batch<double> b;
  b.policy_chosen = {-1.0};
  b.policy_rejected = {-2.0};
  return prefopt::evaluate(not_a_loss{}, b).loss > 0 ? 0 : 1;
}
