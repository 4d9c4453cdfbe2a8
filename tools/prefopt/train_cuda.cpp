// `prefopt train` / `prefopt eval` with backend "cuda": the instantiation of cmd_train.hpp's
// train_on over backends::cuda (host code, compiled by the C++ compiler; the kernels are
// prefopt::cuda's library). Built where the CUDA backend is (PREFOPT_ENABLE_CUDA).
#include "cmd_train.hpp"

namespace prefopt::cli {
template int train_on<backends::cuda>(const train::run_config&, const run_inputs<data::tokenized_preferences>&, comm::any&);
template int train_on<backends::cuda>(const train::run_config&, const run_inputs<data::tokenized_unpaired>&, comm::any&);
} // namespace prefopt::cli
