// prefopt/train/runner_options.hpp — what a training run (train/runner.hpp) is told and what it
// reports: runner_options, run_summary, and the optimizer steps an epoch takes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <string>

#include "prefopt/io/safetensors_dtype.hpp"

namespace prefopt::train {

struct runner_options {
  int epochs = 1;
  long max_steps = -1;                 // > 0 overrides epochs
  std::size_t batch_size = 8;          // pairs per micro-batch
  int gradient_accumulation_steps = 1;
  std::uint64_t seed = 42;
  bool prefix_sharing = true;
  int pad_to_multiple_of = 0;
  bool length_bucketing = true;
  int logging_steps = 10;
  int eval_steps = 0;                  // 0: at the end of each epoch
  int save_steps = 0;                  // 0: at the end only
  int save_total_limit = 3;
  std::optional<std::string> early_stopping_metric{};
  int early_stopping_patience = 3;
  bool greater_is_better = false;
  std::filesystem::path output_dir = "prefopt-out";
  bool tensorboard = true;
  bool resume = false;
  bool overwrite = false;              // a fresh run removes an earlier run's checkpoints instead of refusing
  int max_consecutive_skipped_steps = 5;  // that many non-finite steps in a row end the run; 0: never
  io::dtype saved_dtype = io::dtype::f32;
  std::ostream* log = &std::cerr;
};

struct run_summary {
  long steps = 0;
  long skipped_steps = 0;
  bool stopped_early = false;
  bool resumed = false;
  bool already_finished = false;       // resumed from the checkpoint a finished run left: nothing trained
  std::map<std::string, double> last_train{}, last_eval{};
  double seconds = 0.0;
};

// Optimizer steps in one epoch of n pairs.
inline long steps_per_epoch(std::size_t n, std::size_t batch_size, int accumulation) {
  const std::size_t batches = (n + batch_size - 1) / batch_size;
  return long((batches + std::size_t(accumulation) - 1) / std::size_t(accumulation));
}

} // namespace prefopt::train
