// prefopt/io/float16.hpp — IEEE half (F16) and bfloat16 (BF16) bit patterns to and from float.
//
// F16:  1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits; subnormals are m·2^-24.
// BF16: the upper 16 bits of an IEEE float32 (1 sign, 8 exponent, 7 mantissa bits).
//
// Widening (F16→F32, BF16→F32) is exact for every bit pattern: subnormals, ±0, ±inf, and NaN with
// its sign and payload kept. Narrowing (F32→F16, F32→BF16) rounds to nearest, ties to even, in pure
// integer arithmetic (independent of the FPU rounding mode and of flush-to-zero), overflows to ±inf
// exactly where IEEE says (|x| ≥ 65520 for F16; above the largest BF16 plus half an ulp for BF16),
// and maps NaN to a quiet NaN with the same sign and the top payload bits. (PyTorch returns a
// canonical NaN instead, so NaN bit patterns may differ from torch's; NaN-ness and sign never do.)
#pragma once

#include <bit>
#include <cstdint>

namespace prefopt::io {

// F16 bits → float, exact.
[[nodiscard]] inline float f16_to_f32(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  const std::uint32_t mantissa = h & 0x3ffu;
  std::uint32_t bits = 0;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13); // ±inf, NaN with its payload
  } else if (exponent != 0) {
    bits = sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign; // ±0
  } else {
    // Subnormal m·2^-24 with the leading one at bit p: the float is 1.f·2^(p-24).
    const int p = 31 - std::countl_zero(mantissa);
    const std::uint32_t fraction = (mantissa << (10 - p)) & 0x3ffu;
    bits = sign | (static_cast<std::uint32_t>(p + 127 - 24) << 23) | (fraction << 13);
  }
  return std::bit_cast<float>(bits);
}

// BF16 bits → float, exact.
[[nodiscard]] inline float bf16_to_f32(std::uint16_t b) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

// float → F16 bits, round to nearest even.
[[nodiscard]] inline std::uint16_t f32_to_f16(float f) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) // NaN: quiet bit set, top 9 payload bits kept
    return static_cast<std::uint16_t>(sign | 0x7e00u | ((ax >> 13) & 0x1ffu));
  if (ax >= 0x477ff000u) // ≥ 65520 = 65504 + half an ulp (a tie that rounds to the even inf), or inf
    return static_cast<std::uint16_t>(sign | 0x7c00u);
  if (ax >= 0x38800000u) { // normal F16: |x| ≥ 2^-14. Rebias the exponent, round at bit 13.
    const std::uint32_t rebiased = ax - (static_cast<std::uint32_t>(127 - 15) << 23);
    const std::uint32_t rounded = rebiased + 0xfffu + ((rebiased >> 13) & 1u);
    return static_cast<std::uint16_t>(sign | (rounded >> 13));
  }
  // Subnormal F16 (or zero): the result is q·2^-24 with q = round(|x|·2^24).
  const std::uint32_t exponent = ax >> 23;
  if (exponent < 102) return sign; // |x| < 2^-25: rounds to zero
  const std::uint32_t significand = (ax & 0x7fffffu) | 0x800000u; // |x| = s·2^(e-150)
  const std::uint32_t shift = 126 - exponent;                      // in [14, 24]
  std::uint32_t q = significand >> shift;
  const std::uint32_t rest = significand & ((1u << shift) - 1u);
  const std::uint32_t half = 1u << (shift - 1);
  if (rest > half || (rest == half && (q & 1u) != 0)) ++q; // q = 0x400 is the smallest normal: still right
  return static_cast<std::uint16_t>(sign | q);
}

// float → BF16 bits, round to nearest even.
[[nodiscard]] inline std::uint16_t f32_to_bf16(float f) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) // NaN: quiet bit set, sign and top payload bits kept
    return static_cast<std::uint16_t>((x >> 16) | 0x0040u);
  // Carries run into the exponent, so the largest values round to ±inf as they should.
  return static_cast<std::uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

} // namespace prefopt::io
