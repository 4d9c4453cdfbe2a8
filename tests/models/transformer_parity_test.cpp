// GPT-2, Llama and Qwen2 against Hugging Face transformers (+ PEFT): small random checkpoints,
// fixed token batches, per-sequence completion log-probs, TRL's sigmoid DPO loss and the gradient
// of every parameter. Expected values: tools/reference/models_make_reference.py →
// tests/data/models/<arch>/{config.json, model.safetensors, reference.json, grads.safetensors}
// and <arch>_lora/{adapter_*, grads.safetensors}. Tolerances: log-probs 1e-4 absolute, each
// gradient tensor within 1e-3 relative (‖g − g_ref‖ / ‖g_ref‖), float32 throughout.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "prefopt/io/safetensors.hpp"
#include "prefopt/losses/evaluate.hpp"
#include "prefopt/losses/sigmoid.hpp"
#include "prefopt/models/lora.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "support/backends.hpp"
#include "support/data.hpp"
#include "support/golden_models.hpp"

using namespace prefopt;
using test::dpo_step;
using test::reference_case;

namespace {

void check_logps(const std::vector<double>& got, const nlohmann::json& want) {
  const auto w = want.get<std::vector<double>>();
  REQUIRE(got.size() == w.size());
  for (std::size_t i = 0; i < w.size(); ++i) {
    CAPTURE(i);
    CHECK(std::abs(got[i] - w[i]) < 1e-4);
  }
}

// Every trainable slice's gradient against the file, by relative L2 error.
template <class Model> void check_grads(Model& m, const std::filesystem::path& file) {
  const io::safetensors_file f(file);
  std::vector<float> host(m.gradients().size());
  m.backend().download(m.gradients(), std::span<float>(host));
  std::size_t checked = 0;
  double worst = 0.0;
  for (const auto& s : m.parameter_slices()) {
    CAPTURE(s.name);
    REQUIRE(f.contains(s.name));
    const auto want = f.read_f32(s.name);
    REQUIRE(want.size() == s.size());
    double num = 0.0, den = 0.0;
    for (std::size_t i = 0; i < want.size(); ++i) {
      const double d = double(host[s.offset + i]) - want[i];
      num += d * d;
      den += double(want[i]) * want[i];
    }
    const double rel = std::sqrt(num) / std::max(std::sqrt(den), 1e-12);
    worst = std::max(worst, rel);
    CHECK(rel < 1e-3);
    ++checked;
  }
  MESSAGE(file.parent_path().filename().string() << ": " << checked << " gradient tensors, worst relative error " << worst);
}

template <class Model> void parity(const std::string& arch) {
  using B = typename Model::backend_type;
  const reference_case rc(arch);
  auto m = models::from_pretrained<Model>(B{}, test::data_path("models/" + arch));
  for (bool shared : {false, true}) {
    CAPTURE(shared);
    double loss = 0.0;
    check_logps(dpo_step(m, rc, shared, &loss), rc.j["logps"]);
    CHECK(loss == doctest::Approx(rc.j["loss"].get<double>()).epsilon(1e-5));
    check_grads(m, test::data_path("models/" + arch + "/grads.safetensors"));
  }
  // LoRA on the same base: adapters from PEFT, log-probs with and without them, adapter gradients.
  const auto& L = rc.j["lora"];
  models::lora<Model> lm(std::move(m), {.r = L["r"].get<int>(), .alpha = L["alpha"].get<double>(),
                                        .target_modules = L["target_modules"].get<std::vector<std::string>>()});
  lm.load_adapter(test::data_path("models/" + arch + "_lora"));
  for (bool shared : {false, true}) {
    CAPTURE(shared);
    double loss = 0.0;
    check_logps(dpo_step(lm, rc, shared, &loss), L["logps"]);
    CHECK(loss == doctest::Approx(L["loss"].get<double>()).epsilon(1e-5));
    check_grads(lm, test::data_path("models/" + arch + "_lora/grads.safetensors"));
    models::sequence_logps off;
    lm.forward(models::pack_pairs(rc.pairs, shared), off, {.keep_activations = false, .adapters = false});
    check_logps(off.logp, L["adapters_disabled_logps"]);
  }
}

} // namespace

TEST_CASE_TEMPLATE("GPT-2 matches Hugging Face: log-probs, DPO loss, every gradient, with and without LoRA", B,
                   PREFOPT_CPU_BACKENDS) {
  parity<models::gpt2<B>>("gpt2");
}

TEST_CASE_TEMPLATE("Llama (GQA, untied head) matches Hugging Face", B, PREFOPT_CPU_BACKENDS) {
  parity<models::llama<B>>("llama");
}

TEST_CASE_TEMPLATE("Qwen2 (q/k/v biases, tied head, GQA) matches Hugging Face", B, PREFOPT_CPU_BACKENDS) {
  parity<models::llama<B>>("qwen2");
}
