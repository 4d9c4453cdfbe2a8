// A LoRA adapter written by prefopt loads in PEFT and gives the same log-probs there.
// The adapters in tests/data/models/<arch>_prefopt_adapter/ were written by this test
// (PREFOPT_REGENERATE=1) and checked in PEFT by
//   tools/reference/models_make_reference.py --check-adapter tests/data/models/<arch>_prefopt_adapter
// which wrote peft_check.json there. This test rebuilds the adapter, requires the bytes prefopt
// writes now to equal the checked ones, and requires PEFT's log-probs to equal prefopt's.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "prefopt/backends/eigen.hpp"
#include "prefopt/models/lora.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "support/data.hpp"

using namespace prefopt;
using B = backends::eigen;
namespace fs = std::filesystem;

namespace {
std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

template <class Model> void round_trip(const std::string& arch, std::vector<std::string> targets) {
  const fs::path base = test::data_path("models/" + arch);
  const fs::path committed = test::data_path("models/" + arch + "_prefopt_adapter");
  const bool regenerate = std::getenv("PREFOPT_REGENERATE") != nullptr;
  const fs::path out = regenerate ? committed : fs::temp_directory_path() / ("prefopt_adapter_" + arch);
  auto m = models::from_pretrained<Model>(B{}, base);
  models::lora<Model> lm(std::move(m), {.r = 4, .alpha = 16.0, .target_modules = targets}, 11);
  // B = 0 at initialization would make the adapter a no-op: give it seeded values.
  std::vector<float> p(lm.parameters().begin(), lm.parameters().end());
  std::mt19937_64 rng(12);
  std::normal_distribution<float> n(0.0f, 0.05f);
  for (const auto& s : lm.parameter_slices())
    if (s.name.find("lora_B") != std::string::npos)
      for (std::size_t i = 0; i < s.size(); ++i) p[s.offset + i] = n(rng);
  lm.backend().upload(std::span<const float>(p), lm.parameters());
  lm.save_adapter(out);
  // log-probs on the reference pairs
  const auto ref = nlohmann::json::parse(slurp(base / "reference.json"));
  std::vector<models::tokenized_pair> pairs;
  for (const auto& q : ref["pairs"]) pairs.push_back({q["prompt"], q["chosen"], q["rejected"]});
  models::sequence_logps lp;
  lm.forward(models::pack_pairs(pairs, false), lp, {.keep_activations = false});
  if (regenerate) {
    const std::string rel = fs::relative(base, prefopt::test::source_dir()).string();
    std::ofstream(out / "prefopt_logps.json") << nlohmann::json{{"base_model_dir", rel}, {"pairs", ref["pairs"]}, {"logps", lp.logp}}.dump(1);
    MESSAGE("wrote " << out << "; now run the --check-adapter mode of tools/reference/models_make_reference.py");
    return;
  }
  CHECK(slurp(out / "adapter_model.safetensors") == slurp(committed / "adapter_model.safetensors"));
  CHECK(nlohmann::json::parse(slurp(out / "adapter_config.json")) == nlohmann::json::parse(slurp(committed / "adapter_config.json")));
  const auto check = nlohmann::json::parse(slurp(committed / "peft_check.json"));
  const auto peft = check["peft_logps"].get<std::vector<double>>();
  REQUIRE(peft.size() == lp.logp.size());
  for (std::size_t i = 0; i < peft.size(); ++i) CHECK(std::abs(peft[i] - lp.logp[i]) < 1e-4);
  CHECK(check["max_abs_diff"].get<double>() < 1e-4);
  // and prefopt reads its own adapter back
  auto m2 = models::from_pretrained<Model>(B{}, base);
  models::lora<Model> back(std::move(m2), {.r = 4, .alpha = 16.0, .target_modules = targets});
  back.load_adapter(out);
  CHECK(std::vector<float>(back.parameters().begin(), back.parameters().end()) == p);
}
} // namespace

TEST_CASE("GPT-2 (Conv1D, fused c_attn) adapter written by prefopt, loaded by PEFT") {
  round_trip<models::gpt2<B>>("gpt2", {"c_attn", "c_proj"});
}
TEST_CASE("Llama adapter written by prefopt, loaded by PEFT") {
  round_trip<models::llama<B>>("llama", {"q_proj", "k_proj", "v_proj", "o_proj", "up_proj"});
}

TEST_CASE("merge_into_base: the merged base alone computes the adapted model") {
  auto m = models::from_pretrained<models::llama<B>>(B{}, test::data_path("models/llama"));
  models::lora<models::llama<B>> lm(std::move(m), {.r = 4, .alpha = 8.0, .target_modules = {"q_proj", "down_proj"}}, 3);
  std::vector<float> p(lm.parameters().size());
  std::mt19937_64 rng(4);
  std::normal_distribution<float> n(0.0f, 0.1f);
  for (auto& v : p) v = n(rng);
  lm.backend().upload(std::span<const float>(p), lm.parameters());
  const auto ref = nlohmann::json::parse(slurp(test::data_path("models/llama/reference.json")));
  std::vector<models::tokenized_pair> pairs;
  for (const auto& q : ref["pairs"]) pairs.push_back({q["prompt"], q["chosen"], q["rejected"]});
  models::sequence_logps with, merged;
  lm.forward(models::pack_pairs(pairs, true), with, {.keep_activations = false});
  lm.merge_into_base();
  lm.forward(models::pack_pairs(pairs, true), merged, {.keep_activations = false, .adapters = false});
  for (std::size_t i = 0; i < with.logp.size(); ++i) CHECK(merged.logp[i] == doctest::Approx(with.logp[i]).epsilon(1e-5));
}
