// A CPU backend that counts precision bf16's conversions (core/bf16.hpp, "The weight copy",
// "Stored norm outputs"): convert_to_bf16 calls within the watched buffer and the floats they convert
// (the weight copy being made) and of anything else (norm outputs stored as bf16, with the floats
// they convert); gemm_bf16 calls whose B is the weight copy's bits (products that read the copy)
// and whose A or B is other bf16 bits (products that read a stored norm output); gemm and
// gemm_bf16 calls under bf16 whose fp32 B operand lies in the watched buffer (products that round
// a weight per call). Counts are per backend type (static).
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
  static inline std::size_t act_conversions = 0, act_converted = 0, act_gemms = 0;
  static inline std::span<const float> watched{};  // a model's base_parameters()
  static inline std::span<const std::uint16_t> copy16{};  // the last conversion of the watched buffer

  static void reset(std::span<const float> w) {
    conversions = converted = copy_gemms = weight_gemms = 0;
    act_conversions = act_converted = act_gemms = 0;
    watched = w;
    copy16 = {};
  }
  void convert_to_bf16(std::span<const float> x, std::span<std::uint16_t> y) const {
    if (inside(watched, x.data())) {  // the copy starts inside the buffer (after an untied embedding)
      ++conversions;
      converted += x.size();
      copy16 = y;
    } else {
      ++act_conversions;
      act_converted += x.size();
    }
    B::convert_to_bf16(x, y);
  }
  void gemm_bf16(const gemm_args& g, gemm_operand a, gemm_operand b, std::span<float> c) const {
    if (b.is_bf16() && inside(copy16, b.bf16().data())) ++copy_gemms;
    if (a.is_bf16() || (b.is_bf16() && !inside(copy16, b.bf16().data()))) ++act_gemms;
    if (!b.is_bf16() && inside(watched, b.f32().data())) ++weight_gemms;
    B::gemm_bf16(g, a, b, c);
  }
  void gemm(const gemm_args& g, std::span<const float> a, std::span<const float> b, std::span<float> c) const {
    if (this->matmul_precision == precision::bf16 && inside(watched, b.data())) ++weight_gemms;
    B::gemm(g, a, b, c);
  }

private:
  template <class T> static bool inside(std::span<const T> s, const T* p) {
    const std::less_equal<const T*> le;
    return !s.empty() && le(s.data(), p) && le(p, s.data() + s.size() - 1);
  }
};

} // namespace prefopt::test
