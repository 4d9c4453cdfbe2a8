// prefopt/io/safetensors_dtype.hpp — the element types of the safetensors format and tensor_info.
//
// The names are the strings of the "dtype" field. The enumerators follow the declaration order of
// upstream's Rust `Dtype` enum (safetensors 0.8: the order its "unknown variant" error lists them),
// which is increasing alignment; the writer sorts tensors by that order, descending, then by name,
// as upstream does. Sizes are in bits because F4 and F6_* pack several elements into a byte.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prefopt::io {

enum class dtype : std::uint8_t {
  boolean, f4, f6_e2m3, f6_e3m2, u8, i8, f8_e5m2, f8_e4m3, f8_e8m0, f8_e4m3fnuz, f8_e5m2fnuz,
  i16, u16, f16, bf16, i32, u32, f32, c64, f64, i64, u64,
};

namespace detail {
struct dtype_row {
  dtype type;
  std::string_view name;
  std::size_t bits;
};
inline constexpr std::array<dtype_row, 22> dtype_table{{
    {dtype::boolean, "BOOL", 8},       {dtype::f4, "F4", 4},
    {dtype::f6_e2m3, "F6_E2M3", 6},    {dtype::f6_e3m2, "F6_E3M2", 6},
    {dtype::u8, "U8", 8},              {dtype::i8, "I8", 8},
    {dtype::f8_e5m2, "F8_E5M2", 8},    {dtype::f8_e4m3, "F8_E4M3", 8},
    {dtype::f8_e8m0, "F8_E8M0", 8},    {dtype::f8_e4m3fnuz, "F8_E4M3FNUZ", 8},
    {dtype::f8_e5m2fnuz, "F8_E5M2FNUZ", 8},
    {dtype::i16, "I16", 16},           {dtype::u16, "U16", 16},
    {dtype::f16, "F16", 16},           {dtype::bf16, "BF16", 16},
    {dtype::i32, "I32", 32},           {dtype::u32, "U32", 32},
    {dtype::f32, "F32", 32},           {dtype::c64, "C64", 64},
    {dtype::f64, "F64", 64},           {dtype::i64, "I64", 64},
    {dtype::u64, "U64", 64},
}};
} // namespace detail

// "F32", "BF16", ... as written in the header.
[[nodiscard]] constexpr std::string_view dtype_name(dtype t) noexcept {
  return detail::dtype_table[static_cast<std::size_t>(t)].name;
}

// Bits per element (4 for F4, 6 for F6_*, 8·bytes otherwise).
[[nodiscard]] constexpr std::size_t dtype_bits(dtype t) noexcept {
  return detail::dtype_table[static_cast<std::size_t>(t)].bits;
}

// The dtype spelled `name` (case-sensitive, as upstream), or nothing.
[[nodiscard]] constexpr std::optional<dtype> parse_dtype(std::string_view name) noexcept {
  for (const auto& row : detail::dtype_table)
    if (row.name == name) return row.type;
  return std::nullopt;
}

// F32, F16, BF16, F64: the dtypes read_f32 converts.
[[nodiscard]] constexpr bool converts_to_f32(dtype t) noexcept {
  return t == dtype::f32 || t == dtype::f16 || t == dtype::bf16 || t == dtype::f64;
}

// One tensor of a safetensors file: its entry in the header.
struct tensor_info {
  std::string name;
  dtype type = dtype::f32;
  std::vector<std::size_t> shape; // empty for a scalar
  std::size_t begin = 0;          // data_offsets, relative to the start of the data buffer
  std::size_t end = 0;

  // Number of elements: the product of the shape (1 for a scalar, 0 if a dimension is 0).
  [[nodiscard]] std::size_t numel() const noexcept {
    std::size_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  [[nodiscard]] std::size_t byte_size() const noexcept { return end - begin; }
};

// "[2, 3]" — shapes in messages.
[[nodiscard]] inline std::string shape_string(const std::vector<std::size_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  s += ']';
  return s;
}

} // namespace prefopt::io
