// prefopt/io/detail/convert.hpp — little-endian tensor bytes of F32/F16/BF16/F64 to float.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "prefopt/core/error.hpp"
#include "prefopt/io/float16.hpp"
#include "prefopt/io/safetensors_dtype.hpp"

namespace prefopt::io::detail {

template <class U>
inline U load_le(const std::byte* p) noexcept {
  U v;
  std::memcpy(&v, p, sizeof(U)); // the buffer need not be aligned
  if constexpr (std::endian::native == std::endian::big) {
    U r = 0;
    for (std::size_t i = 0; i < sizeof(U); ++i) r = static_cast<U>((r << 8) | ((v >> (8 * i)) & 0xff));
    v = r;
  }
  return v;
}

template <class U>
inline void store_le(std::byte* p, U v) noexcept {
  for (std::size_t i = 0; i < sizeof(U); ++i) p[i] = static_cast<std::byte>((v >> (8 * i)) & 0xff);
}

// format_error (at `where`) unless `type` is one that convert_to_f32 reads.
inline void require_float(dtype type, const std::string& where) {
  if (!converts_to_f32(type))
    throw format_error(where, "dtype " + std::string(dtype_name(type)) +
                                  " cannot be read as float (F32, F16, BF16 and F64 can)");
}

// Converts `in` (elements of `type`, little-endian) into `out` (out.size() elements).
// `where` names the tensor in the error for a dtype that is not a float type.
inline void convert_to_f32(dtype type, std::span<const std::byte> in, std::span<float> out, const std::string& where) {
  const std::size_t n = out.size();
  switch (type) {
  case dtype::f32:
    if constexpr (std::endian::native == std::endian::little) {
      if (n != 0) std::memcpy(out.data(), in.data(), n * sizeof(float));
    } else {
      for (std::size_t i = 0; i < n; ++i) out[i] = std::bit_cast<float>(load_le<std::uint32_t>(in.data() + 4 * i));
    }
    return;
  case dtype::f16:
    for (std::size_t i = 0; i < n; ++i) out[i] = f16_to_f32(load_le<std::uint16_t>(in.data() + 2 * i));
    return;
  case dtype::bf16:
    for (std::size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(load_le<std::uint16_t>(in.data() + 2 * i));
    return;
  case dtype::f64:
    for (std::size_t i = 0; i < n; ++i)
      out[i] = static_cast<float>(std::bit_cast<double>(load_le<std::uint64_t>(in.data() + 8 * i)));
    return;
  default: require_float(type, where); // throws
  }
}

} // namespace prefopt::io::detail
