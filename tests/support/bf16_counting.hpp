// A CPU backend that counts precision bf16's weight conversions (core/bf16.hpp, "The weight copy"):
// convert_to_bf16 calls and the floats they convert (the weight copy being made), gemm_bf16_b calls
// (products that read the copy), and gemm calls under bf16 whose B operand lies in the watched
// buffer (products that round a weight per call). Counts are per backend type (static).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

#include "prefopt/core/backend.hpp"
#include "prefopt/core/bf16.hpp"

namespace prefopt::test {

template <class B> struct bf16_counting : B {
  static inline std::size_t conversions = 0, converted = 0, copy_gemms = 0, weight_gemms = 0;
  static inline std::span<const float> watched{};  // a model's base_parameters()

  static void reset(std::span<const float> w) {
    conversions = converted = copy_gemms = weight_gemms = 0;
    watched = w;
  }
  void convert_to_bf16(std::span<const float> x, std::span<std::uint16_t> y) const {
    ++conversions;
    converted += x.size();
    B::convert_to_bf16(x, y);
  }
  void gemm_bf16_b(const gemm_args& g, std::span<const float> a, std::span<const std::uint16_t> b, std::span<float> c) const {
    ++copy_gemms;
    B::gemm_bf16_b(g, a, b, c);
  }
  void gemm(const gemm_args& g, std::span<const float> a, std::span<const float> b, std::span<float> c) const {
    const std::less_equal<const float*> le;
    if (this->matmul_precision == precision::bf16 && !watched.empty() && le(watched.data(), b.data()) &&
        le(b.data(), watched.data() + watched.size() - 1))
      ++weight_gemms;
    B::gemm(g, a, b, c);
  }
};

} // namespace prefopt::test
