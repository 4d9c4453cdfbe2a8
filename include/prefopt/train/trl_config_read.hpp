// prefopt/train/trl_config_read.hpp — reading a TRL config with trl_config.hpp's table: detection,
// application onto run_config, errors naming TRL's key (and its line, for YAML), the docs table.
#pragma once

#include <boost/hana/accessors.hpp>
#include <boost/hana/for_each.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/core/json.hpp"
#include "prefopt/core/reflect.hpp"
#include "prefopt/train/config.hpp"
#include "prefopt/train/trl_config.hpp"

namespace prefopt::train::trl {

// JSON pointer ("/learning_rate") → 1-based line, where the source knows it (YAML); may be null.
using line_map = std::map<std::string, std::size_t>;

// The top-level names of prefopt's own schema (run_config's members).
[[nodiscard]] inline std::vector<std::string> prefopt_sections() {
  std::vector<std::string> names;
  boost::hana::for_each(boost::hana::accessors<run_config>(),
                        [&](auto pair) { names.emplace_back(boost::hana::to<const char*>(boost::hana::first(pair))); });
  return names;
}

// True when `j` is a TRL config: an object with at least one top-level key from `fields`.
[[nodiscard]] inline bool is_trl_config(const nlohmann::json& j) {
  if (!j.is_object()) return false;
  for (auto it = j.begin(); it != j.end(); ++it)
    if (find_field(it.key())) return true;
  return false;
}

namespace detail {

inline std::vector<nlohmann::json> accepted_values(const field& f) {
  std::vector<nlohmann::json> out;
  std::string_view rest = f.accepted;
  while (!rest.empty()) {
    const auto bar = rest.find(" | ");
    out.push_back(nlohmann::json::parse(rest.substr(0, bar)));
    rest = bar == std::string_view::npos ? std::string_view{} : rest.substr(bar + 3);
  }
  return out;
}

struct trl_reader {
  const nlohmann::json& j;
  run_config& cfg;
  const std::string& file;
  const line_map* lines;

  [[nodiscard]] std::string where(const std::string& key) const {
    std::size_t line = 0;
    if (lines)
      if (const auto it = lines->find("/" + key); it != lines->end()) line = it->second;
    return where_in(file, line, key);
  }
  [[noreturn]] void fail(const std::string& key, const std::string& why) const { throw config_error(where(key), why); }

  // value → the prefopt option `path` ("optimizer.learning_rate"), errors renamed to TRL's key.
  void set(const std::string& key, const std::string& path, const nlohmann::json& value) const {
    nlohmann::json patch = value;
    std::vector<std::string> parts;
    for (std::size_t start = 0;;) {
      const auto dot = path.find('.', start);
      parts.push_back(path.substr(start, dot - start));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) patch = nlohmann::json{{*it, patch}};
    try {
      reflect::from_json(patch, cfg);
    } catch (const config_error& e) {
      // TRL's parser converts text to the field's type ("1e-6" in quotes is a learning rate there).
      if (value.is_string()) {
        const nlohmann::json parsed = nlohmann::json::parse(value.get<std::string>(), nullptr, false);
        if (parsed.is_number() || parsed.is_boolean()) return set(key, path, parsed);
      }
      fail(key, e.why() + " (prefopt's " + path + ")");
    }
  }
  [[nodiscard]] bool flag(const std::string& key) const {
    if (!j.contains(key)) return false;
    const auto& v = j.at(key);
    if (v.is_null()) return false;
    if (!v.is_boolean()) fail(key, std::string("expected true or false, got ") + v.type_name() + " " + json_excerpt(v));
    return v.get<bool>();
  }
  [[nodiscard]] std::string text(const std::string& key) const {
    const auto& v = j.at(key);
    if (!v.is_string()) fail(key, std::string("expected a string, got ") + v.type_name() + " " + json_excerpt(v));
    return v.get<std::string>();
  }

  void convert(const std::string& key, const nlohmann::json& v) {
    if (key == "dataset_name") {
      const std::string name = text(key);
      const bool file_like = name.ends_with(".jsonl") || name.ends_with(".jsonl.gz") || name.ends_with(".json") ||
                             name.starts_with("/") || name.starts_with("./") || name.starts_with("../");
      if (!file_like)
        fail(key, "'" + name + "' looks like a hub dataset; prefopt reads local JSONL files (name one, or --set data.train=FILE)");
      set(key, "data.train", v);
    } else if (key == "loss_type") {
      set(key, "loss.type", v.is_string() ? nlohmann::json::array({v}) : v);
    } else if (key == "loss_weights") {
      set(key, "loss.weights", v.is_null() ? nlohmann::json::array() : v);
    } else if (key == "optim") {
      const std::string o = text(key);
      if (o == "adamw_torch" || o == "adamw_torch_fused" || o == "adamw_hf") set(key, "optimizer.type", "adamw");
      else if (o == "sgd") set(key, "optimizer.type", "sgd");
      else fail(key, "'" + o + "' is not supported (adamw_torch, adamw_torch_fused, adamw_hf or sgd)");
    } else if (key == "warmup_steps") {
      if (v.is_number_float() && v.get<double>() > 0.0 && v.get<double>() < 1.0) set(key, "optimizer.warmup_ratio", v);
      else set(key, "optimizer.warmup_steps", v);
    } else if (key == "pad_to_multiple_of") {
      set(key, "data.pad_to_multiple_of", v.is_null() || v == "auto" || v == "none" || v == "None" ? nlohmann::json(0) : v);
    } else if (key == "precompute_ref_batch_size") {
      set(key, "reference.precompute_batch_size", v.is_null() ? nlohmann::json(0) : v);
    } else if (key == "bf16") {
      if (!v.is_null()) set(key, "training.precision", flag(key) ? "bf16" : "fp32");
    } else if (key == "resume_from_checkpoint") {
      if (v.is_string()) fail(key, "a checkpoint path is not supported: set output_dir to the run's folder and true here");
      set(key, "training.resume", flag(key));
    } else if (key == "save_strategy") {
      const std::string s = text(key);
      if (s == "no") cfg.training.save_steps = 0;
      else if (s != "steps") fail(key, "'" + s + "' is not supported (\"steps\" or \"no\")");
    }
    // use_peft, lora_*, rpo_alpha and the reference switches are applied together in finish().
  }

  void finish() {
    // The reference strategy: at most one of TRL's switches.
    std::vector<std::pair<std::string, std::string>> strategies;
    if (flag("precompute_ref_log_probs")) strategies.emplace_back("precompute_ref_log_probs", "precomputed");
    if (flag("sync_ref_model")) strategies.emplace_back("sync_ref_model", "synced");
    if (flag("reference_free")) strategies.emplace_back("reference_free", "none");
    if (strategies.size() > 1)
      fail(strategies[1].first, "cannot be combined with " + strategies[0].first + " (one reference strategy)");
    if (!strategies.empty()) cfg.reference.strategy = strategies[0].second;
    // LoRA, as TRL's get_peft_config: only with use_peft.
    if (flag("use_peft")) {
      if (!cfg.lora) cfg.lora = default_for(std::type_identity<lora_settings>{});
      cfg.lora->alpha = 32.0, cfg.lora->r = 16, cfg.lora->dropout = 0.05;  // ModelConfig's defaults
      static const std::pair<const char*, const char*> lora_fields[] = {
          {"lora_r", "lora.r"}, {"lora_alpha", "lora.alpha"}, {"lora_dropout", "lora.dropout"}, {"use_rslora", "lora.use_rslora"}};
      for (const auto& [k, path] : lora_fields)
        if (j.contains(k)) set(k, path, j.at(k));
      if (j.contains("lora_target_modules")) {
        const auto& t = j.at("lora_target_modules");
        if (t.is_string()) fail("lora_target_modules", "'" + t.get<std::string>() + "' is not supported; list the module names");
        set("lora_target_modules", "lora.target_modules", t.is_null() ? nlohmann::json::array() : t);
      }
    }
    // rpo_alpha: TRL 0.x's RPO, the chosen NLL (TRL's sft loss) added with this weight.
    if (j.contains("rpo_alpha") && !j.at("rpo_alpha").is_null()) {
      const auto& a = j.at("rpo_alpha");
      if (!a.is_number()) fail("rpo_alpha", std::string("expected a number, got ") + a.type_name());
      if (cfg.loss.weights.empty()) cfg.loss.weights.assign(cfg.loss.type.size(), 1.0);
      cfg.loss.type.push_back("sft");
      cfg.loss.weights.push_back(a.get<double>());
    }
  }
};

} // namespace detail

// Applies the TRL config `j` onto `cfg` (TRL's defaults first, see trl_config.hpp). config_error
// names the key (file:line: field 'key' for YAML) for an unknown or unsupported field, a prefopt
// section mixed in, or a value of the wrong type.
inline void apply_trl_config(const nlohmann::json& j, run_config& cfg, const std::string& file, const line_map* lines = nullptr) {
  if (!j.is_object()) throw config_error(file, std::string("expected a mapping of TRL's field names, got ") + j.type_name());
  detail::trl_reader r{j, cfg, file, lines};
  std::string first_trl;
  for (auto it = j.begin(); it != j.end() && first_trl.empty(); ++it)
    if (find_field(it.key())) first_trl = it.key();
  for (const auto& section : prefopt_sections())
    if (j.contains(section))
      r.fail(section, "is one of prefopt's sections, and this config uses TRL's flat names ('" + first_trl +
                          "'); write the whole config in one style (docs/training.md)");
  cfg.training.num_train_epochs = 3;  // TrainingArguments' defaults
  cfg.training.save_steps = 500;
  cfg.output.dir = "trainer_output";
  cfg.data.truncation_mode = "keep_start";  // DPOConfig's
  for (auto it = j.begin(); it != j.end(); ++it) {
    const field* f = find_field(it.key());
    if (!f)
      r.fail(it.key(), "is not a TRL DPOConfig, TrainingArguments, ModelConfig or ScriptArguments field that prefopt knows "
                       "(the table: docs/training.md, \"TRL's config names\")");
    switch (f->kind) {
    case mapped: {
      const std::string t(f->target);
      r.set(it.key(), t.substr(0, t.find(' ')), it.value());
      break;
    }
    case converted: r.convert(it.key(), it.value()); break;
    case ignored: break;
    case restricted: {
      bool ok = false;
      for (const auto& a : detail::accepted_values(*f)) ok = ok || a == it.value();
      if (!ok) r.fail(it.key(), json_excerpt(it.value()) + " is not supported: " + std::string(f->target) + " (accepted: " +
                                    std::string(f->accepted) + ")");
      break;
    }
    }
  }
  r.finish();
}

// The table as Markdown (docs/training.md holds this text; tests/train/trl_config_test.cpp checks it).
[[nodiscard]] inline std::string markdown_table() {
  std::string s = "| TRL field | defined in | kind | prefopt |\n| --- | --- | --- | --- |\n";
  for (const auto& f : fields) {
    std::string target(f.target);
    if (f.kind == restricted) target += " (accepted: " + std::string(f.accepted) + ")";
    std::string cell;
    for (char c : target) cell += c == '|' ? std::string("\\|") : std::string(1, c);  // a | inside a table cell
    s += "| `" + std::string(f.name) + "` | " + std::string(f.owner) + " | " + std::string(kind_name(f.kind)) + " | " + cell + " |\n";
  }
  return s;
}

} // namespace prefopt::train::trl
