// tests/losses/autodiff.hpp — Eigen's forward-mode AutoDiff scalar, completed for prefopt's numerics.
//
// prefopt's scalar code calls exp, log, log1p, expm1 on its scalar type; for a type that is not
// float or double, they are found by argument-dependent lookup (core/numerics.hpp). Eigen's
// AutoDiffScalar provides exp and log but not log1p and expm1, so they are defined here, in
// namespace Eigen, with their exact derivatives. With these, any loss evaluates on
// pair_batch<ad> and the derivative vector of the batch loss is its exact gradient.
#pragma once

#include <stdexcept>

// Eigen's own checks stay on in optimized builds, and fail the test instead of aborting: a
// derivative-size mismatch inside an expression must never pass silently.
#ifndef eigen_assert
#define eigen_assert(x) \
  if (!(x)) throw std::logic_error("Eigen assertion failed: " #x)
#endif

#include <Eigen/Core>
#include <unsupported/Eigen/AutoDiff>

#include <cmath>

namespace Eigen {
template <class D>
AutoDiffScalar<typename internal::remove_all<D>::type::PlainObject> log1p(const AutoDiffScalar<D>& x) {
  using P = typename internal::remove_all<D>::type::PlainObject;
  return AutoDiffScalar<P>(std::log1p(x.value()), P(x.derivatives() / (1.0 + x.value())));
}
template <class D>
AutoDiffScalar<typename internal::remove_all<D>::type::PlainObject> expm1(const AutoDiffScalar<D>& x) {
  using P = typename internal::remove_all<D>::type::PlainObject;
  return AutoDiffScalar<P>(std::expm1(x.value()), P(x.derivatives() * std::exp(x.value())));
}
} // namespace Eigen

namespace prefopt::test {
using ad = Eigen::AutoDiffScalar<Eigen::VectorXd>;

// A constant: its derivative vector has the full size (zeros), so Eigen never has to reconcile
// sizes inside an expression.
inline ad ad_constant(double v, Eigen::Index n) { return ad(v, Eigen::VectorXd::Zero(n)); }
// The k-th of n independent variables.
inline ad ad_variable(double v, Eigen::Index n, Eigen::Index k) { return ad(v, n, k); }
} // namespace prefopt::test
