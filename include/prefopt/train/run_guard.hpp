// prefopt/train/run_guard.hpp — what stops a training run that must not go on (train/runner.hpp).
//
//   skipped steps: a loss or gradient norm that is never finite leaves the weights and the step
//     counter where they are; without a limit such a run loops (max_steps) or "succeeds" having
//     learned nothing (epochs). training_error says at which step, why, and what to look at.
//   the output folder: a fresh run that shared a folder with an older run's checkpoints would
//     rotate its own away and a later resume would pick up the old run's.
#pragma once

#include <filesystem>
#include <ostream>
#include <sstream>
#include <string>

#include "prefopt/core/error.hpp"
#include "prefopt/train/checkpoint.hpp"
#include "prefopt/train/trainer.hpp"

namespace prefopt::train {

// A run that cannot make progress: every step skipped (a loss or gradient that is never finite).
class training_error : public error {
  using error::error;
};

namespace detail {
// "training: step 7 (out-dir)": the step that could not be taken.
inline std::string step_where(long step, const std::filesystem::path& out) {
  return "training: step " + std::to_string(step) + " (" + out.string() + ")";
}

// "non-finite gradient norm, loss = 0.693147, grad_norm = inf. Look for ..."
inline std::string skip_cause(const step_result& r) {
  std::ostringstream o;
  o << r.skip_reason;
  for (const char* key : {"loss", "grad_norm"})
    if (r.metrics.count(key)) o << ", " << key << " = " << r.metrics.at(key);
  o << ". Look for NaN or Inf in the model's weights and for values that overflow (loss.beta, "
       "optimizer.learning_rate, the model's rope_theta); training.max_consecutive_skipped_steps sets how many "
       "skipped steps in a row end the run (0: never)";
  return o.str();
}

// A fresh run in `out`: refuses a folder holding any checkpoint directory (config_error naming the
// folder and the options), or with `overwrite` removes them first.
inline void prepare_fresh_output(const std::filesystem::path& out, bool overwrite, std::ostream& log) {
  const auto found = checkpoint_entries(out);
  if (found.empty()) return;
  if (!overwrite)
    throw config_error(out.string(), "holds checkpoints of an earlier run (" + found.back().filename().string() +
                                         "); set training.resume=true to continue it, output.overwrite=true to remove "
                                         "them and start afresh, or choose another output.dir");
  for (const auto& p : found) std::filesystem::remove_all(p);
  log << "prefopt: output.overwrite: removed " << found.size() << " checkpoint(s) of an earlier run from " << out.string()
      << "\n";
}
} // namespace detail

} // namespace prefopt::train
