// prefopt/backends/xtensor/common.hpp — xtensor backend internals: views over flat buffers, size checks.
//
// Shape rules of the transformer ops (core/transformer_ops.hpp): sizes an op is not given come
// from its first input (T = x.size() / C, which must divide); every other buffer must hold at
// least what the op reads or writes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <xtensor/xadapt.hpp>
#include <xtensor/xview.hpp>

#include "prefopt/core/error.hpp"
#include "prefopt/core/host_backend.hpp"

namespace prefopt::backends::xdetail {

using op_checks::positive;
using op_checks::require_optional;
using op_checks::require_size;
using op_checks::rows_of;

// Every id in [0, n) (negative ids allowed where `allow_negative`: "no target").
inline void check_ids(std::span<const std::int32_t> ids, std::size_t count, std::size_t n, bool allow_negative,
                      const char* op, const char* arg) {
  require_size(ids.size(), count, op, arg);
  for (std::size_t i = 0; i < count; ++i)
    if ((ids[i] < 0 && !allow_negative) || (ids[i] >= 0 && std::size_t(ids[i]) >= n))
      throw shape_error(std::string("backend op '") + op + "': argument '" + arg + "'",
                        "element " + std::to_string(i) + " is " + std::to_string(ids[i]) + ", outside [0, " +
                            std::to_string(n) + ")");
}

// A rows×cols row-major matrix stored with row stride ld, as an xtensor view (no copy).
template <class T> auto matrix(T* p, std::size_t rows, std::size_t cols, std::size_t ld) {
  using V = std::remove_const_t<T>;
  auto whole = xt::adapt(const_cast<V*>(p), rows * ld, xt::no_ownership(), std::array<std::size_t, 2>{rows, ld});
  return xt::view(std::move(whole), xt::all(), xt::range(std::size_t(0), cols));
}
template <class T> auto vector(T* p, std::size_t n) {
  using V = std::remove_const_t<T>;
  return xt::adapt(const_cast<V*>(p), n, xt::no_ownership(), std::array<std::size_t, 1>{n});
}
// A contiguous [d0 × d1 × d2] tensor (no copy).
template <class T> auto tensor3(T* p, std::size_t d0, std::size_t d1, std::size_t d2) {
  using V = std::remove_const_t<T>;
  return xt::adapt(const_cast<V*>(p), d0 * d1 * d2, xt::no_ownership(), std::array<std::size_t, 3>{d0, d1, d2});
}
// A [T] vector as a [T × 1] column, for broadcasting against rows.
template <class E> auto column(E&& e) { return xt::view(std::forward<E>(e), xt::all(), xt::newaxis()); }

} // namespace prefopt::backends::xdetail
