// expect: does not satisfy prefopt::models::PolicyModel
// A type that is not a policy model must be rejected with the concept's name.
#include "prefopt/losses.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/train/trainer.hpp"
struct not_a_model {
  using backend_type = int;
  using input_type = int;
};
int main() {
  prefopt::train::trainer<not_a_model, prefopt::losses::sigmoid, prefopt::optim::adamw>* t = nullptr;
  (void)sizeof(*t);
}
