// prefopt/core/random.hpp — counter-based random numbers every backend computes alike.
//
// Dropout masks are a pure function of (seed, element index): no generator state to carry
// between forward and backward, between host and device, or across a checkpoint. A backend
// regenerates the mask in backward instead of storing it, and a resumed run draws the masks an
// uninterrupted one would have drawn, because the trainer derives the seed from the step.
#pragma once

#include <cstdint>

#include "prefopt/core/config.hpp"

namespace prefopt {

// SplitMix64's finalizer (Steele, Lea & Flood, "Fast Splittable Pseudorandom Number Generators",
// OOPSLA 2014): a bijection of 64-bit words whose outputs pass BigCrush for consecutive inputs.
PREFOPT_HD constexpr std::uint64_t splitmix64(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A seed for a sub-stream: distinct (seed, salt) pairs give unrelated streams.
PREFOPT_HD constexpr std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t salt) {
  return splitmix64(seed ^ splitmix64(salt + 0x632BE59BD9B4E019ull));
}

// Uniform in [0, 1) with 24 random bits (exact in float) for element i of the stream `seed`.
PREFOPT_HD constexpr float uniform01(std::uint64_t seed, std::uint64_t i) {
  return float(splitmix64(seed + i * 0x9E3779B97F4A7C15ull) >> 40) * (1.0f / 16777216.0f);
}

// Inverted dropout's multiplier for element i: 0 with probability p, 1/(1−p) otherwise
// (as torch.nn.Dropout in training mode). p = 0 keeps everything; p must lie in [0, 1).
PREFOPT_HD constexpr float dropout_multiplier(std::uint64_t seed, std::uint64_t i, float p) {
  return uniform01(seed, i) < p ? 0.0f : 1.0f / (1.0f - p);
}

} // namespace prefopt
