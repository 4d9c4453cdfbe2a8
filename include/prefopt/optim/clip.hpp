// prefopt/optim/clip.hpp — global-norm gradient clipping, as torch.nn.utils.clip_grad_norm_.
//
//   n = ‖g‖₂ over all gradients;  g ← g·min(1, max_norm/(n + 1e-6))
// Returns n (before clipping): Hugging Face logs it as grad_norm. A non-finite n leaves the
// gradients untouched and is returned as is, so the trainer can skip the step.
#pragma once

#include <cmath>
#include <span>

#include "prefopt/core/backend.hpp"

namespace prefopt::optim {

template <Backend B> double clip_grad_norm(B& be, std::span<float> grads, double max_norm) {
  const double n = std::sqrt(be.sum_squares(grads));
  if (!std::isfinite(n)) return n;
  if (max_norm > 0.0) {
    const double coef = max_norm / (n + 1e-6);
    if (coef < 1.0) be.scale(grads, float(coef));
  }
  return n;
}

} // namespace prefopt::optim
