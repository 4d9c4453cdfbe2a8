// Tests of include/prefopt/io/float16.hpp.
// Expected values: torch's conversions (tests/data/safetensors/conversions.safetensors, written by
// tools/reference/safetensors_make_reference.py: every F16 bit pattern → float32, and 16 043 float32
// samples → F16 and BF16, torch's F16 cross-checked against numpy there), an independent rounding
// reference below (scaling by the ulp and std::nearbyint in double), and hand-derived edge cases.
#include <doctest/doctest.h>

#include <bit>
#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "io_test_support.hpp"
#include "prefopt/io/float16.hpp"
#include "prefopt/io/safetensors_file.hpp"

using namespace prefopt::io;

namespace {

std::uint32_t bits_of(float f) { return std::bit_cast<std::uint32_t>(f); }
float float_of(std::uint32_t b) { return std::bit_cast<float>(b); }

template <class U>
std::vector<U> raw_values(const safetensors_file& f, const char* name) {
  const auto b = f.bytes(name);
  std::vector<U> out(b.size() / sizeof(U));
  std::memcpy(out.data(), b.data(), b.size());
  return out;
}

// Round |x| to the grid of a binary format with `mantissa_bits` stored bits, minimum normal
// exponent `min_exp` and largest finite value `max_finite`, ties to even, in double arithmetic.
double reference_round(float x, int mantissa_bits, int min_exp, double max_finite) {
  const double a = std::fabs(static_cast<double>(x));
  if (a == 0) return std::copysign(0.0, static_cast<double>(x));
  int e = std::ilogb(a);
  if (e < min_exp) e = min_exp;
  const double ulp = std::ldexp(1.0, e - mantissa_bits);
  const double r = std::nearbyint(a / ulp) * ulp; // a / ulp is exact: a power-of-two scaling
  const double half_ulp_above_max = max_finite + std::ldexp(1.0, std::ilogb(max_finite) - mantissa_bits - 1);
  const double v = a >= half_ulp_above_max ? INFINITY : r;
  return std::copysign(v, static_cast<double>(x));
}

} // namespace

TEST_CASE("F16 → F32 is exact for all 65536 bit patterns (torch and an independent formula)") {
  const safetensors_file f(prefopt::test::data_path("safetensors/conversions.safetensors"));
  const auto halves = raw_values<std::uint16_t>(f, "f16_all");
  const auto torch_f32 = raw_values<std::uint32_t>(f, "f16_all_as_f32");
  REQUIRE(halves.size() == 65536);
  REQUIRE(torch_f32.size() == 65536);
  int nans = 0;
  for (std::uint32_t h = 0; h < 65536; ++h) {
    REQUIRE(halves[h] == h);
    const float ours = f16_to_f32(static_cast<std::uint16_t>(h));
    const std::uint32_t sign = (h & 0x8000u) << 16;
    const std::uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0x1f && m != 0) {
      ++nans;
      CHECK(std::isnan(float_of(torch_f32[h]))); // torch returns a canonical NaN
      // ours keeps sign and payload: exponent all ones, mantissa shifted up by 13
      CHECK(bits_of(ours) == (sign | 0x7f800000u | (m << 13)));
      continue;
    }
    CHECK(bits_of(ours) == torch_f32[h]);
    const double magnitude = e == 0 ? std::ldexp(static_cast<double>(m), -24)
                             : e == 0x1f ? INFINITY
                                         : std::ldexp(static_cast<double>(1024 + m), static_cast<int>(e) - 25);
    CHECK(static_cast<double>(ours) == (sign ? -magnitude : magnitude));
    CHECK(std::signbit(ours) == (sign != 0));
  }
  CHECK(nans == 2 * 1023);
}

TEST_CASE("BF16 → F32 is the upper half of the float, for all 65536 bit patterns") {
  for (std::uint32_t b = 0; b < 65536; ++b) CHECK(bits_of(bf16_to_f32(static_cast<std::uint16_t>(b))) == (b << 16));
}

TEST_CASE("narrowing round-trips every F16 and BF16 value; NaN stays NaN with its sign") {
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const auto h16 = static_cast<std::uint16_t>(h);
    const bool nan = ((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff) != 0;
    const std::uint16_t back = f32_to_f16(f16_to_f32(h16));
    if (nan) {
      CHECK((back & 0x7e00u) == 0x7e00u);        // a quiet NaN
      CHECK((back & 0x8000u) == (h & 0x8000u)); // same sign
      if ((h & 0x200u) != 0) CHECK(back == h16); // quiet NaNs keep their payload exactly
    } else {
      CHECK(back == h16);
    }
    const std::uint16_t bback = f32_to_bf16(bf16_to_f32(h16));
    const bool bnan = ((h >> 7) & 0xff) == 0xff && (h & 0x7f) != 0;
    if (bnan) {
      CHECK((bback & 0x7fc0u) == 0x7fc0u);
      CHECK((bback & 0x8000u) == (h & 0x8000u));
    } else {
      CHECK(bback == h16);
    }
  }
}

TEST_CASE("F32 → F16 / BF16 rounding matches torch on 16043 samples") {
  const safetensors_file f(prefopt::test::data_path("safetensors/conversions.safetensors"));
  const auto samples = raw_values<std::uint32_t>(f, "f32_samples");
  const auto to_f16 = raw_values<std::uint16_t>(f, "f32_samples_to_f16");
  const auto to_bf16 = raw_values<std::uint16_t>(f, "f32_samples_to_bf16");
  REQUIRE(samples.size() == to_f16.size());
  REQUIRE(samples.size() == to_bf16.size());
  CHECK(samples.size() == 16043);
  int nan_samples = 0;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const float x = float_of(samples[i]);
    const std::uint16_t h = f32_to_f16(x), b = f32_to_bf16(x);
    if (std::isnan(x)) {
      ++nan_samples;
      CHECK(std::isnan(f16_to_f32(to_f16[i])));
      CHECK(std::isnan(bf16_to_f32(to_bf16[i])));
      CHECK(std::isnan(f16_to_f32(h)));
      CHECK(std::isnan(bf16_to_f32(b)));
      CHECK(std::signbit(f16_to_f32(h)) == std::signbit(x)); // torch drops the sign of NaN; we keep it
      CHECK(std::signbit(bf16_to_f32(b)) == std::signbit(x));
      continue;
    }
    INFO("sample " << i << " bits 0x" << std::hex << samples[i]);
    CHECK(h == to_f16[i]);
    CHECK(b == to_bf16[i]);
  }
  CHECK(nan_samples > 5);
}

TEST_CASE("F32 → F16 / BF16 rounding matches an independent reference on 1M strided bit patterns") {
  REQUIRE(std::fegetround() == FE_TONEAREST);
  long checked = 0;
  for (std::uint64_t u = 0; u < (std::uint64_t{1} << 32); u += 4093) {
    const float x = float_of(static_cast<std::uint32_t>(u));
    if (std::isnan(x)) continue;
    const double want16 = reference_round(x, 10, -14, 65504.0);
    const double want_bf = reference_round(x, 7, -126, static_cast<double>(float_of(0x7f7f0000u)));
    const float got16 = f16_to_f32(f32_to_f16(x));
    const float got_bf = bf16_to_f32(f32_to_bf16(x));
    if (static_cast<double>(got16) != want16 || std::signbit(got16) != std::signbit(want16)) {
      FAIL("F16 of 0x" << std::hex << u << ": got " << got16 << " want " << want16);
    }
    if (static_cast<double>(got_bf) != want_bf || std::signbit(got_bf) != std::signbit(want_bf)) {
      FAIL("BF16 of 0x" << std::hex << u << ": got " << got_bf << " want " << want_bf);
    }
    ++checked;
  }
  CHECK(checked > 1'000'000);
}

TEST_CASE("F32 → F16 edge cases (overflow, ties, subnormals, NaN)") {
  CHECK(f32_to_f16(65504.0f) == 0x7bff);
  CHECK(f32_to_f16(65519.99f) == 0x7bff);                      // below the tie: largest finite
  CHECK(f32_to_f16(65520.0f) == 0x7c00);                       // the tie rounds to even: inf
  CHECK(f32_to_f16(-65520.0f) == 0xfc00);
  CHECK(f32_to_f16(1e10f) == 0x7c00);
  CHECK(f32_to_f16(INFINITY) == 0x7c00);
  CHECK(f32_to_f16(-INFINITY) == 0xfc00);
  CHECK(f32_to_f16(-0.0f) == 0x8000);
  CHECK(f32_to_f16(std::ldexp(1.0f, -24)) == 0x0001);          // smallest subnormal
  CHECK(f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000);          // tie between 0 and 1 ulp: even is 0
  CHECK(f32_to_f16(std::ldexp(1.5f, -25)) == 0x0001);          // above the tie
  CHECK(f32_to_f16(std::ldexp(3.0f, -25)) == 0x0002);          // 1.5 ulp: tie to even 2
  CHECK(f32_to_f16(std::ldexp(5.0f, -25)) == 0x0002);          // 2.5 ulp: tie to even 2
  CHECK(f32_to_f16(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -25)) == 0x0400); // rounds up into the normals
  CHECK(f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);   // tie at 1: even is 1.0
  CHECK(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02); // tie: even is 1 + 2 ulp
  CHECK(f32_to_f16(float_of(0x7fc00000u)) == 0x7e00);
  CHECK(f32_to_f16(float_of(0xffc00000u)) == 0xfe00);
  CHECK(f32_to_f16(float_of(0x7f800001u)) == 0x7e00);          // signalling NaN becomes quiet, not inf
  CHECK(f32_to_f16(float_of(0x7fa12345u)) == (0x7e00 | ((0x7fa12345u >> 13) & 0x1ff)));
}

TEST_CASE("F32 → BF16 edge cases (overflow, ties, subnormals, NaN)") {
  CHECK(f32_to_bf16(1.0f) == 0x3f80);
  CHECK(f32_to_bf16(float_of(0x3f808000u)) == 0x3f80); // tie: even
  CHECK(f32_to_bf16(float_of(0x3f818000u)) == 0x3f82); // tie: even (up)
  CHECK(f32_to_bf16(float_of(0x3f808001u)) == 0x3f81); // above the tie
  CHECK(f32_to_bf16(float_of(0x7f7f7fffu)) == 0x7f7f); // largest finite stays finite
  CHECK(f32_to_bf16(float_of(0x7f7f8000u)) == 0x7f80); // tie above the largest: inf
  CHECK(f32_to_bf16(float_of(0xff7fffffu)) == 0xff80); // -FLT_MAX: -inf
  CHECK(f32_to_bf16(INFINITY) == 0x7f80);
  CHECK(f32_to_bf16(-INFINITY) == 0xff80);
  CHECK(f32_to_bf16(-0.0f) == 0x8000);
  CHECK(f32_to_bf16(float_of(0x00008000u)) == 0x0000); // subnormal tie to even 0
  CHECK(f32_to_bf16(float_of(0x00018000u)) == 0x0002); // subnormal tie to even 2
  CHECK(f32_to_bf16(float_of(0x007fffffu)) == 0x0080); // largest subnormal rounds up to the smallest normal
  CHECK(f32_to_bf16(float_of(0x7fc00000u)) == 0x7fc0);
  CHECK(f32_to_bf16(float_of(0xff800001u)) == 0xffc0); // signalling NaN: quiet, sign kept, not inf
  CHECK(f32_to_bf16(float_of(0x7fa50000u)) == 0x7fe5);
}
