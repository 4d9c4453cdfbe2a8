// `prefopt generate`, `prefopt reward` and `prefopt iterate` on the cuda backend (--backend cuda,
// or backend "cuda" in run.json): their model-running halves instantiated over backends::cuda
// (host code; the kernels are prefopt::cuda's library), in one translation unit so the three
// build once and apart from main.cpp. Built where the CUDA backend is (PREFOPT_ENABLE_CUDA).
#include "cmd_generate.hpp"
#include "cmd_iterate.hpp"
#include "cmd_reward.hpp"

namespace prefopt::cli {
template generate_result generate_completions<backends::cuda>(const backends::cuda&, const generate_job&);
template void train_reward<backends::cuda>(const backends::cuda&, const reward_run&);
template std::string score_rewards<backends::cuda>(const backends::cuda&, const std::filesystem::path&, const std::string&,
                                                   const data::tokenized_preferences&, std::size_t);
} // namespace prefopt::cli

namespace prefopt::cli::iterate {
template int run_rounds<backends::cuda>(const backends::cuda&, const train::run_config&, const loop_settings&, const text_pipeline&,
                                        const prompt_set&, const std::optional<prompt_set>&);
template void run_online<backends::cuda>(const backends::cuda&, const train::run_config&, const loop_settings&, const text_pipeline&,
                                         const prompt_set&);
} // namespace prefopt::cli::iterate
