// What the GPU tests share: host vectors to device buffers and back, random inputs, comparisons
// with the eigen backend (the CPU side every cuda op is checked against).
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <tuple>
#include <vector>

#include "prefopt/backends/cuda.hpp"
#include "prefopt/backends/eigen.hpp"

namespace prefopt::test::gpu {

using fvec = std::vector<float>;
using ivec = std::vector<std::int32_t>;

inline fvec randn(std::size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  fvec v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// A device copy of a host vector.
template <class T> backends::cuda::buffer<T> up(const backends::cuda& be, const std::vector<T>& v) {
  auto b = be.allocate<T>(v.size());
  be.upload(std::span<const T>(v), b.span());
  return b;
}
template <class T> std::vector<T> down(const backends::cuda& be, const backends::cuda::buffer<T>& b) {
  std::vector<T> v(b.size());
  be.download(b.span(), std::span<T>(v));
  return v;
}

// max |a − b| / (1 + |b|); equal values (the same infinity included) differ by 0, a NaN by ∞.
inline double max_rel(const fvec& a, const fvec& b) {
  REQUIRE(a.size() == b.size());
  double m = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] == b[i]) continue;
    const double d = std::abs(double(a[i]) - double(b[i])) / (1.0 + std::abs(double(b[i])));
    if (!(d <= m)) m = std::isnan(d) ? INFINITY : d;
  }
  return m;
}

} // namespace prefopt::test::gpu
