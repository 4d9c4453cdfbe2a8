// tools/prefopt/logps_score.hpp — the scoring half of `prefopt logps`: pairs → JSON lines of
// completion log-prob sums, batch by batch, on any backend (eigen here; cuda in logps_cuda.cpp,
// its own translation unit, where this program is built with the CUDA backend).
#pragma once

#include <cstddef>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model_loader.hpp"
#include "prefopt/models/token_batch.hpp"

namespace prefopt::cli {

// What one `prefopt logps` run scores: valid pairs only (ids inside the vocabulary, nothing empty).
struct logps_job {
  std::filesystem::path model;
  std::string adapter;
  std::vector<models::tokenized_pair> pairs;
  std::vector<std::size_t> lines;  // each pair's line in the data file
  std::size_t batch = 8;
  bool prefix_sharing = false;
};

// One line per pair: {"line", "chosen_logps", "rejected_logps", "chosen_tokens", "rejected_tokens"}.
template <class B> std::string score_pairs(const B& backend, const logps_job& job) {
  std::string out;
  with_model(
      job.model, job.adapter,
      [&](auto& model) {
        for (std::size_t start = 0; start < job.pairs.size(); start += job.batch) {
          const std::size_t end = std::min(job.pairs.size(), start + job.batch);
          const std::vector<models::tokenized_pair> pairs(job.pairs.begin() + std::ptrdiff_t(start),
                                                          job.pairs.begin() + std::ptrdiff_t(end));
          models::sequence_logps lp;
          model.forward(models::pack_pairs(pairs, job.prefix_sharing), lp, {.keep_activations = false});
          const std::size_t n = pairs.size();
          for (std::size_t i = 0; i < n; ++i) {
            const nlohmann::json row = {{"line", job.lines[start + i]},
                                        {"chosen_logps", lp.logp[i]},
                                        {"rejected_logps", lp.logp[n + i]},
                                        {"chosen_tokens", lp.tokens[i]},
                                        {"rejected_tokens", lp.tokens[n + i]}};
            out += row.dump() + "\n";
          }
        }
      },
      0.0, backend);
  return out;
}

} // namespace prefopt::cli

#ifdef PREFOPT_CLI_CUDA
#include "prefopt/backends/cuda.hpp"
namespace prefopt::cli {
extern template std::string score_pairs<backends::cuda>(const backends::cuda&, const logps_job&);
} // namespace prefopt::cli
#endif
