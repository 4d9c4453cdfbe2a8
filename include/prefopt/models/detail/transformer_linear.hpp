// prefopt/models/detail/transformer_linear.hpp — transformer's linear layers, with their LoRA path.
//
// y = x·W (+ b) (+ s·(dropout(x)·Aᵀ)·Bᵀ when adapters are attached and on) and its backward; the
// adapters' dropout mask is redrawn from (seed, adapter, element), never stored (core/random.hpp).
// Under precision bf16 the products with W read the weight copy (core/bf16.hpp, "The weight
// copy"), made here by refresh_weight_copy at the start of each forward pass; the input x is fp32
// or, for the norm outputs under bf16, the layer's kept bf16 bits (core/bf16.hpp, "Stored norm
// outputs"): every product takes it as it comes (gemm_any).
#pragma once

namespace prefopt::models {

template <Backend B, class Arch> void transformer<B, Arch>::refresh_weight_copy() {
  w16_live_ = false;
  if constexpr (backend_ops::bf16_operands<B> && requires(const B& b) { b.matmul_precision == precision::bf16; }) {
    if (weight_copy_ && be_.matmul_precision == precision::bf16) {
      const std::size_t begin = copy_begin();
      if (w16_.size() != params_.size() - begin) w16_ = be_.template allocate<std::uint16_t>(params_.size() - begin);
      be_.convert_to_bf16(std::span<const float>(params_.span()).subspan(begin), w16_.span());
      w16_live_ = true;
      return;
    }
  }
  if (w16_.size() != 0) release_weight_copy();  // fp32 (or the copy off): no memory held
}

template <Backend B, class Arch>
std::span<const std::uint16_t> transformer<B, Arch>::wcopy(std::size_t off, std::size_t n) {
  if constexpr (requires(const B& b) { b.matmul_precision == precision::bf16; }) {
    // Only while the backend still computes in bf16: a switch to fp32 after the forward is obeyed.
    // An offset before the copy's start (an untied embedding table: no product reads it) gets none.
    if (w16_live_ && be_.matmul_precision == precision::bf16 && off >= copy_begin())
      return std::span<const std::uint16_t>(w16_.span()).subspan(off - copy_begin(), n);
  }
  return {};
}

template <Backend B, class Arch>
void transformer<B, Arch>::linear_forward(const linear_ref& l, gemm_operand x, std::span<float> y, int T, bool keep) {
  gemm_weight(be_, {.trans_a = false, .trans_b = !l.conv1d, .m = T, .n = l.out, .k = l.in, .lda = l.in, .ldb = l.ld, .ldc = l.out},
              x, params_.span().subspan(l.w), wcopy(l.w), y);
  if (l.b != no_offset) be_.bias_forward(pspan(l.b, std::size_t(l.out)), l.out, y.first(std::size_t(T) * l.out));
  if (use_adapters_ && l.adapter >= 0) {
    const auto& ad = adapters_[std::size_t(l.adapter)];
    auto xa = lora_xa_[std::size_t(l.adapter)].span().first(std::size_t(T) * ad.rank);
    (void)keep;
    // xa = dropout(x)·Aᵀ [T × r]; the mask depends on (seed, adapter, element) only, so the
    // backward sees the same one. A fused module (GPT-2 c_attn: q, k, v blocks of one adapter,
    // called in that order on the same input) computes xa once, in its first block's call.
    if (l.adapter_row0 == 0) {
      gemm_operand xin = x.first(std::size_t(T) * l.in);
      if (dropout_seed_) {  // x is fp32 then (choose_norm_storage): dropout of the unrounded input
        auto xd = lora_xd_.span().first(std::size_t(T) * l.in);
        be_.dropout(x.f32().first(std::size_t(T) * l.in), xd, float(adapter_dropout_), mix_seed(*dropout_seed_, std::uint64_t(l.adapter)));
        xin = gemm_operand(xd);
      }
      gemm_any(be_, {.trans_b = true, .m = T, .n = ad.rank, .k = l.in, .lda = l.in, .ldb = l.in, .ldc = ad.rank}, xin,
               gemm_operand(adapter_params_.span().subspan(ad.a)), xa);
    }
    be_.gemm({.trans_b = true, .m = T, .n = l.out, .k = ad.rank, .lda = ad.rank, .ldb = ad.rank, .ldc = l.out,
              .alpha = float(adapter_scale_), .beta = 1.0f},
             xa, adapter_params_.span().subspan(ad.b + std::size_t(l.adapter_row0) * ad.rank), y);
  }
}

template <Backend B, class Arch>
void transformer<B, Arch>::linear_backward(const linear_ref& l, gemm_operand x, std::span<const float> dy,
                                           std::span<float> dx, bool accumulate_dx, int T) {
  const float beta = accumulate_dx ? 1.0f : 0.0f;
  // dx = dy·Wᵀ (Conv1D stores W [in × out]) or dy·W (Linear stores W [out × in])
  gemm_weight(be_, {.trans_a = false, .trans_b = l.conv1d, .m = T, .n = l.in, .k = l.out, .lda = l.out, .ldb = l.ld, .ldc = l.in,
                    .alpha = 1.0f, .beta = beta},
              dy, params_.span().subspan(l.w), wcopy(l.w), dx);
  if (base_trainable()) {
    if (l.conv1d)  // dW [in × out] += xᵀ·dy
      gemm_any(be_, {.trans_a = true, .m = l.in, .n = l.out, .k = T, .lda = l.in, .ldb = l.out, .ldc = l.ld, .alpha = 1.0f, .beta = 1.0f},
               x, dy, grads_.span().subspan(l.w));
    else  // dW [out × in] += dyᵀ·x
      gemm_any(be_, {.trans_a = true, .m = l.out, .n = l.in, .k = T, .lda = l.out, .ldb = l.in, .ldc = l.ld, .alpha = 1.0f, .beta = 1.0f},
               dy, x, grads_.span().subspan(l.w));
    if (l.b != no_offset) be_.bias_backward(dy.first(std::size_t(T) * l.out), l.out, gspan(l.b, std::size_t(l.out)));
  }
  if (use_adapters_ && l.adapter >= 0) {
    const auto& ad = adapters_[std::size_t(l.adapter)];
    const int r = ad.rank;
    const float s = float(adapter_scale_);
    auto xa = lora_xa_[std::size_t(l.adapter)].span().first(std::size_t(T) * r);
    auto dxa = lora_dxa_.span().first(std::size_t(T) * r);
    const std::size_t b0 = ad.b + std::size_t(l.adapter_row0) * r;
    // dxa = s·dy·B_rows [T × r];  dB_rows += s·dyᵀ·xa;  dA += dxaᵀ·x̃;  dx += m ⊙ (dxa·A)
    // with x̃ = m ⊙ x the dropped input (m = 1 without dropout; recomputed from the seed here).
    be_.gemm({.m = T, .n = r, .k = l.out, .lda = l.out, .ldb = r, .ldc = r, .alpha = s}, dy, adapter_params_.span().subspan(b0), dxa);
    be_.gemm({.trans_a = true, .m = l.out, .n = r, .k = T, .lda = l.out, .ldb = r, .ldc = r, .alpha = s, .beta = 1.0f}, dy, xa,
             adapter_grads_.span().subspan(b0));
    if (!dropout_seed_) {
      gemm_any(be_, {.trans_a = true, .m = r, .n = l.in, .k = T, .lda = r, .ldb = l.in, .ldc = l.in, .alpha = 1.0f, .beta = 1.0f},
               dxa, x, adapter_grads_.span().subspan(ad.a));
      be_.gemm({.m = T, .n = l.in, .k = r, .lda = r, .ldb = l.in, .ldc = l.in, .alpha = 1.0f, .beta = 1.0f}, dxa,
               adapter_params_.span().subspan(ad.a), dx);
    } else {
      const float p = float(adapter_dropout_);
      const std::uint64_t seed = mix_seed(*dropout_seed_, std::uint64_t(l.adapter));
      auto xd = lora_xd_.span().first(std::size_t(T) * l.in);
      be_.dropout(x.f32().first(std::size_t(T) * l.in), xd, p, seed);  // x is fp32 under dropout
      be_.gemm({.trans_a = true, .m = r, .n = l.in, .k = T, .lda = r, .ldb = l.in, .ldc = l.in, .alpha = 1.0f, .beta = 1.0f}, dxa,
               std::span<const float>(xd), adapter_grads_.span().subspan(ad.a));
      be_.gemm({.m = T, .n = l.in, .k = r, .lda = r, .ldb = l.in, .ldc = l.in}, dxa, adapter_params_.span().subspan(ad.a), xd);
      be_.dropout(std::span<const float>(xd), xd, p, seed);
      be_.add_inplace(std::span<const float>(xd), dx.first(std::size_t(T) * l.in));
    }
  }
}

} // namespace prefopt::models
