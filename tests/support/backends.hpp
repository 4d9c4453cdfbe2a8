// The CPU backends every typed test runs over (TEST_CASE_TEMPLATE(..., B, PREFOPT_CPU_BACKENDS)).
#pragma once
#include "prefopt/backends/eigen.hpp"
#include "prefopt/backends/xtensor.hpp"

#define PREFOPT_CPU_BACKENDS prefopt::backends::eigen, prefopt::backends::xtensor

namespace prefopt::test {
template <class T> std::span<const T> cspan(const std::vector<T>& v) { return {v.data(), v.size()}; }
template <class T> std::span<T> mspan(std::vector<T>& v) { return {v.data(), v.size()}; }
} // namespace prefopt::test
