// `prefopt logps --backend cuda`: score_pairs over backends::cuda (host code; the kernels are
// prefopt::cuda's library). Built where the CUDA backend is (PREFOPT_ENABLE_CUDA).
#include "logps_score.hpp"

namespace prefopt::cli {
template std::string score_pairs<backends::cuda>(const backends::cuda&, const logps_job&);
} // namespace prefopt::cli
