// prefopt/core/numerics.hpp — numerically stable scalar functions shared by every backend.
//
// All functions are templates over the scalar type: float and double take the C library's
// functions (which exist on the host and, through nvcc, on the device); any other type — Eigen's
// AutoDiffScalar in the gradient tests, for instance — is found by argument-dependent lookup.
// Nested calls pass a T, never an unevaluated expression (`exp(T(-x))`, not `exp(-x)`), and
// callers with expression-template scalars name the type (`num::sigmoid<T>(-z)`), so T is never
// deduced as an expression type.
#pragma once

#include <cmath>
#include <type_traits>

#include "prefopt/core/config.hpp"

namespace prefopt::num {

namespace detail {
template <class T> inline constexpr bool is_float = std::is_same_v<T, float>;
template <class T> inline constexpr bool is_double = std::is_same_v<T, double>;
} // namespace detail

#define PREFOPT_UNARY(name, fname)                                                                  \
  template <class T> PREFOPT_HD inline T name(const T& x) {                                         \
    if constexpr (detail::is_float<T>) return ::fname##f(x);                                        \
    else if constexpr (detail::is_double<T>) return ::fname(x);                                     \
    else { using std::fname; return fname(x); }                                                     \
  }
PREFOPT_UNARY(exp, exp)
PREFOPT_UNARY(log, log)
PREFOPT_UNARY(log1p, log1p)
PREFOPT_UNARY(expm1, expm1)
PREFOPT_UNARY(sqrt, sqrt)
PREFOPT_UNARY(tanh, tanh)
PREFOPT_UNARY(abs, fabs)
#undef PREFOPT_UNARY

template <class T> PREFOPT_HD inline T pow(const T& x, const T& y) {
  if constexpr (detail::is_float<T>) return ::powf(x, y);
  else if constexpr (detail::is_double<T>) return ::pow(x, y);
  else { using std::pow; return pow(x, y); }
}

template <class T> PREFOPT_HD inline T max(const T& a, const T& b) { return a < b ? b : a; }
template <class T> PREFOPT_HD inline T min(const T& a, const T& b) { return b < a ? b : a; }

// σ(x) = 1 / (1 + e^{-x}), without overflow for either sign.
template <class T> PREFOPT_HD inline T sigmoid(const T& x) {
  if (x >= T(0)) return T(1) / (T(1) + num::exp(T(-x)));
  const T e = num::exp(x);
  return e / (T(1) + e);
}

// log σ(x) = -log(1 + e^{-x}); exact to rounding for |x| up to the type's range.
template <class T> PREFOPT_HD inline T log_sigmoid(const T& x) {
  if (x >= T(0)) return -num::log1p(num::exp(T(-x)));
  return x - num::log1p(num::exp(x));
}

// softplus(x) = log(1 + e^x) = -log σ(-x).
template <class T> PREFOPT_HD inline T softplus(const T& x) { return -log_sigmoid(T(-x)); }

// log(1 - e^{x}) for x < 0 (Mächler's log1mexp): -inf at x = 0, NaN for x > 0.
template <class T> PREFOPT_HD inline T log1mexp(const T& x) {
  const T ln2 = T(0.693147180559945309417232121458176568);
  if (x > -ln2) return num::log(T(-num::expm1(x)));
  return num::log1p(T(-num::exp(x)));
}

// e^x with x capped so that the result stays finite in T (TRL's cap_exp does the same).
template <class T, class Cap> PREFOPT_HD inline T capped_exp(const T& x, const Cap& cap) {
  return num::exp(x < T(cap) ? x : T(cap));
}

// Largest argument of exp whose result is finite.
template <class T> PREFOPT_HD constexpr double max_exp_arg() {
  if constexpr (detail::is_float<T>) return 88.72283172607421875;  // log(FLT_MAX)
  else return 709.782712893383973096;                                // log(DBL_MAX)
}

} // namespace prefopt::num

namespace prefopt::num {
// The plain double behind a scalar: itself for arithmetic types, .value() for AutoDiff-like types.
template <class T> double to_double(const T& x) {
  if constexpr (std::is_arithmetic_v<T>) return static_cast<double>(x);
  else return to_double(x.value());
}
} // namespace prefopt::num
