// expect: compares the policy with a reference model
// A reference-based loss (sigmoid) with reference::none must not compile.
#include "prefopt/backends/eigen.hpp"
#include "prefopt/losses.hpp"
#include "prefopt/models/log_linear.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/train/trainer.hpp"
using M = prefopt::models::log_linear<prefopt::backends::eigen>;
int main() {
  prefopt::train::trainer<M, prefopt::losses::sigmoid, prefopt::optim::adamw, prefopt::train::reference::none>* t = nullptr;
  (void)sizeof(*t);
}
