// prefopt/optim/update_rules.hpp — per-element optimizer updates shared by every backend.
//
// PREFOPT_HD scalar code: the CPU backends loop over it, the CUDA backend runs it in a kernel, so
// one definition is tested on the CPU. Formulas follow torch.optim (see core/backend.hpp).
#pragma once

#include "prefopt/core/backend.hpp"
#include "prefopt/core/numerics.hpp"

namespace prefopt::optim::rules {

PREFOPT_HD inline void adamw(float& p, float g, float& m, float& v, const adamw_args& a) {
  p -= a.lr * a.weight_decay * p;
  m = a.beta1 * m + (1.0f - a.beta1) * g;
  v = a.beta2 * v + (1.0f - a.beta2) * g * g;
  const float denom = num::sqrt(v / a.bias_correction2) + a.eps;
  p -= a.lr * (m / a.bias_correction1) / denom;
}

PREFOPT_HD inline void sgd(float& p, float g, float& buf, const sgd_args& a) {
  if (a.weight_decay != 0.0f) g += a.weight_decay * p;
  if (a.momentum != 0.0f) {
    buf = a.first_step ? g : a.momentum * buf + (1.0f - a.dampening) * g;
    g = a.nesterov ? g + a.momentum * buf : buf;
  }
  p -= a.lr * g;
}

} // namespace prefopt::optim::rules
