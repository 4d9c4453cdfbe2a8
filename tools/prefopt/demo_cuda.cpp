// `prefopt demo --backend cuda`: run_demo over backends::cuda (host code; the kernels are
// prefopt::cuda's library). Built where the CUDA backend is (PREFOPT_ENABLE_CUDA).
#include "cmd_demo.hpp"

namespace prefopt::cli {
template int run_demo<backends::cuda>(const backends::cuda&, const demo_run&);
} // namespace prefopt::cli
