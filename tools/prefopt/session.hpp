// tools/prefopt/session.hpp — what `prefopt train` and `prefopt eval` share: the configuration
// (run.json + --set), the tokenized data, and the model opened as the right C++ type.
#pragma once

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "args.hpp"
#include "model_loader.hpp"
#include "prefopt/core/bf16.hpp"
#include "prefopt/core/json.hpp"
#include "prefopt/core/reflect.hpp"
#include "prefopt/data/chat_template.hpp"
#include "prefopt/data/collate.hpp"
#include "prefopt/data/fit_check.hpp"
#include "prefopt/data/tokenizer.hpp"
#include "prefopt/models/memory_estimate.hpp"
#include "prefopt/io/yaml.hpp"
#include "prefopt/train/config.hpp"
#include "prefopt/train/trl_config.hpp"

namespace prefopt::cli {

inline train::run_config load_config(const args& a) {
  train::run_config cfg = train::default_run_config();
  if (a.has("config")) {
    const std::string path = a.get("config");
    // YAML (TRL's CLI configs) becomes the same JSON tree, keeping each key's line for errors.
    io::yaml_document doc;
    if (io::is_yaml_path(path)) doc = io::read_yaml_file(path);
    else doc.value = read_json_file(path);
    if (train::trl::is_trl_config(doc.value)) {
      train::trl::apply_trl_config(doc.value, cfg, path, &doc.lines);
    } else {
      try {
        reflect::from_json(doc.value, cfg);
      } catch (const config_error& e) {
        std::string pointer = "/" + e.where();  // "optimizer.learning_rate" → "/optimizer/learning_rate" (YAML's line)
        pointer = pointer.substr(0, pointer.find('['));
        std::replace(pointer.begin(), pointer.end(), '.', '/');
        const std::size_t line = doc.line_of(pointer);
        throw config_error(line ? where_in(path, line, e.where()) : path + ": " + e.where(), e.why());
      }
    }
  }
  for (const auto& s : a.all("set")) reflect::apply_override(cfg, s);
  return cfg;
}

// The tokenizer and chat template of a model directory (or the configured tokenizer file).
struct text_pipeline {
  bool ready = false;
  std::optional<data::tokenizer> tok;
  std::optional<data::chat_template> chat;
  data::collate_options options;
};

inline text_pipeline open_text_pipeline(const train::run_config& cfg, bool conversational, bool text) {
  text_pipeline p;
  p.ready = true;
  const std::filesystem::path model(cfg.model);
  p.options.max_length = cfg.data.max_length ? std::optional<std::size_t>(std::size_t(*cfg.data.max_length)) : std::nullopt;
  p.options.max_prompt_length =
      cfg.data.max_prompt_length ? std::optional<std::size_t>(std::size_t(*cfg.data.max_prompt_length)) : std::nullopt;
  p.options.max_completion_length =
      cfg.data.max_completion_length ? std::optional<std::size_t>(std::size_t(*cfg.data.max_completion_length)) : std::nullopt;
  p.options.truncation = data::truncation_mode_from_name(cfg.data.truncation_mode, "config: field 'data.truncation_mode'");
  if (!text) return p;
  const std::filesystem::path tok_file = cfg.data.tokenizer ? std::filesystem::path(*cfg.data.tokenizer) : model / "tokenizer.json";
  p.tok = data::tokenizer::from_file(tok_file);
  nlohmann::json tc = nlohmann::json::object();
  // tokenizer_config.json (EOS, pad, chat template): the model directory's, else the tokenizer's.
  const auto tc_file = std::filesystem::exists(model / "tokenizer_config.json") || !cfg.data.tokenizer
                           ? model / "tokenizer_config.json"
                           : tok_file.parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(tc_file)) {
    tc = read_json_file(tc_file);
  }
  if (const auto eos = data::config_special_token(tc, "eos_token")) p.options.eos_token = *eos;
  if (const auto pad = data::config_special_token(tc, "pad_token"))
    if (const auto id = p.tok->token_to_id(*pad)) p.options.pad_token_id = *id;
  if (conversational) {
    p.chat = data::chat_template_from_setting(cfg.data.chat_template, tc, tc_file.string());
  } else if (cfg.data.chat_template == "gpt2_plain" || cfg.data.chat_template == "gpt2-plain") {
    p.chat = data::gpt2_plain_template();
  }
  if (p.options.eos_token.empty() && !conversational)
    throw config_error(tc_file.string() + ": field 'eos_token'",
                       "text completions end with the tokenizer's EOS token, and none is configured");
  return p;
}

// PEFT's default target modules for an architecture (peft's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING).
inline std::vector<std::string> default_lora_targets(const models::transformer_config& c) {
  if (c.arch == models::architecture::gpt2) return {"c_attn"};
  return {"q_proj", "v_proj"};
}

// Token ids below the model's vocab_size and rows within its positions (GPT-2's learned ones),
// checked for every record at load time: the error names the file and line (data.strict), or the
// record is skipped, reported to `log` and counted in *skipped.
template <class Tokenized>
void check_fits_model(Tokenized& d, const train::run_config& cfg, std::ostream& log, std::size_t* skipped = nullptr) {
  const auto mc = models::transformer_config::from_file(std::filesystem::path(cfg.model) / "config.json");
  const std::size_t positions = mc.arch == models::architecture::gpt2 ? std::size_t(mc.max_positions) : 0;  // 0: no limit
  const auto r = data::check_fits(d, mc.vocab_size, positions, cfg.data.strict ? data::on_error::stop : data::on_error::skip);
  for (const auto& e : r.errors) log << "prefopt: skipped " << e << "\n";
  if (r.skipped > 0) log << "prefopt: " << d.file << ": " << r.skipped << " records do not fit the model and were skipped\n";
  if (skipped) *skipped += r.skipped;
  if (d.size() == 0 && r.skipped > 0) throw data_error(d.file, "no record fits the model (" + std::to_string(r.skipped) + " skipped)");
}

// training.threads: 0 leaves OpenMP's default (all cores); a count above the cores this machine
// has is clamped to them, with a warning (libgomp fails on counts like 100000). Returns the count used.
inline int apply_thread_setting(int requested, std::ostream& log) {
  std::string warning;
  const int n = train::clamp_threads(requested, &warning);
  if (!warning.empty()) log << "prefopt: warning: " << warning << "\n";
#ifdef _OPENMP
  if (n > 0) omp_set_num_threads(n);
#endif
  return n;
}

// The shape of a run of `cfg` on the model `mc` (models/memory_estimate.hpp), all but the reference
// copy (estimate_run_memory decides it from the loss; prefopt reward train holds none).
// row_length: tokens in the data's longest row; rows_per_example: the rows one pair or example takes
// in a batch (2, or 1 with prefix sharing).
inline models::run_shape run_shape_of(const train::run_config& cfg, const models::transformer_config& mc, std::size_t row_length,
                                      std::size_t rows_per_example, bool training) {
  models::run_shape r;
  r.rows = std::size_t(std::max(cfg.training.batch_size, 1)) * rows_per_example;
  r.row_length = row_length;
  r.training = training;
  r.gradient_checkpointing = cfg.training.gradient_checkpointing;
  r.optimizer_slots = cfg.optimizer.type == "sgd" ? (cfg.optimizer.momentum != 0.0 ? 1 : 0) : 2;
  if (cfg.lora) {
    r.lora_rank = cfg.lora->r;
    r.lora_targets = cfg.lora->target_modules.empty() ? default_lora_targets(mc) : cfg.lora->target_modules;
  } else if (cfg.adapter) {
    const auto ac = read_adapter_config(*cfg.adapter);
    r.lora_rank = ac.r;
    r.lora_targets = ac.target_modules;
  }
  r.bf16_weight_copy = cfg.training.precision == "bf16";
  // LoRA adapter dropout in training keeps the norm outputs fp32 (transformer::set_activation_copy).
  const bool adapter_dropout = training && cfg.lora && cfg.lora->dropout > 0.0 && !cfg.training.disable_dropout;
  r.bf16_norm_outputs = r.bf16_weight_copy && !adapter_dropout;
  return r;
}

// What a run of `cfg` on the model `mc` will hold at its peak: run_shape_of plus the reference copy
// its loss and reference strategy keep.
inline models::memory_estimate estimate_run_memory(const train::run_config& cfg, const models::transformer_config& mc,
                                                   std::size_t row_length, std::size_t rows_per_example, bool training) {
  models::run_shape r = run_shape_of(cfg, mc, row_length, rows_per_example, training);
  const bool lora = cfg.lora.has_value() || cfg.adapter.has_value();
  const auto& t = cfg.loss.type;
  const bool unpaired = t.size() == 1 && (t[0] == "kto" || t[0] == "apo_zero_unpaired");
  std::string strategy = cfg.reference.strategy;
  if (strategy == "auto") {
    bool reference_free = false;
    if (!unpaired) {
      try {
        reference_free = losses::any_loss(cfg.loss).reference_free();
      } catch (const error&) {  // reported with its field when the run builds the loss
      }
    }
    strategy = reference_free ? "none" : cfg.adapter ? "initial_adapter" : lora ? "adapter_disabled" : "frozen";
  }
  r.reference_copy = strategy == "frozen" || strategy == "synced" || (strategy == "precomputed" && !lora);
  return models::estimate_memory(mc, r);
}

// training.memory_limit_gib as the fit check on backend B reads it: a device backend's 0 is its
// device's memory (B{}.memory_bytes()), a host backend's the machine's (check_memory).
template <class B> double memory_limit_gib_on(const train::run_config& cfg, const B& backend) {
  if constexpr (!B::host_memory) {
    if (cfg.training.memory_limit_gib == 0.0) return double(backend.memory_bytes()) / double(std::size_t(1) << 30);
  }
  return cfg.training.memory_limit_gib;
}

// Prints "prefopt: this run needs about X GiB (...)" and throws config_error naming the model when
// that exceeds `limit_gib` (training.memory_limit_gib: 0 the machine's memory, < 0 no check).
// Called before any allocation.
inline void check_estimate(const models::memory_estimate& m, double limit_gib, const train::run_config& cfg, std::ostream& log) {
  log << "prefopt: " << models::describe(m) << "\n";
  models::check_memory(m, limit_gib, cfg.model,
                       "set training.memory_limit_gib to a larger figure in GiB (or -1 to skip this check), or make "
                       "training.batch_size, data.max_length or the model smaller");
}

// The run configuration of a command that reads a model and a data file from flags (logps,
// reward score, generate): --model, and where the command takes them --strict, --tokenizer,
// --chat-template and --max-length, as the same fields of a run.json.
inline train::run_config data_flags(const args& a) {
  train::run_config cfg = train::default_run_config();
  cfg.model = a.require("model");
  cfg.data.strict = a.flag("strict");
  if (a.has("tokenizer")) cfg.data.tokenizer = a.get("tokenizer");
  if (a.has("chat-template")) cfg.data.chat_template = a.get("chat-template");
  // No --max-length: no truncation (the whole pair is scored), unlike training's default.
  cfg.data.max_length = a.has("max-length") ? std::optional<int>(int(a.integer("max-length", 0))) : std::nullopt;
  return cfg;
}

// "prefopt: truncation keep_start (TRL's: ...), max_length 1024": which rule cut the data (collate.hpp).
inline void log_truncation(const train::run_config& cfg, std::ostream& log) {
  const auto& m = cfg.data.truncation_mode;
  log << "prefopt: truncation " << m
      << (m == "keep_start"  ? " (TRL's default: each row keeps its first max_length tokens; a prompt that fills max_length drops the pair)"
          : m == "keep_end" ? " (TRL's keep_end: each row keeps its last max_length tokens)"
                            : " (prefopt's: the prompt keeps its end, the completions their start)");
  if (cfg.data.max_length) log << ", max_length " << *cfg.data.max_length;
  else log << ", no max_length";
  if (cfg.data.max_prompt_length) log << ", max_prompt_length " << *cfg.data.max_prompt_length;
  if (cfg.data.max_completion_length) log << ", max_completion_length " << *cfg.data.max_completion_length;
  log << "\n";
}

// Reads and tokenizes a pair dataset; bad lines are reported to `log` (and counted in
// *read_skipped) unless data.strict makes the first one an error.
inline data::tokenized_preferences tokenize_file(const std::string& path, const train::run_config& cfg, text_pipeline* shared,
                                                 std::ostream& log, std::size_t* read_skipped = nullptr) {
  data::read_options ro;
  ro.policy = cfg.data.strict ? data::on_error::stop : data::on_error::skip;
  ro.keep_errors = 100;
  const auto file = data::read_preference_file(path, ro);
  for (const auto& e : file.report.first_errors) log << "prefopt: skipped " << e << "\n";
  if (read_skipped) *read_skipped = file.report.skipped;
  const bool text = !data::is_tokenized(file.format);
  text_pipeline local;
  text_pipeline& p = shared ? *shared : local;
  if (!p.ready || (text && !p.tok)) p = open_text_pipeline(cfg, data::is_conversational(file.format), text);
  if (data::is_unpaired(file.format))
    throw config_error(path, "holds unpaired records: train them with loss.type [\"kto\"] or [\"apo_zero_unpaired\"]");
  data::tokenized_preferences d = text ? data::tokenize_preferences(file, *p.tok, p.chat ? &*p.chat : nullptr, p.options)
                                       : data::tokenize_preferences(file, p.options);
  check_fits_model(d, cfg, log, read_skipped);
  log << "prefopt: " << path << " (" << data::to_string(file.format) << "): " << file.report.summary() << "; "
      << d.report.summary() << "\n";
  log_truncation(cfg, log);
  return d;
}

// Unpaired (KTO) examples: an unpaired file, or pairs unpaired as TRL's unpair_preference_dataset does.
inline data::tokenized_unpaired tokenize_unpaired_file(const std::string& path, const train::run_config& cfg,
                                                       text_pipeline* shared, std::ostream& log) {
  data::read_options ro;
  ro.policy = cfg.data.strict ? data::on_error::stop : data::on_error::skip;
  ro.keep_errors = 100;
  const auto file = data::read_preference_file(path, ro);
  for (const auto& e : file.report.first_errors) log << "prefopt: skipped " << e << "\n";
  const bool text = !data::is_tokenized(file.format);
  text_pipeline local;
  text_pipeline& p = shared ? *shared : local;
  if (!p.ready || (text && !p.tok)) p = open_text_pipeline(cfg, data::is_conversational(file.format), text);
  data::tokenized_unpaired d = text ? data::tokenize_unpaired(file, *p.tok, p.chat ? &*p.chat : nullptr, p.options)
                                    : data::tokenize_unpaired(file, p.options);
  check_fits_model(d, cfg, log);
  log << "prefopt: " << path << " (" << data::to_string(file.format) << ", as unpaired examples): " << file.report.summary()
      << "; " << d.report.summary() << "\n";
  log_truncation(cfg, log);
  return d;
}

// A seeded split of 0..n−1: the first round(share·n) of a shuffled order become the eval set, the
// rest the training set, each back in file order.
struct split_indices {
  std::vector<std::size_t> eval, train;
};
inline split_indices seeded_split(std::size_t n, double share, std::uint64_t seed) {
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  const auto n_eval = std::ptrdiff_t(std::round(share * double(n)));
  split_indices s{{order.begin(), order.begin() + n_eval}, {order.begin() + n_eval, order.end()}};
  std::sort(s.eval.begin(), s.eval.end());
  std::sort(s.train.begin(), s.train.end());
  return s;
}

// The entries of an optional per-row column at `idx` (empty stays empty).
inline std::vector<double> select_column(const std::vector<double>& c, const std::vector<std::size_t>& idx) {
  std::vector<double> r;
  if (!c.empty())
    for (auto i : idx) r.push_back(c[i]);
  return r;
}

// Splits `share` of the pairs off into an eval set, in a seeded order; `d` keeps the rest.
inline data::tokenized_preferences split_eval(data::tokenized_preferences& d, double share, std::uint64_t seed) {
  auto take = [&](const std::vector<std::size_t>& idx) {
    data::tokenized_preferences out;
    out.file = d.file;
    out.pad_token_id = d.pad_token_id;
    for (auto i : idx) {
      out.pairs.push_back(d.pairs[i]);
      out.lines.push_back(d.lines[i]);
    }
    out.preference_prob = select_column(d.preference_prob, idx), out.score_chosen = select_column(d.score_chosen, idx);
    out.score_rejected = select_column(d.score_rejected, idx), out.cost = select_column(d.cost, idx);
    out.weight = select_column(d.weight, idx);
    out.reference_chosen = select_column(d.reference_chosen, idx), out.reference_rejected = select_column(d.reference_rejected, idx);
    return out;
  };
  const split_indices s = seeded_split(d.size(), share, seed);
  data::tokenized_preferences e = take(s.eval);
  d = take(s.train);
  return e;
}

// The same for unpaired examples.
inline data::tokenized_unpaired split_eval(data::tokenized_unpaired& d, double share, std::uint64_t seed) {
  auto take = [&](const std::vector<std::size_t>& idx) {
    data::tokenized_unpaired out;
    out.file = d.file;
    out.pad_token_id = d.pad_token_id;
    out.max_length = d.max_length;
    for (auto i : idx) {
      out.examples.push_back(d.examples[i]);
      out.lines.push_back(d.lines[i]);
    }
    out.weight = select_column(d.weight, idx);
    return out;
  };
  const split_indices s = seeded_split(d.size(), share, seed);
  data::tokenized_unpaired e = take(s.eval);
  d = take(s.train);
  return e;
}

// The backend with the run's training.precision (core/bf16.hpp); a backend without the setting
// runs fp32 only.
template <class B> B backend_for(const train::run_config& cfg) {
  const precision p = parse_precision(cfg.training.precision, "config: field 'training.precision'");
  B backend{};
  if constexpr (requires { backend.matmul_precision = p; }) {
    backend.matmul_precision = p;
  } else if (p != precision::fp32) {
    throw config_error("config: field 'training.precision'",
                       "bf16 is not available on the " + std::string(B::name) + " backend (fp32 only)");
  }
  return backend;
}

// Opens the policy as its concrete type (gpt2/llama over B, with LoRA when configured) and calls fn(model).
// row_length and rows_per_example size the memory estimate checked before the model is built
// (estimate_run_memory, check_estimate): the data's longest row (data::longest_row), and the rows one example takes
// in a batch (2 per pair, 1 with prefix sharing, 2 for an unpaired example and its KL row). With
// row_length 0, data.max_length (else the model's positions) stands in for the longest row.
// B: the backend (eigen unless given); a device backend checks the estimate against its device's
// memory (B{}.memory_bytes()) where training.memory_limit_gib is 0.
template <class B = backends::eigen, class Fn>
void with_policy(const train::run_config& cfg, Fn&& fn, std::size_t row_length = 0, std::size_t rows_per_example = 2,
                 bool training = true) {
  const std::filesystem::path dir(cfg.model);
  const auto mc = models::transformer_config::from_file(dir / "config.json");
  if (row_length == 0) row_length = std::size_t(std::min(cfg.data.max_length.value_or(mc.max_positions), mc.max_positions));
  const B backend = backend_for<B>(cfg);
  check_estimate(estimate_run_memory(cfg, mc, row_length, rows_per_example, training), memory_limit_gib_on(cfg, backend), cfg,
                 std::cerr);
  auto run = [&](auto tag) {
    using M = typename decltype(tag)::type;
    M m(backend, mc);
    models::load_weights(m, dir);
    m.set_gradient_checkpointing(training && cfg.training.gradient_checkpointing);
    if (cfg.adapter) {
      models::lora<M> lm(std::move(m), read_adapter_config(*cfg.adapter));
      lm.load_adapter(*cfg.adapter);
      fn(lm);
    } else if (cfg.lora) {
      models::lora_config lc{.r = cfg.lora->r, .alpha = cfg.lora->alpha, .dropout = cfg.lora->dropout,
                             .target_modules = cfg.lora->target_modules.empty() ? default_lora_targets(mc) : cfg.lora->target_modules,
                             .use_rslora = cfg.lora->use_rslora};
      models::lora<M> lm(std::move(m), lc, std::uint64_t(cfg.training.seed));
      fn(lm);
    } else {
      fn(m);
    }
  };
  if (mc.arch == models::architecture::gpt2) run(std::type_identity<models::gpt2<B>>{});
  else run(std::type_identity<models::llama<B>>{});
}

} // namespace prefopt::cli
