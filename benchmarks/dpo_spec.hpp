// benchmarks/dpo_spec.hpp — the pairs file of the DPO benchmarks (run.py and model_run.py write it):
// {"pairs": [{"prompt", "chosen", "rejected"}...], "reference_logps": [chosen..., rejected...], "beta"}.
#pragma once

#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "prefopt/models/token_batch.hpp"

namespace prefopt::bench {

struct dpo_spec {
  std::vector<models::tokenized_pair> pairs;
  std::vector<double> reference_logps;  // the chosen sequences', then the rejected ones'
  double beta = 0.1;
};

inline dpo_spec read_dpo_spec(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument("cannot open " + path);
  const nlohmann::json spec = nlohmann::json::parse(in);
  dpo_spec s;
  for (const auto& p : spec["pairs"])
    s.pairs.push_back({p["prompt"].get<std::vector<std::int32_t>>(), p["chosen"].get<std::vector<std::int32_t>>(),
                       p["rejected"].get<std::vector<std::int32_t>>()});
  s.reference_logps = spec["reference_logps"].get<std::vector<double>>();
  s.beta = spec["beta"].get<double>();
  return s;
}

} // namespace prefopt::bench
