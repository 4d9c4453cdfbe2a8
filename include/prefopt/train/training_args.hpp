// prefopt/train/training_args.hpp — what every trainer's step takes besides its model, loss and
// optimizer (training_args: clipping, schedule, dropout seeds, data parallel settings, the fused
// head) and what it returns (step_result: metrics, skipped or not). trainer.hpp has the trainers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "prefopt/core/error.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/optim/schedule.hpp"

namespace prefopt::train {

struct training_args {
  double max_grad_norm = 1.0;         // Hugging Face's default; ≤ 0 disables clipping
  optim::schedule schedule{.kind = optim::schedule_kind::constant};
  std::optional<double> ld_alpha{};   // LD-DPO; applied to policy and reference log-probs as TRL does
  // TRL's DPOConfig.disable_dropout (default true) sets every dropout of the policy to 0, PEFT's
  // lora_dropout included; false trains with the model's dropout (models::lora_config::dropout).
  bool disable_dropout = true;
  // Dropout masks of training forwards come from (seed, step, micro-batch): both passes of a
  // two-pass step see the same masks, and a resumed run the masks of an uninterrupted one.
  // Evaluation and reference forwards never drop.
  std::uint64_t seed = 42;            // TrainingArguments' default
  // More than one process: every that many optimizer steps the ranks compare a hash of their
  // weights and stop with an error naming the step when they differ; 0: never.
  int weight_check_steps = 50;
  // 1: ZeRO-1 with more than one process (train/zero.hpp): the optimizer state is split across the
  // ranks; 0: every rank holds all of it.
  int zero = 0;
  // More than one process, without ZeRO-1: start each gradient bucket's all-reduce as soon as the
  // model's backward has finished it (models that announce it: the transformers), instead of after
  // backward. The sums are bit-equal either way (same buckets, same collective).
  bool overlap_reduce = true;
  std::size_t reduce_bucket = std::size_t(1) << 22;  // values per gradient all-reduce (16 MiB of float)
  // TRL's token metrics (entropy, logits/chosen, logits/rejected, mean_token_accuracy) on every
  // step and evaluation batch: the LM head reads each chunk's logits once more while they are in
  // cache (no extra gemm). num_tokens is counted either way.
  bool token_metrics = true;
  // Element-wise (pair-separable) losses on a model with a fused head (models::transformer's
  // forward_fused): the LM head's backward runs inside its forward, chunk by chunk, with the loss's
  // gradient of each chunk's pairs (no logits recomputed). false: the forward, then the backward
  // from d loss / d log-prob. Loss, metrics and gradient agree to float rounding.
  bool fused_head = true;
  std::uint64_t dropout_seed(long step, std::size_t micro) const {
    return mix_seed(mix_seed(seed, std::uint64_t(step)), std::uint64_t(micro));
  }
  void validate() const {
    schedule.validate();
    if (ld_alpha && !(*ld_alpha >= 0.0 && *ld_alpha <= 1.0))
      throw config_error("training_args: field 'ld_alpha'", "must lie in [0, 1]");
    if (weight_check_steps < 0) throw config_error("training_args: field 'weight_check_steps'", "must be ≥ 0");
    if (zero != 0 && zero != 1) throw config_error("training_args: field 'zero'", "must be 0 or 1 (ZeRO stage)");
    if (reduce_bucket == 0) throw config_error("training_args: field 'reduce_bucket'", "must be ≥ 1");
  }
};

struct step_result {
  std::map<std::string, double> metrics{};
  // For a metric that is a mean over the step's forwards (TRL appends one value per micro-batch
  // and logs the mean of the list): how many values it stands for; absent: 1. The runner weights
  // a logging window's steps by it, so a row is the mean over the window's forwards, as TRL's.
  std::map<std::string, double> counts{};
  bool skipped = false;               // true: non-finite loss or gradient, weights untouched
  std::string skip_reason{};
};

} // namespace prefopt::train
