// prefopt/models/detail/transformer_acts.hpp — what a transformer layer keeps for backward.
//
// layer_acts (transformer.hpp) per layer; the MLP activation is not kept but written to one
// workspace (mlp_act_) and recomputed by backward with the forward's op; under precision bf16 the
// two norm outputs are kept as bf16 bits (core/bf16.hpp, "Stored norm outputs"), the norm writing
// fp32 into a shared workspace (norm_out_) that is converted into the layer's buffer.
#pragma once

#include <algorithm>
#include <cstdint>

namespace prefopt::models {

template <Backend B, class Arch> void transformer<B, Arch>::ensure_acts(std::size_t kept, int T) {
  const std::size_t t = std::size_t(T), C = std::size_t(cfg_.hidden), F = std::size_t(cfg_.intermediate);
  const std::size_t QD = std::size_t(cfg_.heads) * cfg_.head_dim, KD = std::size_t(cfg_.kv_heads) * cfg_.head_dim;
  if (acts_.size() < kept) acts_.resize(kept);
  for (std::size_t l = 0; l < kept; ++l) {
    auto& a = acts_[l];
    grow(a.x, t * C), grow(a.mean1, t), grow(a.rstd1, t);
    grow(a.q, t * QD), grow(a.k, t * KD), grow(a.v, t * KD), grow(a.lse, attention_lse_size(t, cfg_.heads));
    grow(a.att, t * QD), grow(a.xmid, t * C), grow(a.mean2, t), grow(a.rstd2, t);
    grow(a.a, t * F);
    if constexpr (Arch::id == architecture::llama) grow(a.b, t * F);
    if (norms_bf16_) {  // n1, n2 as bf16 bits only
      grow(a.n1h, t * C), grow(a.n2h, t * C);
      a.n1 = fbuf{}, a.n2 = fbuf{};
    } else {
      grow(a.n1, t * C), grow(a.n2, t * C);
      a.n1h = hbuf{}, a.n2h = hbuf{};
    }
  }
  grow(xf_, t * C), grow(nf_, t * C), grow(meanf_, t), grow(rstdf_, t), grow(mlp_act_, t * F);
  if (norms_bf16_) grow(norm_out_, t * C);
  else norm_out_ = fbuf{};
  grow(dn_, t * C);  // also the position-embedding scratch of the forward pass
  for (std::size_t i = 0; i < adapters_.size(); ++i) grow(lora_xa_[i], t * std::size_t(adapters_[i].rank));
  if (adapter_dropout_ > 0.0) {
    int in = 0;
    for (const auto& a : adapters_) in = std::max(in, a.in);
    grow(lora_xd_, t * std::size_t(in));
  }
}

template <Backend B, class Arch> bool transformer<B, Arch>::choose_norm_storage() const {
  if constexpr (backend_ops::bf16_operands<B> && requires(const B& b) { b.matmul_precision == precision::bf16; })
    return activation_copy_ && be_.matmul_precision == precision::bf16 && !dropout_seed_;
  return false;
}

template <Backend B, class Arch>
void transformer<B, Arch>::norm_keep(std::size_t w, std::size_t b, std::span<const float> x, fbuf& out, hbuf& out16, fbuf& mean,
                                     fbuf& rstd, int T) {
  if constexpr (backend_ops::bf16_operands<B>) {
    if (norms_bf16_) {
      const std::size_t n = std::size_t(T) * std::size_t(cfg_.hidden);
      norm_forward(w, b, x, norm_out_, mean, rstd, T);
      be_.convert_to_bf16(std::span<const float>(norm_out_.span().first(n)), out16.span().first(n));
      return;
    }
  }
  (void)out16;
  norm_forward(w, b, x, out, mean, rstd, T);
}

template <Backend B, class Arch>
gemm_operand transformer<B, Arch>::norm_operand(const fbuf& out, const hbuf& out16, int T) const {
  const std::size_t n = std::size_t(T) * std::size_t(cfg_.hidden);
  if (norms_bf16_) return gemm_operand(out16.span().first(n));
  return gemm_operand(out.span().first(n));
}

// GPT-2: mlp_act_ = gelu(a); Llama: mlp_act_ = swiglu(gate, up). The same op in forward and in
// backward's recompute, so both see the same values bit for bit.
template <Backend B, class Arch> void transformer<B, Arch>::mlp_activation(const layer_acts& a, int T) {
  const std::size_t n = std::size_t(T) * std::size_t(cfg_.intermediate);
  if constexpr (Arch::id == architecture::gpt2) be_.gelu_forward(a.a.span().first(n), mlp_act_.span().first(n));
  else be_.swiglu_forward(a.a.span().first(n), a.b.span().first(n), mlp_act_.span().first(n));
}

template <Backend B, class Arch> std::size_t transformer<B, Arch>::activation_bytes() const {
  std::size_t floats = 0, halves = 0;
  for (const auto& a : acts_) {
    for (const fbuf* f : {&a.x, &a.n1, &a.mean1, &a.rstd1, &a.q, &a.k, &a.v, &a.lse, &a.att, &a.xmid, &a.n2, &a.mean2, &a.rstd2,
                          &a.a, &a.b})
      floats += f->size();
    halves += a.n1h.size() + a.n2h.size();
  }
  return floats * sizeof(float) + halves * sizeof(std::uint16_t);
}

} // namespace prefopt::models
