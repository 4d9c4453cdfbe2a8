// `prefopt train` / `prefopt eval` on the eigen backend: the instantiation of cmd_train.hpp's
// train_on, compiled apart from main.cpp so the two build in parallel.
#include "cmd_train.hpp"

namespace prefopt::cli {
template int train_on<backends::eigen>(const train::run_config&, const run_inputs<data::tokenized_preferences>&, comm::any&);
template int train_on<backends::eigen>(const train::run_config&, const run_inputs<data::tokenized_unpaired>&, comm::any&);
} // namespace prefopt::cli
