// prefopt/backends/eigen/common.hpp — eigen backend internals: size checks, maps, parallel helpers.
//
// Shape rules shared by the transformer ops (core/transformer_ops.hpp): sizes an op is not given
// come from its first input (T = x.size() / C, which must divide); every other buffer must hold
// at least what the op reads or writes. Checks run before any OpenMP region (an exception must
// not leave one).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "prefopt/core/blas_threads.hpp"  // openblas_get_parallel (weak)
#include "prefopt/core/error.hpp"
#include "prefopt/core/host_backend.hpp"

#if defined(EIGEN_USE_BLAS) && (defined(__GNUC__) || defined(__clang__))
// OpenBLAS's thread count, bound only when OpenBLAS is the BLAS linked in (a weak symbol).
extern "C" int openblas_get_num_threads() __attribute__((weak));
#endif

namespace prefopt::backends::detail {

using op_checks::positive;
using op_checks::require_optional;
using op_checks::require_size;
using op_checks::rows_of;
using op_checks::span_of;

// Token ids must index a table of `vocab` rows.
inline void check_ids(std::span<const std::int32_t> ids, std::size_t vocab, const char* op, const char* arg) {
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || std::size_t(ids[i]) >= vocab)
      throw shape_error(std::string("backend op '") + op + "': argument '" + arg + "'",
                        "element " + std::to_string(i) + " is " + std::to_string(ids[i]) + ", outside [0, " +
                            std::to_string(vocab) + ")");
}

// Whether BLAS may be called from inside an OpenMP loop without oversubscribing the cores: yes
// for Eigen's own products, OpenBLAS's OpenMP build (single-threaded inside a parallel region)
// and any single-threaded BLAS; no for OpenBLAS's pthreads build running more than one thread,
// whose thread pool would start inside every OpenMP thread (measured: 40-100× slower).
inline bool blas_inside_openmp_ok() {
#if defined(EIGEN_USE_BLAS) && (defined(__GNUC__) || defined(__clang__))
  if (openblas_get_parallel != nullptr && openblas_get_parallel() == 1)
    return openblas_get_num_threads != nullptr && openblas_get_num_threads() <= 1;
#endif
  return true;
}

// Work (elements touched) below which an op stays on one thread.
inline constexpr std::size_t parallel_grain = std::size_t(1) << 15;

using row_matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using cmatrix_map = Eigen::Map<const row_matrix, Eigen::Unaligned, Eigen::OuterStride<>>;
using matrix_map = Eigen::Map<row_matrix, Eigen::Unaligned, Eigen::OuterStride<>>;
using carray_map = Eigen::Map<const Eigen::ArrayXf>;
using array_map = Eigen::Map<Eigen::ArrayXf>;

// f(begin, length) over [0, n) in blocks of at most `block_elements`, blocks spread over threads.
inline constexpr std::size_t block_elements = 4096;
template <class F> void for_blocks(std::size_t n, F&& f) {
  const std::ptrdiff_t blocks = std::ptrdiff_t((n + block_elements - 1) / block_elements);
#pragma omp parallel for schedule(static) if (n > parallel_grain)
  for (std::ptrdiff_t b = 0; b < blocks; ++b) {
    const std::size_t s = std::size_t(b) * block_elements;
    f(s, std::min(block_elements, n - s));
  }
}
// A stack array of at most block_elements floats (no heap inside the loops above).
using block_array = Eigen::Array<float, Eigen::Dynamic, 1, 0, int(block_elements), 1>;

// acc[c] += Σ_t term(t, c0, len)[c − c0] for every column c: sums over rows in double, one
// thread per block of 64 columns, so the result does not depend on the thread count.
template <class Term> void add_column_sums(std::size_t rows, std::size_t cols, float* acc, Term term) {
  constexpr std::size_t width = 64;
  const std::ptrdiff_t blocks = std::ptrdiff_t((cols + width - 1) / width);
#pragma omp parallel for schedule(static) if (rows * cols > parallel_grain)
  for (std::ptrdiff_t b = 0; b < blocks; ++b) {
    const std::size_t c0 = std::size_t(b) * width, len = std::min(width, cols - c0);
    Eigen::Array<double, Eigen::Dynamic, 1, 0, int(width), 1> s = Eigen::ArrayXd::Zero(Eigen::Index(len));
    for (std::size_t t = 0; t < rows; ++t) s += term(t, c0, len).template cast<double>();
    array_map(acc + c0, Eigen::Index(len)) += s.template cast<float>();
  }
}

} // namespace prefopt::backends::detail
