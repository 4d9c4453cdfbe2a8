// prefopt/core/bf16.hpp — bfloat16 rounding, defined once for every backend, and the precision setting.
//
// bf16 is the upper half of an IEEE float32 (1 sign, 8 exponent, 7 mantissa bits). to_bf16 rounds
// a float to nearest, ties to even, in integer arithmetic (no dependence on the FPU's rounding mode
// or flush-to-zero: subnormals round like any other value), exactly as PyTorch's CPU conversion
// (c10::BFloat16) does; values above the largest bf16 plus half an ulp become ±inf, and every NaN
// becomes torch's canonical quiet NaN 0x7FC0. from_bf16 widens exactly. round_bf16 is the float
// that a trip through bf16 leaves. PREFOPT_HD: the CPU emulation and device code share these lines.
// (Hand-written rather than CUDA's __float2bfloat16_rn so that host and device agree bit for bit,
// NaN included, and the host build needs no CUDA header; io/float16.hpp keeps the NaN payload
// for files instead.)
//
// precision: how a backend computes matrix products and attention (docs/backends.md, "Precision").
//   fp32: in float32 throughout.
//   bf16: the inputs of every matrix product (gemm, forward and backward) and of attention
//         (Q, K, V, and dO in backward) are rounded to bf16; products and sums run in fp32 and the
//         results are fp32. Master weights, gradients, optimizer state, norms, log-softmax and
//         losses stay fp32.
//
// The weight copy (precision bf16). A weight matrix is an input of several products per step
// (forward; dX in backward; the LM head's logits and dh), so rounding it inside every gemm converts
// it 2-3 times a step. A transformer (models/transformer.hpp) therefore keeps one bf16 copy of its
// flat parameter buffer, 2 bytes per base parameter, trainable or frozen (but an untied embedding
// table, which only the lookup reads: transformer::weight_copy_parameters), in the backend's memory
// (the GPU's, as bf16 bits that cuBLASLt reads directly), and multiplies it through the backend's
// gemm_bf16 (core/backend.hpp, backend_ops::bf16_operands). The rule that keeps it from ever being
// stale: the copy is rewritten from the fp32 master weights at the start of every forward pass
// (forward, forward_fused, forward_hidden, next_token_logprobs, each generation step), and used only
// by the products of that forward and of its backward (the checkpointed recompute included). So an
// optimizer step, a checkpoint load, a LoRA merge or any edit through parameters() before a forward
// is always seen; a backward differentiates the weights its forward ran with. Rounding is
// deterministic, so products with the copy equal products that round per call, bit for bit. Under
// fp32 no copy exists (no memory). Activations × activations products (dW, attention, the LoRA
// adapters' small matrices) round their fp32 inputs per call.
//
// Stored norm outputs (precision bf16). Each transformer layer keeps its two norm outputs n1, n2
// for backward; they are only ever inputs of matrix products (q/k/v and the MLP's first
// projections, forward and dW, the LoRA adapters' products), which round them to bf16 anyway, so
// the layer keeps their bf16 bits (2 bytes instead of 4; transformer::set_activation_copy) and the
// products read them through gemm_bf16, whose operands are each fp32 or bf16 bits (gemm_operand,
// core/backend.hpp). Same results bit for bit. Not while LoRA adapter dropout trains: the
// adapter's input is dropout of the unrounded values, so n1, n2 stay fp32 then. q, k, v, the
// attention output, the MLP's inputs to its activation and the residual stay fp32 (attention and
// the activations' backward read fp32 values).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>
#if !defined(__CUDA_ARCH__)
#include <bit>
#endif

#include "prefopt/core/config.hpp"
#include "prefopt/core/error.hpp"

namespace prefopt {

namespace bf16_detail {
PREFOPT_HD inline std::uint32_t bits_of(float f) noexcept {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  return std::bit_cast<std::uint32_t>(f);
#endif
}
PREFOPT_HD inline float float_of(std::uint32_t u) noexcept {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  return std::bit_cast<float>(u);
#endif
}
} // namespace bf16_detail

// float → bf16 bits, round to nearest even; NaN → 0x7FC0 (as torch).
PREFOPT_HD inline std::uint16_t to_bf16(float f) noexcept {
  const std::uint32_t x = bf16_detail::bits_of(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return std::uint16_t(0x7fc0u);
  // A carry out of the mantissa runs into the exponent: the largest values round to ±inf.
  return std::uint16_t((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
// bf16 bits → float, exact.
PREFOPT_HD inline float from_bf16(std::uint16_t b) noexcept { return bf16_detail::float_of(std::uint32_t(b) << 16); }
// The nearest bf16 value, as a float.
PREFOPT_HD inline float round_bf16(float f) noexcept { return from_bf16(to_bf16(f)); }

// Rounds src to bf16 values into dst (the CPU emulation's copy of an operand).
inline void round_bf16(std::span<const float> src, std::span<float> dst) noexcept {
  for (std::size_t i = 0; i < src.size() && i < dst.size(); ++i) dst[i] = round_bf16(src[i]);
}

// src as bf16 bits into dst (the host backends' convert_to_bf16).
inline void to_bf16(std::span<const float> src, std::span<std::uint16_t> dst) noexcept {
  for (std::size_t i = 0; i < src.size() && i < dst.size(); ++i) dst[i] = to_bf16(src[i]);
}

// bf16 bits widened to floats, exact (a host backend's emulation of a bf16 weight operand).
inline std::vector<float> from_bf16_copy(std::span<const std::uint16_t> x) {
  std::vector<float> r(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) r[i] = from_bf16(x[i]);
  return r;
}

// A bf16-rounded copy of x (a host backend's emulation of a bf16 operand).
inline std::vector<float> round_bf16_copy(std::span<const float> x) {
  std::vector<float> r(x.size());
  round_bf16(x, r);
  return r;
}

enum class precision { fp32, bf16 };

inline std::string_view to_string(precision p) { return p == precision::bf16 ? "bf16" : "fp32"; }
// "fp32" or "bf16"; anything else is a config_error naming `field`.
inline precision parse_precision(std::string_view s, const std::string& field) {
  if (s == "fp32") return precision::fp32;
  if (s == "bf16") return precision::bf16;
  throw config_error(field, "must be fp32 or bf16, is '" + std::string(s) + "'");
}

} // namespace prefopt
