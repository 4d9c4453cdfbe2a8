// prefopt/losses/common.hpp — what every loss header includes: the batch types, the concepts,
// stable scalar functions and the hyperparameter checks that raise config_error.
#pragma once

#include <string>
#include <string_view>

#include "prefopt/core/error.hpp"
#include "prefopt/core/numerics.hpp"
#include "prefopt/losses/batch.hpp"
#include "prefopt/losses/concepts.hpp"

namespace prefopt::losses::detail {

[[noreturn]] inline void bad_hyperparameter(std::string_view loss, std::string_view field, double value,
                                            std::string_view rule) {
  throw config_error("loss '" + std::string(loss) + "': field '" + std::string(field) + "'",
                     "value " + std::to_string(value) + " " + std::string(rule));
}

inline void require_positive(std::string_view loss, std::string_view field, double v) {
  if (!(v > 0.0)) bad_hyperparameter(loss, field, v, "must be > 0");
}
inline void require_nonnegative(std::string_view loss, std::string_view field, double v) {
  if (!(v >= 0.0)) bad_hyperparameter(loss, field, v, "must be >= 0");
}
// lo <= v < hi (hi_open) or lo <= v <= hi.
inline void require_range(std::string_view loss, std::string_view field, double v, double lo, double hi,
                          bool hi_open) {
  const bool ok = v >= lo && (hi_open ? v < hi : v <= hi);
  if (!ok)
    bad_hyperparameter(loss, field, v,
                       "must lie in [" + std::to_string(lo) + ", " + std::to_string(hi) + (hi_open ? ")" : "]"));
}

// d/dz of −(1−ε)·log σ(z) − ε·log σ(−z): the label-smoothed logistic loss shared by several losses.
template <class T> PREFOPT_HD T smoothed_logistic(const T& z, const T& eps) {
  return -(T(1) - eps) * num::log_sigmoid<T>(z) - eps * num::log_sigmoid<T>(-z);
}
template <class T> PREFOPT_HD T smoothed_logistic_grad(const T& z, const T& eps) {
  return -(T(1) - eps) * num::sigmoid<T>(-z) + eps * num::sigmoid<T>(z);
}

} // namespace prefopt::losses::detail
