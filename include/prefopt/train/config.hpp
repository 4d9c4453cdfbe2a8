// prefopt/train/config.hpp — the run configuration of `prefopt train`, reflected with Boost.Hana.
//
// One source of truth: these structs are read from run.json (unknown keys and wrong types are
// errors naming the key), overridden with `--set key.path=value`, printed with every default by
// `prefopt train --print-config`, and validated (impossible values name their field).
// Defaults follow TRL's DPOConfig and Hugging Face's TrainingArguments where they have one.
#pragma once

#include <boost/hana/define_struct.hpp>
#include <optional>
#include <string>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/core/reflect.hpp"
#include "prefopt/losses/any_loss.hpp"
#include "prefopt/train/run_limits.hpp"

namespace prefopt::train {

struct data_config {
  BOOST_HANA_DEFINE_STRUCT(data_config,
    (std::string, train),                      // JSONL (.jsonl or .jsonl.gz) in one of TRL's formats
    (std::optional<std::string>, eval),        // held-out pairs; none: split eval_fraction off train
    (double, eval_fraction),                   // share of train held out when eval is not given
    (std::optional<std::string>, tokenizer),   // tokenizer.json (default: the model directory's)
    (std::string, chat_template),              // auto (from tokenizer_config.json), chatml, qwen2, qwen2_5, llama3, gpt2_plain, a named template of tokenizer_config.json, or a .jinja file
    (std::optional<int>, max_length),          // prompt + completion tokens (TRL: 1024)
    (std::optional<int>, max_prompt_length),   // the prompt's share (keep_prompt_end: its last tokens; keep_start/keep_end: as TRL 0.x)
    (bool, prefix_sharing),                    // one row per pair: prompt + chosen + rejected
    (int, pad_to_multiple_of),
    (bool, length_bucketing),
    (bool, strict),                            // stop at the first bad line instead of skipping it
    (std::optional<int>, max_completion_length),  // each completion keeps its first this many tokens (TRL 0.x)
    (std::string, truncation_mode));           // keep_prompt_end (prefopt), keep_start or keep_end (TRL): docs/data.md
};

struct lora_settings {
  BOOST_HANA_DEFINE_STRUCT(lora_settings,
    (int, r),
    (double, alpha),
    (std::vector<std::string>, target_modules),  // empty: PEFT's default for the architecture
    (bool, use_rslora),
    (double, dropout));                        // PEFT's lora_dropout; off while training.disable_dropout
};

struct reference_settings {
  BOOST_HANA_DEFINE_STRUCT(reference_settings,
    (std::string, strategy),                   // auto, frozen, precomputed, adapter_disabled, initial_adapter, none, synced
    (std::optional<std::string>, cache_dir),   // precomputed: where the cache lives (default: output/ref_cache)
    (int, sync_steps),                         // synced (TR-DPO): τ
    (double, mixup_alpha),                     // synced: α
    (int, precompute_batch_size));             // precomputed: pairs per reference pass (0: training.batch_size)
};

struct optimizer_settings {
  BOOST_HANA_DEFINE_STRUCT(optimizer_settings,
    (std::string, type),                       // adamw, sgd
    (double, learning_rate),
    (double, beta1),
    (double, beta2),
    (double, eps),
    (double, weight_decay),
    (double, momentum),
    (std::string, lr_scheduler_type),          // linear, cosine, constant, constant_with_warmup
    (int, warmup_steps),
    (double, warmup_ratio),
    (double, max_grad_norm));
};

struct training_settings {
  BOOST_HANA_DEFINE_STRUCT(training_settings,
    (int, num_train_epochs),
    (int, max_steps),                          // > 0 overrides epochs
    (int, batch_size),                         // pairs per micro-batch
    (int, gradient_accumulation_steps),
    (int, seed),
    (int, threads),                            // 0: all cores
    (int, logging_steps),
    (int, eval_steps),                         // 0: evaluate at the end of each epoch only
    (int, save_steps),                         // 0: save at the end only
    (int, save_total_limit),
    (std::optional<std::string>, early_stopping_metric),  // e.g. eval_loss
    (int, early_stopping_patience),
    (bool, greater_is_better),
    (bool, resume),                            // continue from the newest checkpoint in output.dir
    (bool, disable_dropout),                   // TRL's default true: no dropout (lora.dropout included)
    (int, max_consecutive_skipped_steps),      // non-finite steps in a row that end the run with an error; 0: never
    (double, memory_limit_gib),                // 0: the machine's memory; > 0: this many GiB; < 0: no check
    (bool, gradient_checkpointing),           // keep each layer's input only, recompute the layer in backward
    (int, zero),                               // 1: ZeRO-1 under mpirun (optimizer state split across ranks); 0: off
    (bool, overlap_reduce),                    // under mpirun: start gradient buckets' all-reduce during backward
    (std::string, precision),                  // fp32 or bf16: matrix products and attention (docs/backends.md)
    (bool, fused_head));                       // pair-separable losses: the LM head's backward inside its forward
};

struct output_settings {
  BOOST_HANA_DEFINE_STRUCT(output_settings,
    (std::string, dir),
    (bool, tensorboard),
    (bool, save_merged),                       // LoRA: also save the merged model
    (std::string, dtype),                      // f32 or bf16 for saved weights
    (bool, overwrite));                        // a fresh run removes an earlier run's checkpoints in dir
};

struct run_config {
  BOOST_HANA_DEFINE_STRUCT(run_config,
    (std::string, model),                      // directory: config.json + model.safetensors (+ tokenizer.json)
    (std::string, backend),                    // eigen (CPU) or cuda (one NVIDIA GPU; a build with CUDA)
    (std::optional<std::string>, adapter),     // a PEFT LoRA adapter to start from
    (std::optional<lora_settings>, lora),      // train LoRA adapters instead of the full model
    (data_config, data),
    (losses::loss_settings, loss),
    (reference_settings, reference),
    (optimizer_settings, optimizer),
    (training_settings, training),
    (output_settings, output));
};

// The defaults (TRL DPOConfig / TrainingArguments where they exist), found by reflect::default_of.
inline lora_settings default_for(std::type_identity<lora_settings>) { return {8, 16.0, {}, false, 0.0}; }
inline run_config default_for(std::type_identity<run_config>) {
  run_config c;
  c.backend = "eigen";
  c.data = {"", std::nullopt, 0.0, std::nullopt, "auto", 1024, std::nullopt, true, 0, true, false, std::nullopt, "keep_prompt_end"};
  c.loss = losses::default_for(std::type_identity<losses::loss_settings>{});
  c.reference = {"auto", std::nullopt, 512, 0.6, 0};
  c.optimizer = {"adamw", 1e-6, 0.9, 0.999, 1e-8, 0.0, 0.0, "linear", 0, 0.0, 1.0};
  c.training = {1, -1, 8, 1, 42, 0, 10, 0, 0, 3, std::nullopt, 3, false, false, true, 5, 0.0, false, 0, true, "fp32", true};
  c.output = {"prefopt-out", true, false, "f32", false};
  return c;
}
inline run_config default_run_config() { return default_for(std::type_identity<run_config>{}); }

// Impossible values, each naming its field. (Loss hyperparameters are checked again by the losses.)
inline void validate(const run_config& c) {
  auto bad = [](const std::string& field, const std::string& why) { throw config_error("config: field '" + field + "'", why); };
  if (c.model.empty()) bad("model", "is required (a directory with config.json and model.safetensors)");
  if (c.backend != "eigen" && c.backend != "cuda") bad("backend", "must be eigen (CPU) or cuda (one NVIDIA GPU), is '" + c.backend + "'");
  if (c.data.train.empty()) bad("data.train", "is required (a JSONL file in one of TRL's formats)");
  if (!(c.data.eval_fraction >= 0.0 && c.data.eval_fraction < 1.0)) bad("data.eval_fraction", "must lie in [0, 1)");
  if (c.data.max_length && *c.data.max_length < 2) bad("data.max_length", "must be at least 2");
  if (c.data.pad_to_multiple_of < 0) bad("data.pad_to_multiple_of", "must be >= 0");
  if (c.data.max_prompt_length && *c.data.max_prompt_length < 1) bad("data.max_prompt_length", "must be at least 1");
  if (c.data.max_completion_length && *c.data.max_completion_length < 1) bad("data.max_completion_length", "must be at least 1");
  if (c.data.truncation_mode != "keep_prompt_end" && c.data.truncation_mode != "keep_start" && c.data.truncation_mode != "keep_end")
    bad("data.truncation_mode", "'" + c.data.truncation_mode + "' is not one of keep_prompt_end (prefopt), keep_start, keep_end (TRL)");
  if (c.reference.precompute_batch_size < 0) bad("reference.precompute_batch_size", "must be >= 0 (0: training.batch_size)");
  if (c.loss.type.empty()) bad("loss.type", "name at least one loss");
  if (!c.loss.weights.empty() && c.loss.weights.size() != c.loss.type.size())
    bad("loss.weights", "must have one weight per loss type (" + std::to_string(c.loss.type.size()) + ")");
  if (!(c.loss.beta > 0.0)) bad("loss.beta", "must be > 0");
  if (c.loss.ld_alpha && !(*c.loss.ld_alpha >= 0.0 && *c.loss.ld_alpha <= 1.0)) bad("loss.ld_alpha", "must lie in [0, 1]");
  if (c.training.batch_size <= 0) bad("training.batch_size", "must be > 0");
  if (c.training.gradient_accumulation_steps <= 0) bad("training.gradient_accumulation_steps", "must be > 0");
  if (c.training.num_train_epochs <= 0 && c.training.max_steps <= 0)
    bad("training.num_train_epochs", "must be > 0 (or set training.max_steps)");
  if (c.training.logging_steps <= 0) bad("training.logging_steps", "must be > 0");
  if (c.training.zero != 0 && c.training.zero != 1) bad("training.zero", "must be 0 or 1 (ZeRO stage 1: optimizer state split across ranks)");
  if (c.training.max_consecutive_skipped_steps < 0) bad("training.max_consecutive_skipped_steps", "must be >= 0 (0: never stop)");
  if (c.training.resume && c.output.overwrite)
    bad("output.overwrite", "removes the checkpoints that training.resume=true would continue; set only one");
  if (c.reference.sync_steps <= 0) bad("reference.sync_steps", "must be > 0");
  if (!(c.reference.mixup_alpha >= 0.0 && c.reference.mixup_alpha <= 1.0)) bad("reference.mixup_alpha", "must lie in [0, 1]");
  if (c.optimizer.max_grad_norm < 0.0) bad("optimizer.max_grad_norm", "must be >= 0 (0 disables clipping)");
  if (c.training.precision != "fp32" && c.training.precision != "bf16") bad("training.precision", "must be fp32 or bf16, is '" + c.training.precision + "'");
  if (c.output.dtype != "f32" && c.output.dtype != "bf16") bad("output.dtype", "must be f32 or bf16");
  if (c.lora) {
    if (c.lora->r <= 0) bad("lora.r", "must be > 0");
    if (!(c.lora->alpha > 0.0)) bad("lora.alpha", "must be > 0");
    if (!(c.lora->dropout >= 0.0 && c.lora->dropout < 1.0)) bad("lora.dropout", "must lie in [0, 1)");
  }
  check_run_limits(c);
}

} // namespace prefopt::train
