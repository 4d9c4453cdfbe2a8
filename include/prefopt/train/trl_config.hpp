// prefopt/train/trl_config.hpp — TRL's configuration names (a DPOConfig file, as `trl dpo --config`
// reads it: DPOConfig with Hugging Face's TrainingArguments, TRL's ModelConfig and ScriptArguments)
// mapped onto run_config. The one table `fields` below is what the reader applies and what
// docs/training.md prints (tests/train/trl_config_test.cpp checks the two agree).
//
// Which style a config is: a top-level key that is one of the names below makes it a TRL config;
// then every top-level key must be one of them (a prefopt section such as `optimizer` or `data`
// beside TRL's flat names is an error naming the key). Otherwise it is read as prefopt's sections.
// `--set key.path=value` applies to prefopt's names after either (e.g. --set data.eval=heldout.jsonl).
//
// Kinds of fields:
//   mapped      the value goes to one prefopt option, type-checked there (errors name TRL's key)
//   converted   a rule turns it into prefopt options (described in `target`)
//   ignored     accepted with any value: it does not change what is trained or computed (`target`: why)
//   restricted  accepted only with the values in `accepted` (those that change nothing here); any
//               other value is an error saying why prefopt does not support it
// Any other name is an error naming it. A TRL config starts from TRL's defaults where they differ
// from prefopt's: num_train_epochs 3, save_steps 500, output_dir "trainer_output",
// truncation_mode keep_start.
#pragma once

#include <string_view>

namespace prefopt::train::trl {

enum class field_kind { mapped, converted, ignored, restricted };

struct field {
  std::string_view name;            // TRL's name
  std::string_view owner;           // the class that defines it in TRL 1.16 (or "DPOConfig (TRL 0.x)")
  field_kind kind;
  std::string_view target;          // mapped: the prefopt option; converted: the rule; ignored/restricted: why
  std::string_view accepted = {};   // restricted: the accepted values as JSON texts, separated by " | "
};

inline constexpr std::string_view dpo = "DPOConfig", ta = "TrainingArguments", mc = "ModelConfig", sa = "ScriptArguments",
                                  old = "DPOConfig (TRL 0.x)";
using enum field_kind;

inline constexpr field fields[] = {
  // ---- ModelConfig and ScriptArguments: what is trained on what
  {"model_name_or_path", mc, mapped, "model"},
  {"dataset_name", sa, converted, "data.train: a local JSONL file (.jsonl, .jsonl.gz, .json); hub datasets are not downloaded"},
  {"dataset_train_split", sa, restricted, "a JSONL file is one split", "\"train\""},
  {"dataset_test_split", sa, ignored, "the eval set is data.eval (--set data.eval=FILE) or data.eval_fraction"},
  {"dataset_config", sa, restricted, "a JSONL file has no configurations", "null"},
  {"dataset_streaming", sa, restricted, "the file is read whole", "false"},
  {"datasets", sa, restricted, "dataset mixtures are not read; name one file in dataset_name", "null | []"},
  {"ignore_bias_buffers", sa, ignored, "no buffers are trained"},
  {"model_revision", mc, restricted, "the model is a local folder", "\"main\""},
  {"dtype", mc, restricted, "prefopt computes in f32", "null | \"auto\" | \"float32\""},
  {"torch_dtype", mc, restricted, "prefopt computes in f32", "null | \"auto\" | \"float32\""},
  {"attn_implementation", mc, ignored, "prefopt's own attention; the same math"},
  {"trust_remote_code", dpo, ignored, "no code is run from the model folder"},
  {"model_init_kwargs", dpo, restricted, "models are loaded from config.json and safetensors only", "null | {}"},
  // ---- LoRA (ModelConfig): applied only when use_peft is true, as TRL's scripts do
  {"use_peft", mc, converted, "true: train LoRA adapters (the lora section) with the lora_* fields below"},
  {"lora_r", mc, converted, "lora.r (with use_peft)"},
  {"lora_alpha", mc, converted, "lora.alpha (with use_peft)"},
  {"lora_dropout", mc, converted, "lora.dropout (with use_peft)"},
  {"lora_target_modules", mc, converted, "lora.target_modules (with use_peft; null: PEFT's default for the architecture)"},
  {"use_rslora", mc, converted, "lora.use_rslora (with use_peft)"},
  {"lora_task_type", mc, restricted, "causal language models only", "\"CAUSAL_LM\""},
  {"lora_modules_to_save", mc, restricted, "only LoRA matrices are trained", "null | []"},
  {"lora_target_parameters", mc, restricted, "LoRA targets modules, not parameters", "null | []"},
  {"use_dora", mc, restricted, "DoRA is not implemented", "false"},
  {"load_in_8bit", mc, restricted, "no quantized base", "false"},
  {"load_in_4bit", mc, restricted, "no quantized base", "false"},
  {"bnb_4bit_quant_type", mc, ignored, "used only with load_in_4bit"},
  {"use_bnb_nested_quant", mc, ignored, "used only with load_in_4bit"},
  {"bnb_4bit_quant_storage", mc, ignored, "used only with load_in_4bit"},
  // ---- the loss (DPOConfig)
  {"loss_type", dpo, converted, "loss.type (a name or a list of names)"},
  {"loss_weights", dpo, converted, "loss.weights (null: 1 each)"},
  {"beta", dpo, mapped, "loss.beta"},
  {"label_smoothing", dpo, mapped, "loss.label_smoothing"},
  {"f_divergence_type", dpo, mapped, "loss.f_divergence_type"},
  {"f_alpha_divergence_coef", dpo, mapped, "loss.f_alpha_divergence_coef"},
  {"use_weighting", dpo, mapped, "loss.use_weighting"},
  {"discopop_tau", dpo, mapped, "loss.discopop_tau"},
  {"ld_alpha", dpo, mapped, "loss.ld_alpha"},
  {"rpo_alpha", old, converted, "adds an sft term with this weight to loss.type (null: none)"},
  // ---- the reference (DPOConfig)
  {"precompute_ref_log_probs", dpo, converted, "true: reference.strategy = precomputed"},
  {"precompute_ref_batch_size", dpo, converted, "reference.precompute_batch_size (null: training.batch_size)"},
  {"sync_ref_model", dpo, converted, "true: reference.strategy = synced"},
  {"ref_model_mixup_alpha", dpo, mapped, "reference.mixup_alpha"},
  {"ref_model_sync_steps", dpo, mapped, "reference.sync_steps"},
  {"reference_free", old, converted, "true: reference.strategy = none"},
  {"disable_dropout", dpo, mapped, "training.disable_dropout"},
  // ---- data (DPOConfig)
  {"max_length", dpo, mapped, "data.max_length (null: no truncation)"},
  {"truncation_mode", dpo, mapped, "data.truncation_mode (keep_start or keep_end; TRL's default keep_start)"},
  {"max_prompt_length", old, mapped, "data.max_prompt_length"},
  {"max_completion_length", old, mapped, "data.max_completion_length"},
  {"pad_to_multiple_of", dpo, converted, "data.pad_to_multiple_of (null or \"auto\": 0)"},
  {"padding_free", dpo, ignored, "rows are always packed without padding (models/token_batch.hpp); the log-probs are the same"},
  {"dataset_num_proc", dpo, ignored, "tokenization runs in this process"},
  {"pad_token", dpo, restricted, "the pad token comes from tokenizer_config.json", "null"},
  {"padding_value", old, ignored, "padding never reaches a log-prob"},
  {"label_pad_token_id", old, ignored, "padding never reaches a log-prob"},
  {"tools", old, restricted, "tool definitions are not rendered from the config", "null"},
  {"use_logits_to_keep", old, ignored, "the LM head scores only completion tokens already"},
  {"generate_during_eval", old, restricted, "no generation during evaluation", "false"},
  {"is_encoder_decoder", old, restricted, "causal language models only", "null | false"},
  {"ref_model_init_kwargs", old, restricted, "the reference is loaded like the model", "null | {}"},
  {"model_adapter_name", old, restricted, "one adapter per model", "null"},
  {"ref_adapter_name", old, restricted, "one adapter per model", "null"},
  {"force_use_ref_model", old, restricted, "the reference follows reference.strategy", "false"},
  {"activation_offloading", dpo, ignored, "memory only"},
  {"router_aux_loss_coef", dpo, restricted, "no Mixture-of-Experts models", "null"},
  // ---- optimizer and schedule (TrainingArguments)
  {"learning_rate", ta, mapped, "optimizer.learning_rate"},
  {"weight_decay", ta, mapped, "optimizer.weight_decay"},
  {"adam_beta1", ta, mapped, "optimizer.beta1"},
  {"adam_beta2", ta, mapped, "optimizer.beta2"},
  {"adam_epsilon", ta, mapped, "optimizer.eps"},
  {"max_grad_norm", ta, mapped, "optimizer.max_grad_norm"},
  {"optim", ta, converted, "optimizer.type: adamw_torch, adamw_torch_fused, adamw_hf → adamw; sgd → sgd"},
  {"lr_scheduler_type", ta, mapped, "optimizer.lr_scheduler_type"},
  {"lr_scheduler_kwargs", ta, restricted, "the schedules take no extra arguments", "null | {}"},
  {"warmup_ratio", ta, mapped, "optimizer.warmup_ratio"},
  {"warmup_steps", ta, converted, "optimizer.warmup_steps; a fraction in (0, 1) is optimizer.warmup_ratio, as in transformers 5"},
  // ---- the training loop (TrainingArguments)
  {"per_device_train_batch_size", ta, mapped, "training.batch_size (one process; under mpirun -np N give N times it)"},
  {"per_device_eval_batch_size", ta, ignored, "evaluation batches take training.batch_size; eval metrics are means over pairs"},
  {"gradient_accumulation_steps", ta, mapped, "training.gradient_accumulation_steps"},
  {"num_train_epochs", ta, mapped, "training.num_train_epochs (a whole number)"},
  {"max_steps", ta, mapped, "training.max_steps"},
  {"seed", ta, mapped, "training.seed"},
  {"data_seed", ta, restricted, "batches are drawn from seed", "null"},
  {"gradient_checkpointing", ta, mapped, "training.gradient_checkpointing"},
  {"gradient_checkpointing_kwargs", ta, ignored, "one checkpointing scheme"},
  {"bf16", ta, converted, "true: training.precision bf16; false: fp32; null (TRL: bf16 where the hardware has it): prefopt's fp32"},
  {"fp16", ta, restricted, "prefopt computes in f32", "false"},
  {"tf32", ta, ignored, "arithmetic is full f32 (the cuda backend does not use TF32)"},
  {"use_cpu", ta, ignored, "the device is prefopt's backend option (eigen, the CPU, by default)"},
  {"resume_from_checkpoint", ta, converted, "true: training.resume (the newest checkpoint in output_dir); null or false: no"},
  // ---- logging, evaluation and saving (TrainingArguments)
  {"output_dir", ta, mapped, "output.dir"},
  {"overwrite_output_dir", ta, mapped, "output.overwrite"},
  {"logging_steps", ta, mapped, "training.logging_steps (a whole number)"},
  {"logging_strategy", ta, restricted, "logging is every logging_steps", "\"steps\""},
  {"logging_first_step", ta, ignored, "which steps are logged, not what is trained"},
  {"logging_dir", ta, ignored, "TensorBoard files go to output_dir"},
  {"log_level", ta, ignored, "messages only"},
  {"report_to", ta, ignored, "metrics.jsonl, metrics.csv and TensorBoard files are always written"},
  {"run_name", ta, ignored, "a label only"},
  {"disable_tqdm", ta, ignored, "the progress bar shows on a terminal only"},
  {"eval_strategy", ta, ignored, "evaluation runs when there is an eval set, every eval_steps (0: each epoch's end)"},
  {"eval_steps", ta, mapped, "training.eval_steps"},
  {"eval_accumulation_steps", ta, ignored, "memory only"},
  {"save_strategy", ta, converted, "\"no\": training.save_steps = 0 (one checkpoint, at the end); \"steps\": save_steps"},
  {"save_steps", ta, mapped, "training.save_steps"},
  {"save_total_limit", ta, mapped, "training.save_total_limit"},
  {"save_only_model", ta, ignored, "checkpoints always hold what a resumed run needs"},
  {"save_safetensors", ta, ignored, "weights are always saved as safetensors"},
  {"load_best_model_at_end", ta, restricted, "the final model is the last step's", "false"},
  {"metric_for_best_model", ta, restricted, "no best-model selection (see training.early_stopping_metric)", "null"},
  {"push_to_hub", ta, restricted, "nothing is uploaded", "false"},
  {"hub_model_id", ta, ignored, "nothing is uploaded"},
  {"hub_strategy", ta, ignored, "nothing is uploaded"},
  {"hub_private_repo", ta, ignored, "nothing is uploaded"},
  {"remove_unused_columns", ta, ignored, "columns are read by name"},
  {"dataloader_num_workers", ta, ignored, "batches are built in this process"},
  {"dataloader_pin_memory", ta, ignored, "CPU memory"},
  {"dataloader_drop_last", ta, restricted, "a final smaller batch is trained", "false"},
  {"torch_compile", ta, ignored, "no PyTorch"},
  {"ddp_find_unused_parameters", ta, ignored, "data parallel runs under mpirun"},
  {"ddp_timeout", ta, ignored, "data parallel runs under mpirun"},
  {"local_rank", ta, ignored, "ranks come from mpirun"},
  {"deepspeed", ta, restricted, "ZeRO-1 is training.zero under mpirun", "null"},
  {"use_liger_kernel", ta, restricted, "no Liger kernels", "false"},
  {"torch_empty_cache_steps", ta, ignored, "memory only"},
  {"do_train", ta, ignored, "`prefopt train` trains"},
  {"do_eval", ta, ignored, "`prefopt eval` evaluates"},
};

// The entry for `name`, or nullptr.
[[nodiscard]] constexpr const field* find_field(std::string_view name) {
  for (const auto& f : fields)
    if (f.name == name) return &f;
  return nullptr;
}

[[nodiscard]] constexpr std::string_view kind_name(field_kind k) {
  switch (k) {
  case mapped: return "mapped";
  case converted: return "converted";
  case ignored: return "ignored";
  case restricted: return "restricted";
  }
  return "";
}

} // namespace prefopt::train::trl

#include "prefopt/train/trl_config_read.hpp"
