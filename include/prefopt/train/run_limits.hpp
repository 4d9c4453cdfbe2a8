// prefopt/train/run_limits.hpp — upper bounds on the sizes a run configuration may ask for.
//
// Every integer of run.json / --set is first read through prefopt::json_integer (reflect.hpp): a
// whole number within the range of its member's type, so 2^32 + 1 or 1e30 never wraps into an int.
// The sizes below are further bounded: each lies far above any sensible run, and exists so that a
// typing slip (pad_to_multiple_of 2^30, lora.r 10^6) is an error naming its field rather than an
// allocation of gigabytes. What a run of legal sizes needs in memory is checked against the machine
// separately (models/memory_estimate.hpp, training.memory_limit_gib). To go past a bound, change it
// here and rebuild. Documented in docs/training.md, "Limits".
#pragma once

#include <string>
#include <thread>

#include "prefopt/core/error.hpp"

namespace prefopt::train {

struct run_limits {
  static constexpr int max_length = 1 << 24;                   // data.max_length, data.max_prompt_length
  static constexpr int pad_to_multiple_of = 1 << 16;           // data.pad_to_multiple_of
  static constexpr int batch_size = 1 << 20;                   // training.batch_size
  static constexpr int gradient_accumulation_steps = 1 << 20;  // training.gradient_accumulation_steps
  static constexpr int lora_rank = 1 << 16;                    // lora.r
};

// config_error "config: field 'data.pad_to_multiple_of'" for the first size above its bound.
template <class RunConfig> void check_run_limits(const RunConfig& c) {
  auto check = [](const char* field, long long value, int limit) {
    if (value > limit)
      throw config_error(std::string("config: field '") + field + "'",
                         "is " + std::to_string(value) + ", above the limit of " + std::to_string(limit) +
                             " (prefopt::train::run_limits; see docs/training.md, Limits)");
  };
  if (c.data.max_length) check("data.max_length", *c.data.max_length, run_limits::max_length);
  if (c.data.max_prompt_length) check("data.max_prompt_length", *c.data.max_prompt_length, run_limits::max_length);
  check("data.pad_to_multiple_of", c.data.pad_to_multiple_of, run_limits::pad_to_multiple_of);
  check("training.batch_size", c.training.batch_size, run_limits::batch_size);
  check("training.gradient_accumulation_steps", c.training.gradient_accumulation_steps, run_limits::gradient_accumulation_steps);
  if (c.training.threads < 0) throw config_error("config: field 'training.threads'", "must be >= 0 (0: all cores)");
  if (c.lora) check("lora.r", c.lora->r, run_limits::lora_rank);
}

// training.threads as it will be used: 0 stays 0 (OpenMP's default, all cores); a count above
// `cores` (default: this machine's) becomes `cores`, and *warning says so. libgomp fails on a
// count like 100000, so a thread count is never passed on unclamped.
inline int clamp_threads(int requested, std::string* warning = nullptr, unsigned cores = std::thread::hardware_concurrency()) {
  if (requested <= 0) return 0;
  cores = cores == 0 ? 1 : cores;
  if (unsigned(requested) <= cores) return requested;
  if (warning)
    *warning = "training.threads " + std::to_string(requested) + " is more than the " + std::to_string(cores) +
               " cores of this machine; using " + std::to_string(cores);
  return int(cores);
}

} // namespace prefopt::train
