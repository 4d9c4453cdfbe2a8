// prefopt/models/reward_io.hpp — reward models in Hugging Face's *ForSequenceClassification layout.
//
//   auto rm = load_reward_model<gpt2<B>>(backend, "dir");          // a saved reward model
//   auto rm = reward_from_causal_lm<gpt2<B>>(backend, "gpt2", 42);  // a causal LM + a new head
//   save_reward_model(rm, "out");                                   // transformers loads it back
//   save_reward_adapter(lora_rm, "adapter");                        // LoRA + head, as PEFT saves it
// A reward checkpoint holds the body under its usual names plus score.weight [1 × C] (no
// lm_head). A causal LM checkpoint gets a new head drawn as transformers initializes it:
// N(0, initializer_range²) (config.json, 0.02 by default); its lm_head is ignored.
// num_labels must be 1 (one id2label entry): a classifier with more labels is not a reward model.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "prefopt/io/atomic_file.hpp"
#include "prefopt/io/safetensors.hpp"
#include "prefopt/models/detail/random.hpp"
#include "prefopt/models/lora.hpp"
#include "prefopt/models/reward_model.hpp"
#include "prefopt/models/transformer_io.hpp"

namespace prefopt::models {

namespace detail {
// The class name transformers gives a sequence classifier of this model type.
inline std::string sequence_classifier_name(const transformer_config& c) {
  if (c.model_type == "gpt2") return "GPT2ForSequenceClassification";
  if (c.model_type == "qwen2") return "Qwen2ForSequenceClassification";
  if (c.model_type == "mistral") return "MistralForSequenceClassification";
  return "LlamaForSequenceClassification";
}
// config.json's pad_token_id (null or absent: none).
inline std::optional<std::int32_t> pad_token_of(const transformer_config& c, const std::string& where) {
  const auto it = c.raw.find("pad_token_id");
  if (it == c.raw.end() || it->is_null()) return std::nullopt;
  const int p = json_integer<int>(*it, where + ": field 'pad_token_id'");
  if (p < 0 || p >= c.vocab_size) throw config_error(where + ": field 'pad_token_id'", "outside the vocabulary");
  return p;
}
// Body weights of `m` from `ck` except an untied lm_head (a classifier has none: left zero).
template <class Body> void load_body(Body& m, const checkpoint_reader& ck) {
  const bool gpt2 = m.config().arch == architecture::gpt2;
  const bool strip = gpt2 && !ck.contains("transformer.wte.weight") && ck.contains("wte.weight");
  std::vector<float> host;
  for (const auto& s : m.base_slices()) {
    host.assign(s.size(), 0.0f);
    if (s.name == "lm_head.weight") {
      if (ck.contains(s.name)) ck.read_into(s.name, std::span<float>(host));
    } else {
      const std::string name = strip ? s.name.substr(std::string("transformer.").size()) : s.name;
      ck.require(name, s.shape);
      ck.read_into(name, std::span<float>(host));
    }
    m.backend().upload(std::span<const float>(host), m.base_parameters().subspan(s.offset, s.size()));
  }
}
} // namespace detail

// A reward model saved by save_reward_model or transformers (score.weight required).
template <class Body> reward_model<Body> load_reward_model(typename Body::backend_type backend, const std::filesystem::path& dir) {
  const auto config_file = dir / "config.json";
  auto cfg = transformer_config::from_file(config_file);
  if (const auto it = cfg.raw.find("id2label"); it != cfg.raw.end() && it->is_object() && it->size() != 1)
    throw config_error(config_file.string() + ": field 'id2label'", "a reward model has one label (num_labels = 1), not " +
                                                                       std::to_string(it->size()));
  check_memory(estimate_memory(cfg, run_shape{.rows = 0, .row_length = 0, .training = false}), 0.0, config_file.string(),
               "this model does not fit in memory");
  const auto pad = detail::pad_token_of(cfg, config_file.string());
  const checkpoint_reader ck(dir);
  if (!ck.contains("score.weight"))
    throw format_error(dir.string() + ": tensor 'score.weight'", "missing: not a sequence classifier (reward_from_causal_lm adds a head)");
  Body body(std::move(backend), std::move(cfg));
  detail::load_body(body, ck);
  reward_model<Body> rm(std::move(body), pad);
  const std::size_t C = std::size_t(rm.hidden());
  ck.require("score.weight", {1, C});
  std::vector<float> w(C);
  ck.read_into("score.weight", std::span<float>(w));
  rm.backend().upload(std::span<const float>(w), rm.head_parameters());
  return rm;
}

// A causal LM checkpoint with a new score head ~ N(0, initializer_range²), drawn from `seed`.
template <class Body>
reward_model<Body> reward_from_causal_lm(typename Body::backend_type backend, const std::filesystem::path& dir, std::uint64_t seed) {
  const auto config_file = dir / "config.json";
  auto cfg = transformer_config::from_file(config_file);
  check_memory(estimate_memory(cfg, run_shape{.rows = 0, .row_length = 0, .training = false}), 0.0, config_file.string(),
               "this model does not fit in memory");
  double range = 0.02;
  if (const auto it = cfg.raw.find("initializer_range"); it != cfg.raw.end() && it->is_number()) range = it->get<double>();
  if (!(range >= 0.0 && range < 1e3)) throw config_error(config_file.string() + ": field 'initializer_range'", "must lie in [0, 1000)");
  const auto pad = detail::pad_token_of(cfg, config_file.string());
  const checkpoint_reader ck(dir);
  Body body(std::move(backend), std::move(cfg));
  detail::load_body(body, ck);
  reward_model<Body> rm(std::move(body), pad);
  std::vector<float> w(std::size_t(rm.hidden()));
  detail::normal_source normal(seed);
  for (auto& v : w) v = float(range * normal());
  rm.backend().upload(std::span<const float>(w), rm.head_parameters());
  return rm;
}

// config.json + model.safetensors as transformers' save_pretrained writes a sequence classifier.
// A LoRA body is saved merged only: call merge_into_base() first (its adapters are not written).
template <class Body>
void save_reward_model(reward_model<Body>& rm, const std::filesystem::path& dir, io::dtype stored = io::dtype::f32) {
  std::filesystem::create_directories(dir);
  auto& m = rm.body();
  std::vector<std::vector<float>> host;
  host.reserve(m.base_slices().size() + 1);
  io::safetensors_writer w;
  for (const auto& s : m.base_slices()) {
    if (s.name == "lm_head.weight") continue;
    host.emplace_back(s.size());
    m.backend().download(m.base_parameters().subspan(s.offset, s.size()), std::span<float>(host.back()));
    w.add(s.name, s.shape, std::span<const float>(host.back()), stored);
  }
  host.emplace_back(std::size_t(rm.hidden()));
  rm.backend().download(rm.head_parameters(), std::span<float>(host.back()));
  w.add("score.weight", {1, std::size_t(rm.hidden())}, std::span<const float>(host.back()), stored);
  nlohmann::json j = m.config().to_json();
  j["architectures"] = {detail::sequence_classifier_name(m.config())};
  j["id2label"] = {{"0", "LABEL_0"}};
  j["label2id"] = {{"LABEL_0", 0}};
  j.erase("num_labels");
  j["pad_token_id"] = rm.pad_token_id() ? nlohmann::json(*rm.pad_token_id()) : nlohmann::json();
  const std::string config = j.dump(2) + "\n";
  io::write_atomically(dir / "config.json", [&](io::atomic_output& out) { out.write(std::string_view(config)); });
  w.write(dir / "model.safetensors");
}

// A LoRA reward model as PEFT saves one (task_type SEQ_CLS, modules_to_save ["classifier", "score"]):
// the adapters under lora.hpp's names plus "base_model.model.score.weight" [1 × C]. PEFT loads it
// on the base *ForSequenceClassification model, whose score head it replaces.
template <class Body>
void save_reward_adapter(reward_model<lora<Body>>& rm, const std::filesystem::path& dir, const std::string& base_model_name_or_path = "") {
  auto& m = rm.body();
  m.save_adapter(dir, base_model_name_or_path);  // adapter_config.json (rewritten below) + the adapters
  std::vector<float> host(m.parameters().size()), head(std::size_t(rm.hidden()));
  m.backend().download(m.parameters(), std::span<float>(host));
  rm.backend().download(rm.head_parameters(), std::span<float>(head));
  io::safetensors_writer w;
  for (const auto& s : m.parameter_slices()) w.add(s.name, s.shape, std::span<const float>(host).subspan(s.offset, s.size()));
  w.add("base_model.model.score.weight", {1, head.size()}, std::span<const float>(head));
  w.write(dir / "adapter_model.safetensors");
  nlohmann::json j = read_json_file(dir / "adapter_config.json");
  j["task_type"] = "SEQ_CLS";
  j["modules_to_save"] = {"classifier", "score"};
  const std::string config = j.dump(2) + "\n";
  io::write_atomically(dir / "adapter_config.json", [&](io::atomic_output& out) { out.write(std::string_view(config)); });
}

// Adapters and score head saved by save_reward_adapter or PEFT (modules_to_save with "score").
template <class Body> void load_reward_adapter(reward_model<lora<Body>>& rm, const std::filesystem::path& dir) {
  rm.body().load_adapter(dir);
  const io::safetensors_file f(dir / "adapter_model.safetensors");
  const std::size_t C = std::size_t(rm.hidden());
  f.require("base_model.model.score.weight", {1, C});
  std::vector<float> head(C);
  f.read_into("base_model.model.score.weight", std::span<float>(head));
  rm.backend().upload(std::span<const float>(head), rm.head_parameters());
}

} // namespace prefopt::models
