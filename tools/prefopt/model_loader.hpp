// tools/prefopt/model_loader.hpp — open a model directory as the right C++ type and run code on it.
//
// with_model(dir, adapter_dir, fn) reads config.json, builds gpt2<B> or llama<B> (Llama,
// Qwen2, Mistral), loads the weights, attaches a PEFT LoRA adapter when one is given, and calls
// fn(model) with the concrete type; B is the eigen backend unless a backend is given.
#pragma once

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "prefopt/backends/eigen.hpp"
#include "prefopt/core/json.hpp"
#include "prefopt/models/lora.hpp"
#include "prefopt/models/memory_estimate.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "prefopt/train/run_limits.hpp"

namespace prefopt::cli {

inline models::lora_config read_adapter_config(const std::filesystem::path& dir) {
  const auto file = dir / "adapter_config.json";
  if (!std::filesystem::exists(file)) throw io_error(file.string(), "cannot open (is this a PEFT LoRA adapter directory?)");
  const nlohmann::json j = read_json_file(file);
  if (j.value("peft_type", std::string()) != "LORA") throw config_error(file.string() + ": field 'peft_type'", "only LORA adapters are supported");
  models::lora_config c;
  try {
    if (!j.contains("r") || !j["r"].is_number()) throw config_error(file.string() + ": field 'r'", "missing, or not a number");
    c.r = json_integer<int>(j["r"], file.string() + ": field 'r'", 1, train::run_limits::lora_rank);
    c.alpha = j.at("lora_alpha").get<double>();
    c.use_rslora = j.value("use_rslora", false);
    const auto d = j.find("lora_dropout");
    c.dropout = d == j.end() || d->is_null() ? 0.0 : d->get<double>();
    const auto& t = j.at("target_modules");
    if (t.is_string()) c.target_modules = {t.get<std::string>()};
    else c.target_modules = t.get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    throw config_error(file.string(), std::string("missing or mistyped field: ") + e.what());
  }
  if (!(c.dropout >= 0.0 && c.dropout < 1.0)) throw config_error(file.string() + ": field 'lora_dropout'", "must lie in [0, 1)");
  if (j.value("use_dora", false)) throw config_error(file.string() + ": field 'use_dora'", "DoRA adapters are not supported");
  return c;
}

// `memory_limit_gib`: as training.memory_limit_gib (0: the machine's memory, or the device's for a
// device backend; < 0: no check) for the model and its adapter, checked before either is
// allocated. `backend`: the backend the model is built on (eigen unless given).
template <class Fn, class B = backends::eigen>
void with_model(const std::filesystem::path& dir, const std::string& adapter, Fn&& fn, double memory_limit_gib = 0.0,
                const B& backend = B{}) {
  if constexpr (!B::host_memory)
    if (memory_limit_gib == 0.0) memory_limit_gib = double(backend.memory_bytes()) / double(std::size_t(1) << 30);
  const auto cfg = models::transformer_config::from_file(dir / "config.json");
  models::run_shape shape{.rows = 0, .row_length = 0, .training = false};
  if (!adapter.empty()) {
    const auto ac = read_adapter_config(adapter);
    shape.lora_rank = ac.r;
    shape.lora_targets = ac.target_modules;
  }
  if constexpr (requires { backend.matmul_precision; })
    shape.bf16_weight_copy = shape.bf16_norm_outputs = backend.matmul_precision == precision::bf16;
  models::check_memory(models::estimate_memory(cfg, shape), memory_limit_gib, (dir / "config.json").string(),
                       "this model does not fit in memory");
  auto run = [&](auto tag) {
    using M = typename decltype(tag)::type;
    M m(backend, cfg);
    models::load_weights(m, dir);
    if (adapter.empty()) {
      fn(m);
    } else {
      models::lora<M> lm(std::move(m), read_adapter_config(adapter));
      lm.load_adapter(adapter);
      fn(lm);
    }
  };
  if (cfg.arch == models::architecture::gpt2) run(std::type_identity<models::gpt2<B>>{});
  else run(std::type_identity<models::llama<B>>{});
}

} // namespace prefopt::cli
