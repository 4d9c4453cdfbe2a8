// prefopt/models/detail/random.hpp — uniform and normal draws from std::mt19937_64, spelled out.
//
// std::uniform_real_distribution and std::normal_distribution are implementation-defined (their
// algorithms differ between standard libraries), so weights and samples drawn through them would
// change with the library. These draws use only the engine's 64-bit outputs:
//   uniform01:  (x >> 11)·2⁻⁵³ ∈ [0, 1)           (53 random bits, exact in double)
//   normal:     Box–Muller, z = √(−2 ln u₁)·cos(2π u₂) and √(−2 ln u₁)·sin(2π u₂), u₁ ∈ (0, 1]
#pragma once

#include <cmath>
#include <cstdint>
#include <random>

namespace prefopt::models::detail {

inline double uniform01(std::mt19937_64& rng) { return double(rng() >> 11) * 0x1.0p-53; }

// Standard normal draws, two per Box–Muller transform (the second is kept for the next call).
class normal_source {
public:
  explicit normal_source(std::uint64_t seed) : rng_(seed) {}
  double operator()() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - uniform01(rng_);  // (0, 1]: log stays finite
    const double u2 = uniform01(rng_);
    const double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * M_PI * u2;
    spare_ = r * std::sin(a);
    has_spare_ = true;
    return r * std::cos(a);
  }

private:
  std::mt19937_64 rng_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

} // namespace prefopt::models::detail
