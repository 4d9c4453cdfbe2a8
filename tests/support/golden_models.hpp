// The golden transformer cases: tests/data/models/<arch>/reference.json (written by
// tools/reference/models_make_reference.py from transformers) — token pairs, reference log-probs,
// beta, and the policy's expected log-probs — and one DPO step over them, shared by the model tests
// of every backend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "prefopt/losses/evaluate.hpp"
#include "prefopt/losses/sigmoid.hpp"
#include "prefopt/models/token_batch.hpp"
#include "support/data.hpp"

namespace prefopt::test {

struct reference_case {
  nlohmann::json j;
  std::vector<models::tokenized_pair> pairs;
  explicit reference_case(const std::string& arch) {
    std::ifstream in(data_path("models/" + arch + "/reference.json"));
    j = nlohmann::json::parse(in);
    for (const auto& p : j["pairs"])
      pairs.push_back({p["prompt"].get<std::vector<std::int32_t>>(), p["chosen"].get<std::vector<std::int32_t>>(),
                       p["rejected"].get<std::vector<std::int32_t>>()});
  }
  std::size_t n() const { return pairs.size(); }
};

// Forward, the sigmoid loss against the recorded reference log-probs, backward (gradients start
// from zero). Returns the policy's log-probs (chosen then rejected); *loss gets the batch loss.
template <class Model>
std::vector<double> dpo_step(Model& m, const reference_case& rc, bool prefix_sharing, double* loss = nullptr) {
  models::sequence_logps out;
  m.zero_grad();
  m.forward(models::pack_pairs(rc.pairs, prefix_sharing), out, {});
  const auto ref = rc.j["reference_logps"].get<std::vector<double>>();
  const std::size_t n = rc.n();
  pair_batch<double> b;
  b.policy_chosen.assign(out.logp.begin(), out.logp.begin() + std::ptrdiff_t(n));
  b.policy_rejected.assign(out.logp.begin() + std::ptrdiff_t(n), out.logp.end());
  b.reference_chosen.assign(ref.begin(), ref.begin() + std::ptrdiff_t(n));
  b.reference_rejected.assign(ref.begin() + std::ptrdiff_t(n), ref.end());
  const auto r = evaluate(losses::sigmoid{.beta = rc.j["beta"].get<double>()}, b);
  if (loss) *loss = r.loss;
  std::vector<double> d(r.d_policy_chosen);
  d.insert(d.end(), r.d_policy_rejected.begin(), r.d_policy_rejected.end());
  m.backward(std::span<const double>(d));
  return out.logp;
}

} // namespace prefopt::test
