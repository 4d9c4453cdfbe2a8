// expect: does not satisfy prefopt::losses::PreferenceLoss
// Something that is not a loss (here: an optimizer in the loss slot) must be rejected by name.
#include "prefopt/backends/eigen.hpp"
#include "prefopt/models/log_linear.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/train/trainer.hpp"
using M = prefopt::models::log_linear<prefopt::backends::eigen>;
int main() {
  prefopt::train::trainer<M, prefopt::optim::adamw, prefopt::optim::adamw>* t = nullptr;
  (void)sizeof(*t);
}
