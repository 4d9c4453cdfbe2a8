// prefopt/optim/schedule.hpp — learning-rate schedules with warmup, as Hugging Face's.
//
// factor(t) multiplies the base learning rate for the update that follows t completed steps
// (transformers.get_linear_schedule_with_warmup / get_cosine_schedule_with_warmup):
//   warmup (t < w):  t / max(1, w)          — the first update of a warmed-up run has lr 0
//   linear:          max(0, (T − t) / max(1, T − w))
//   cosine:          max(0, ½·(1 + cos(π·2c·p))),  p = (t − w)/max(1, T − w), c = num_cycles (½)
// Warmup may be given as steps or as a ratio of the total (Hugging Face's warmup_ratio: ceil).
#pragma once

#include <cmath>
#include <string>

#include "prefopt/core/error.hpp"

namespace prefopt::optim {

enum class schedule_kind { constant, constant_with_warmup, linear, cosine };

struct schedule {
  schedule_kind kind = schedule_kind::linear;  // Hugging Face's default lr_scheduler_type
  long total_steps = 0;
  long warmup_steps = 0;
  double warmup_ratio = 0.0;                   // used when warmup_steps == 0
  double num_cycles = 0.5;                     // cosine

  long warmup() const {
    if (warmup_steps > 0) return warmup_steps;
    return long(std::ceil(warmup_ratio * double(total_steps)));
  }

  void validate() const {
    if (warmup_steps < 0) throw config_error("schedule: field 'warmup_steps'", "must be >= 0");
    if (!(warmup_ratio >= 0.0 && warmup_ratio <= 1.0)) throw config_error("schedule: field 'warmup_ratio'", "must lie in [0, 1]");
    if ((kind == schedule_kind::linear || kind == schedule_kind::cosine) && total_steps <= 0)
      throw config_error("schedule: field 'total_steps'", "a linear or cosine schedule needs total_steps > 0");
  }

  double factor(long t) const {
    const long w = warmup();
    if (kind == schedule_kind::constant) return 1.0;
    if (t < w) return double(t) / double(std::max(1L, w));
    switch (kind) {
    case schedule_kind::linear:
      return std::max(0.0, double(total_steps - t) / double(std::max(1L, total_steps - w)));
    case schedule_kind::cosine: {
      const double p = double(t - w) / double(std::max(1L, total_steps - w));
      return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * 2.0 * num_cycles * p)));
    }
    default: return 1.0;
    }
  }
};

} // namespace prefopt::optim
