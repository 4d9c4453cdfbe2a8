// core/bf16.hpp: the bf16 rounding every backend shares. Golden bits derived by hand from the
// definition (round to nearest, ties to even, on the upper 16 bits of the float32 pattern; torch's
// c10::BFloat16 gives the same, NaN → 0x7FC0), then a sweep against io/float16.hpp's independent
// narrowing, which differs only in keeping the NaN payload.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "prefopt/core/bf16.hpp"
#include "prefopt/io/float16.hpp"

using namespace prefopt;

namespace {
std::uint16_t bits_to_bf16(std::uint32_t x) { return to_bf16(std::bit_cast<float>(x)); }
} // namespace

TEST_CASE("to_bf16: round to nearest, ties to even") {
  CHECK(bits_to_bf16(0x3f800000u) == 0x3f80);  // 1
  CHECK(bits_to_bf16(0x3f808000u) == 0x3f80);  // 1 + 2^-8: a tie, 0x3f80 is even
  CHECK(bits_to_bf16(0x3f818000u) == 0x3f82);  // a tie above the odd 0x3f81: up
  CHECK(bits_to_bf16(0x3f808001u) == 0x3f81);  // just above the tie: up
  CHECK(bits_to_bf16(0x3f807fffu) == 0x3f80);  // just below: down
  CHECK(bits_to_bf16(0xc0000000u) == 0xc000);  // -2
  CHECK(bits_to_bf16(0xbf818000u) == 0xbf82);  // sign-magnitude: -x rounds like x
  CHECK(bits_to_bf16(0x3f7fffffu) == 0x3f80);  // carry into the exponent: 1 - 2^-24 → 1
}

TEST_CASE("to_bf16: zeros, subnormals, overflow, infinities") {
  CHECK(bits_to_bf16(0x00000000u) == 0x0000);
  CHECK(bits_to_bf16(0x80000000u) == 0x8000);  // -0 keeps its sign
  CHECK(bits_to_bf16(0x00000001u) == 0x0000);  // the smallest float subnormal: to +0
  CHECK(bits_to_bf16(0x00008000u) == 0x0000);  // a subnormal tie at the even 0: down
  CHECK(bits_to_bf16(0x00018000u) == 0x0002);  // a subnormal tie at odd 1: up (no flush to zero)
  CHECK(bits_to_bf16(0x00010000u) == 0x0001);  // bf16's smallest subnormal, exact
  CHECK(bits_to_bf16(0x007fffffu) == 0x0080);  // the largest subnormal rounds up to the smallest normal
  CHECK(bits_to_bf16(0x7f7f0000u) == 0x7f7f);  // the largest bf16, exact
  CHECK(bits_to_bf16(0x7f7f7fffu) == 0x7f7f);  // below its half ulp: stays finite
  CHECK(bits_to_bf16(0x7f7f8000u) == 0x7f80);  // the tie above the odd largest value: +inf
  CHECK(bits_to_bf16(0x7f7fffffu) == 0x7f80);  // FLT_MAX → +inf
  CHECK(bits_to_bf16(0xff7fffffu) == 0xff80);  // -FLT_MAX → -inf
  CHECK(bits_to_bf16(0x7f800000u) == 0x7f80);
  CHECK(bits_to_bf16(0xff800000u) == 0xff80);
}

TEST_CASE("to_bf16: every NaN becomes the canonical quiet NaN 0x7FC0") {
  for (std::uint32_t x : {0x7f800001u, 0x7fc00000u, 0x7fffffffu, 0xffc00000u, 0xff800001u, 0x7f80ffffu})
    CHECK(bits_to_bf16(x) == 0x7fc0);
  CHECK(std::isnan(round_bf16(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("from_bf16 widens exactly; round_bf16 is idempotent") {
  CHECK(from_bf16(0x3f80) == 1.0f);
  CHECK(from_bf16(0x0001) == std::ldexp(1.0f, -133));  // bf16's smallest subnormal
  CHECK(from_bf16(0x7f7f) == std::ldexp(255.0f / 128.0f, 127));
  CHECK(from_bf16(0xff80) == -std::numeric_limits<float>::infinity());
  CHECK(std::signbit(from_bf16(0x8000)));
  CHECK(round_bf16(3.14159265f) == 3.140625f);
  for (float x : {3.14159265f, -1e-30f, 6.5e4f, 1e38f}) CHECK(round_bf16(round_bf16(x)) == round_bf16(x));
}

TEST_CASE("to_bf16 agrees with io::f32_to_bf16 on a sweep of float32 patterns (NaN apart)") {
  std::size_t compared = 0, mismatches = 0;
  for (std::uint64_t x = 0; x <= 0xffffffffull; x += 65521) {  // a prime stride: every low-half pattern class
    for (std::uint32_t d : {0u, 0x7fffu, 0x8000u, 0x8001u, 0x18000u}) {
      const std::uint32_t b = std::uint32_t(x) ^ d;
      if ((b & 0x7fffffffu) > 0x7f800000u) continue;
      ++compared;
      if (bits_to_bf16(b) != io::f32_to_bf16(std::bit_cast<float>(b))) ++mismatches;
    }
  }
  CHECK(compared > 300000);
  CHECK(mismatches == 0);
}

TEST_CASE("round_bf16 over a span and parse_precision") {
  const std::vector<float> src{1.0f, 1.00390625f, 1.01171875f};
  std::vector<float> dst(3);
  round_bf16(std::span<const float>(src), std::span<float>(dst));
  CHECK(dst == std::vector<float>{1.0f, 1.0f, 1.015625f});
  CHECK(parse_precision("bf16", "f") == precision::bf16);
  CHECK(parse_precision("fp32", "f") == precision::fp32);
  CHECK_THROWS_AS(parse_precision("fp16", "config: field 'training.precision'"), config_error);
  CHECK(to_string(precision::bf16) == "bf16");
}
