// prefopt/models/detail/transformer_impl.hpp — transformer's forward and backward, layer by layer.
#pragma once

#include <algorithm>
#include <string>
#include <utility>

namespace prefopt::models {

// ---- buffers --------------------------------------------------------------------------------

template <Backend B, class Arch> void transformer<B, Arch>::ensure_grads() {
  if (adapters_.empty() && grads_.size() != layout_.total) {
    grads_ = be_.template allocate<float>(layout_.total);
  }
}

template <Backend B, class Arch> void transformer<B, Arch>::ensure_backward(int T) {
  const std::size_t t = std::size_t(T), C = std::size_t(cfg_.hidden), F = std::size_t(cfg_.intermediate);
  const std::size_t QD = std::size_t(cfg_.heads) * cfg_.head_dim, KD = std::size_t(cfg_.kv_heads) * cfg_.head_dim;
  grow(dx_, t * C), grow(df1_, t * F), grow(df2_, t * F), grow(datt_, t * QD), grow(dq_, t * QD), grow(dk_, t * KD),
      grow(dv_, t * KD), grow(dnorm_w_, C), grow(dnorm_b_, C);
  if constexpr (Arch::id == architecture::llama) grow(df3_, t * F);
  int r = 0;
  for (const auto& a : adapters_) r = std::max(r, a.rank);
  if (r > 0) grow(lora_dxa_, t * std::size_t(r));
}

template <Backend B, class Arch> void transformer<B, Arch>::upload_batch(const input_type& in) {
  const std::size_t T = in.tokens.size(), H = in.predict_from.size();
  auto bad = [](const std::string& what, std::size_t i, const std::string& why) {
    throw shape_error("token_batch: " + what + " " + std::to_string(i), why);
  };
  if (in.positions.size() != T || in.segment.size() != T) throw shape_error("token_batch", "positions/segment must have one entry per token");
  if (in.predict_token.size() != H || in.predict_sequence.size() != H)
    throw shape_error("token_batch", "predict_from/predict_token/predict_sequence must have the same length");
  if (in.row_offsets.empty() || in.row_offsets.front() != 0 || std::size_t(in.row_offsets.back()) != T)
    throw shape_error("token_batch: row_offsets", "must start at 0 and end at the token count");
  for (std::size_t i = 0; i < T; ++i) {
    if (in.tokens[i] < 0 || in.tokens[i] >= cfg_.vocab_size) bad("token", i, "id outside the vocabulary");
    if (in.positions[i] < 0 || (Arch::id == architecture::gpt2 && in.positions[i] >= cfg_.max_positions))
      bad("token", i, "position " + std::to_string(in.positions[i]) + " outside [0, " + std::to_string(cfg_.max_positions) + ")");
  }
  for (std::size_t h = 0; h < H; ++h) {
    if (in.predict_from[h] < 0 || std::size_t(in.predict_from[h]) >= T) bad("prediction", h, "predict_from outside the batch");
    if (in.predict_token[h] < 0 || in.predict_token[h] >= cfg_.vocab_size) bad("prediction", h, "target outside the vocabulary");
    if (in.predict_sequence[h] < 0 || in.predict_sequence[h] >= in.sequences) bad("prediction", h, "sequence index out of range");
  }
  grow(tokens_, T), grow(positions_, T), grow(segment_, T), grow(row_offsets_, in.row_offsets.size());
  grow(predict_from_, std::max<std::size_t>(H, 1)), grow(predict_token_, std::max<std::size_t>(H, 1));
  be_.upload(std::span<const std::int32_t>(in.tokens), tokens_.span().first(T));
  be_.upload(std::span<const std::int32_t>(in.positions), positions_.span().first(T));
  be_.upload(std::span<const std::int32_t>(in.segment), segment_.span().first(T));
  be_.upload(std::span<const std::int32_t>(in.row_offsets), row_offsets_.span().first(in.row_offsets.size()));
  be_.upload(std::span<const std::int32_t>(in.predict_from), predict_from_.span().first(H));
  be_.upload(std::span<const std::int32_t>(in.predict_token), predict_token_.span().first(H));
  host_offsets_ = in.row_offsets;
  predict_sequence_ = in.predict_sequence;
  max_row_ = 0;
  for (std::size_t r = 0; r + 1 < host_offsets_.size(); ++r) max_row_ = std::max(max_row_, host_offsets_[r + 1] - host_offsets_[r]);
}

// ---- building blocks ---------------------------------------------------------------------------

template <Backend B, class Arch>
void transformer<B, Arch>::norm_forward(std::size_t w, std::size_t b, std::span<const float> x, fbuf& out, fbuf& mean,
                                        fbuf& rstd, int T) {
  const int C = cfg_.hidden;
  const std::size_t n = std::size_t(T) * C;
  if constexpr (Arch::id == architecture::gpt2)
    be_.layernorm_forward(x.first(n), pspan(w, C), pspan(b, C), C, float(cfg_.norm_eps), out.span().first(n),
                          mean.span().first(T), rstd.span().first(T));
  else
    be_.rmsnorm_forward(x.first(n), pspan(w, C), C, float(cfg_.norm_eps), out.span().first(n), rstd.span().first(T));
}

template <Backend B, class Arch>
void transformer<B, Arch>::norm_backward(std::size_t w, std::size_t b, std::span<const float> dout, std::span<const float> x,
                                         const fbuf& mean, const fbuf& rstd, std::span<float> dx, int T) {
  const int C = cfg_.hidden;
  const std::size_t n = std::size_t(T) * C;
  const bool train = base_trainable();
  auto dw = train ? gspan(w, C) : dnorm_w_.span().first(C);
  if constexpr (Arch::id == architecture::gpt2) {
    auto db = train ? gspan(b, C) : dnorm_b_.span().first(C);
    be_.layernorm_backward(dout.first(n), x.first(n), pspan(w, C), mean.span().first(T), rstd.span().first(T), C, dx.first(n),
                           dw, db);
  } else {
    be_.rmsnorm_backward(dout.first(n), x.first(n), pspan(w, C), rstd.span().first(T), C, dx.first(n), dw);
  }
}

// ---- one layer ------------------------------------------------------------------------------

// The layer's first half up to attention: n1 = norm1(x), q, k, v (rotary applied for Llama).
template <Backend B, class Arch> void transformer<B, Arch>::qkv_forward(std::size_t i, layer_acts& a, int T, bool keep) {
  const auto& L = layout_.layers[i];
  const std::size_t t = std::size_t(T), C = std::size_t(cfg_.hidden);
  const std::size_t QD = std::size_t(cfg_.heads) * cfg_.head_dim, KD = std::size_t(cfg_.kv_heads) * cfg_.head_dim;
  norm_keep(L.norm1_w, L.norm1_b, a.x.span().first(t * C), a.n1, a.n1h, a.mean1, a.rstd1, T);   // n1 [T × C]
  const gemm_operand n1 = norm_operand(a.n1, a.n1h, T);
  linear_forward(L.q, n1, a.q.span().first(t * QD), T, keep);                                    // q [T × Hq·D]
  linear_forward(L.k, n1, a.k.span().first(t * KD), T, keep);                                    // k [T × Hkv·D]
  linear_forward(L.v, n1, a.v.span().first(t * KD), T, keep);                                    // v [T × Hkv·D]
  if constexpr (Arch::id == architecture::llama) {
    be_.rope_forward(a.q.span().first(t * QD), positions_.span().first(t), cfg_.heads, cfg_.head_dim, inv_freq_.span());
    be_.rope_forward(a.k.span().first(t * KD), positions_.span().first(t), cfg_.kv_heads, cfg_.head_dim, inv_freq_.span());
  }
}

// The layer's second half from the attention output a.att: o-projection, residual, norm2, MLP,
// residual into x_out.
template <Backend B, class Arch>
void transformer<B, Arch>::mlp_forward(std::size_t i, layer_acts& a, std::span<float> x_out, int T, bool keep) {
  const auto& L = layout_.layers[i];
  const std::size_t t = std::size_t(T), C = std::size_t(cfg_.hidden), F = std::size_t(cfg_.intermediate);
  const std::size_t QD = std::size_t(cfg_.heads) * cfg_.head_dim;
  linear_forward(L.o, a.att.span().first(t * QD), a.xmid.span().first(t * C), T, keep);
  be_.add_inplace(a.x.span().first(t * C), a.xmid.span().first(t * C));                        // xmid = x + o(att)
  norm_keep(L.norm2_w, L.norm2_b, a.xmid.span().first(t * C), a.n2, a.n2h, a.mean2, a.rstd2, T); // n2 [T × C]
  const gemm_operand n2 = norm_operand(a.n2, a.n2h, T);
  linear_forward(L.mlp_in, n2, a.a.span().first(t * F), T, keep);                                // a [T × F]
  if constexpr (Arch::id == architecture::llama) linear_forward(L.mlp_up, n2, a.b.span().first(t * F), T, keep);  // b = up
  mlp_activation(a, T);                                                                           // gelu(a) or swiglu(a, b)
  linear_forward(L.mlp_out, mlp_act_.span().first(t * F), x_out.first(t * C), T, keep);
  be_.add_inplace(a.xmid.span().first(t * C), x_out.first(t * C));                              // x_out = xmid + mlp
}

template <Backend B, class Arch>
void transformer<B, Arch>::layer_forward(std::size_t i, layer_acts& a, std::span<float> x_out, int T, bool keep) {
  const std::size_t t = std::size_t(T);
  const std::size_t QD = std::size_t(cfg_.heads) * cfg_.head_dim, KD = std::size_t(cfg_.kv_heads) * cfg_.head_dim;
  qkv_forward(i, a, T, keep);
  const attention_layout lay{int(host_offsets_.size()) - 1, max_row_, row_offsets_.span().first(host_offsets_.size()),
                             segment_.span().first(t)};
  const attention_shape sh{T, cfg_.heads, cfg_.kv_heads, cfg_.head_dim};
  be_.attention_forward(a.q.span().first(t * QD), a.k.span().first(t * KD), a.v.span().first(t * KD), lay, sh,
                        a.att.span().first(t * QD),                                               // att [T × Hq·D]
                        a.lse.span().first(attention_lse_size(t, cfg_.heads)));                   // lse [T × Hq]
  mlp_forward(i, a, x_out, T, keep);
}

template <Backend B, class Arch>
void transformer<B, Arch>::layer_backward(std::size_t i, layer_acts& a, std::span<float> dx, int T) {
  // On entry dx = dL/dx_out; on exit dL/dx (the layer's input).
  const auto& L = layout_.layers[i];
  const std::size_t t = std::size_t(T), C = std::size_t(cfg_.hidden), F = std::size_t(cfg_.intermediate);
  const std::size_t QD = std::size_t(cfg_.heads) * cfg_.head_dim, KD = std::size_t(cfg_.kv_heads) * cfg_.head_dim;
  auto dn = dn_.span().first(t * C);
  const gemm_operand n1 = norm_operand(a.n1, a.n1h, T), n2 = norm_operand(a.n2, a.n2h, T);
  mlp_activation(a, T);  // recomputed: mlp_out's input
  linear_backward(L.mlp_out, mlp_act_.span().first(t * F), dx, df1_.span().first(t * F), false, T);  // d act
  if constexpr (Arch::id == architecture::gpt2) {
    be_.gelu_backward(a.a.span().first(t * F), df1_.span().first(t * F), df2_.span().first(t * F));  // d a
    linear_backward(L.mlp_in, n2, df2_.span().first(t * F), dn, false, T);
  } else {
    be_.swiglu_backward(a.a.span().first(t * F), a.b.span().first(t * F), df1_.span().first(t * F),
                        df2_.span().first(t * F), df3_.span().first(t * F));                       // d gate, d up
    linear_backward(L.mlp_in, n2, df2_.span().first(t * F), dn, false, T);
    linear_backward(L.mlp_up, n2, df3_.span().first(t * F), dn, true, T);
  }
  norm_backward(L.norm2_w, L.norm2_b, dn, a.xmid.span(), a.mean2, a.rstd2, dx, T);             // dx = dL/dxmid
  linear_backward(L.o, a.att.span().first(t * QD), dx, datt_.span().first(t * QD), false, T);
  const attention_layout lay{int(host_offsets_.size()) - 1, max_row_, row_offsets_.span().first(host_offsets_.size()),
                             segment_.span().first(t)};
  const attention_shape sh{T, cfg_.heads, cfg_.kv_heads, cfg_.head_dim};
  be_.attention_backward(datt_.span().first(t * QD), a.q.span().first(t * QD), a.k.span().first(t * KD),
                         a.v.span().first(t * KD), a.att.span().first(t * QD),
                         a.lse.span().first(attention_lse_size(t, cfg_.heads)), lay, sh, dq_.span().first(t * QD),
                         dk_.span().first(t * KD), dv_.span().first(t * KD));
  if constexpr (Arch::id == architecture::llama) {
    be_.rope_backward(dq_.span().first(t * QD), positions_.span().first(t), cfg_.heads, cfg_.head_dim, inv_freq_.span());
    be_.rope_backward(dk_.span().first(t * KD), positions_.span().first(t), cfg_.kv_heads, cfg_.head_dim, inv_freq_.span());
  }
  linear_backward(L.q, n1, dq_.span().first(t * QD), dn, false, T);
  linear_backward(L.k, n1, dk_.span().first(t * KD), dn, true, T);
  linear_backward(L.v, n1, dv_.span().first(t * KD), dn, true, T);
  norm_backward(L.norm1_w, L.norm1_b, dn, a.x.span(), a.mean1, a.rstd1, dx, T);                // dx = dL/dx
}

// Backward through the layers of a checkpointed forward. acts_[0] still holds the last layer's
// activations (but layer 0's input); every other layer is recomputed first from its kept input,
// swapped into the workspace, by the same layer_forward (same ops, same order, same LoRA dropout
// masks: they are drawn from the forward's seed), so its backward sees bit-identical activations.
// The recomputed output is not needed: it goes to dn_, which layer_backward uses only as scratch.
template <Backend B, class Arch> void transformer<B, Arch>::layers_backward_checkpointed(std::span<float> dx, int T) {
  const std::size_t nl = layout_.layers.size();
  for (std::size_t l = nl; l-- > 0;) {
    if (l > 0) std::swap(acts_[0].x, acts_[l].x);
    if (l + 1 < nl) layer_forward(l, acts_[0], dn_.span(), T, true);
    layer_backward(l, acts_[0], dx, T);
    if (l > 0) std::swap(acts_[0].x, acts_[l].x);
    announce_layer(l);
  }
}

// Layer l's range of gradients(): its base weights (from its first norm to the next layer's), or
// its LoRA adapters (laid out layer by layer, lora.hpp).
template <Backend B, class Arch> void transformer<B, Arch>::announce_layer(std::size_t l) {
  if (!grads_ready_) return;
  const auto& layers = layout_.layers;
  if (base_trainable()) {
    const std::size_t lo = layers[l].norm1_w, hi = l + 1 < layers.size() ? layers[l + 1].norm1_w : layout_.normf_w;
    grads_ready_(lo, hi - lo);
    return;
  }
  std::size_t lo = no_offset, hi = 0;
  for (const linear_ref* r : const_cast<layer_layout&>(layers[l]).linears())
    if (r->adapter >= 0) {
      const auto& a = adapters_[std::size_t(r->adapter)];
      lo = std::min(lo, a.a), hi = std::max(hi, a.b + std::size_t(a.out) * std::size_t(a.rank));
    }
  if (lo < hi) grads_ready_(lo, hi - lo);
}

// ---- the model --------------------------------------------------------------------------------

template <Backend B, class Arch>
void transformer<B, Arch>::forward(const input_type& in, sequence_logps& out, const forward_options& opt) {
  forward_impl(in, out, opt, nullptr);
}

// fused: the head runs its backward too (forward_fused, detail/transformer_head.hpp).
template <Backend B, class Arch>
void transformer<B, Arch>::forward_impl(const input_type& in, sequence_logps& out, const forward_options& opt,
                                        const head_gradient* fused) {
  refresh_weight_copy();  // this forward's weights, in bf16 (core/bf16.hpp, "The weight copy")
  upload_batch(in);
  if (fused) order_rows_by_pair(in);
  const int T = int(in.tokens.size()), H = int(in.predict_from.size()), C = cfg_.hidden, V = cfg_.vocab_size;
  const std::size_t t = std::size_t(T);
  const bool keep = opt.keep_activations;
  use_adapters_ = opt.adapters && !adapters_.empty();
  if (opt.dropout_seed && use_adapters_ && adapter_dropout_ > 0.0) dropout_seed_ = opt.dropout_seed;
  else dropout_seed_.reset();
  norms_bf16_ = choose_norm_storage();
  const std::size_t nl = layout_.layers.size();
  // Checkpointed: every layer runs in acts_[0] (the workspace) and only acts_[l].x, its input, is kept.
  const bool ckpt = keep && checkpointing_;
  ensure_acts(keep && !ckpt ? nl : 1, std::max(T, 1));
  if (ckpt) {
    if (acts_.size() < nl) acts_.resize(nl);
    for (std::size_t l = 1; l < nl; ++l) grow(acts_[l].x, std::max<std::size_t>(t, 1) * C);
  }
  T_ = T;
  H_ = H;
  // x₀ = wte[tokens] (+ wpe[positions] for GPT-2)                                            [T × C]
  auto x0 = acts_[0].x.span().first(t * C);
  be_.embedding_forward(tokens_.span().first(t), pspan(layout_.wte, std::size_t(V) * C), C, x0);
  if constexpr (Arch::id == architecture::gpt2) {
    be_.embedding_forward(positions_.span().first(t), pspan(layout_.wpe, std::size_t(cfg_.max_positions) * C), C,
                          dn_.span().first(t * C));
    be_.add_inplace(dn_.span().first(t * C), x0);
  }
  for (std::size_t l = 0; l < nl; ++l) {
    auto& a = acts_[keep && !ckpt ? l : 0];
    std::span<float> x_out = l + 1 < nl ? acts_[keep ? l + 1 : 0].x.span() : xf_.span();
    const bool swap_in = ckpt && l > 0;  // the workspace takes layer l's input for the call (a buffer swap)
    if (swap_in) std::swap(acts_[0].x, acts_[l].x);
    layer_forward(l, a, x_out, T, keep);
    if (swap_in) std::swap(acts_[0].x, acts_[l].x);
  }
  if (nl == 0) be_.copy(x0, xf_.span());
  norm_forward(layout_.normf_w, layout_.normf_b, xf_.span(), nf_, meanf_, rstdf_, T);            // nf [T × C]
  head_done_ = false;
  head_forward(in, out, opt, fused);
  has_acts_ = keep;
}

template <Backend B, class Arch> void transformer<B, Arch>::backward(std::span<const double> d_logp) {
  if (!has_acts_) throw error("transformer::backward", "the last forward pass did not keep activations");
  if (head_done_) throw error("transformer::backward", "the last forward was forward_fused: call backward_fused()");
  const int T = T_, H = H_, C = cfg_.hidden, V = cfg_.vocab_size;
  ensure_grads();
  ensure_backward(std::max(T, 1));
  // d log p of each prediction = d loss / d sequence log-prob · its LD weight
  std::vector<float> dl(static_cast<std::size_t>(H));
  for (int h = 0; h < H; ++h) {
    const auto s = std::size_t(predict_sequence_[std::size_t(h)]);
    if (s >= d_logp.size()) throw shape_error("transformer::backward", "one gradient per output sequence expected");
    dl[std::size_t(h)] = float(d_logp[s]) * token_weight_[std::size_t(h)];
  }
  be_.upload(std::span<const float>(dl), logp_.span().first(std::size_t(H)));
  grow(dhrows_, std::size_t(std::max(H, 1)) * C);
  const bool train = base_trainable();
  head_.backward(be_, hrows_.span().first(std::size_t(H) * C), params_.span().subspan(layout_.head, std::size_t(V) * C),
                 predict_token_.span().first(std::size_t(H)), lse_.span().first(std::size_t(H)), logp_.span().first(std::size_t(H)),
                 H, C, V, dhrows_.span().first(std::size_t(H) * C),
                 train ? grads_.span().subspan(layout_.head, std::size_t(V) * C) : std::span<float>{},
                 wcopy(layout_.head, std::size_t(V) * C));
  backward_from_head_rows();
}

// d hidden of the head rows (dhrows_) into d nf, then the body.
template <Backend B, class Arch> void transformer<B, Arch>::backward_from_head_rows() {
  const std::size_t t = std::size_t(T_), H = std::size_t(H_), C = std::size_t(cfg_.hidden);
  auto dnf = dn_.span().first(t * C);
  be_.fill(dnf, 0.0f);
  be_.embedding_backward(predict_from_.span().first(H), dhrows_.span().first(H * C), int(C), dnf);
  body_backward(T_);
  has_acts_ = false;
}

// From d loss / d final-norm output (in dn_, [T × C]) down to the embeddings: the final norm, the
// layers (recomputed first when checkpointed), the token (and GPT-2 position) embeddings.
template <Backend B, class Arch> void transformer<B, Arch>::body_backward(int T) {
  const int C = cfg_.hidden, V = cfg_.vocab_size;
  const std::size_t t = std::size_t(T);
  if constexpr (requires(const B& b) { b.matmul_precision == precision::bf16; })
    if (norms_bf16_ && be_.matmul_precision != precision::bf16)
      throw error("transformer::backward", "the forward pass kept its norm outputs in bf16 and the backend's precision has "
                                           "changed since: run the forward pass again");
  auto dx = dx_.span().first(t * C);
  be_.fill(dx, 0.0f);
  // d nf aliases dn_, which layer_backward reuses: move it into dx through the final norm first.
  norm_backward(layout_.normf_w, layout_.normf_b, dn_.span().first(t * C), xf_.span(), meanf_, rstdf_, dx, T);
  const bool announce = grads_ready_ && base_trainable();
  if (announce) grads_ready_(layout_.normf_w, layout_.total - layout_.normf_w);  // final norm (+ untied head)
  if (checkpointing_) layers_backward_checkpointed(dx, T);
  else
    for (std::size_t l = layout_.layers.size(); l-- > 0;) {
      layer_backward(l, acts_[l], dx, T);
      announce_layer(l);
    }
  if (base_trainable()) {
    // Llama family: the lookup skips the padding row (nn.Embedding's padding_idx), which keeps what a
    // tied head wrote there; its C values wait in dnorm_w_, free here (the norm scratch of frozen weights).
    const auto dwte = gspan(layout_.wte, std::size_t(V) * C);
    const int pad = cfg_.embedding_padding_row;
    const auto pad_row = pad >= 0 ? dwte.subspan(std::size_t(pad) * C, C) : std::span<float>{};
    if (pad >= 0) be_.copy(std::span<const float>(pad_row), dnorm_w_.span().first(C));
    be_.embedding_backward(tokens_.span().first(t), dx, C, dwte);
    if (pad >= 0) be_.copy(std::span<const float>(dnorm_w_.span().first(C)), pad_row);
    if constexpr (Arch::id == architecture::gpt2)
      be_.embedding_backward(positions_.span().first(t), dx, C, gspan(layout_.wpe, std::size_t(cfg_.max_positions) * C));
  }
  if (announce) grads_ready_(0, layout_.layers.empty() ? layout_.normf_w : layout_.layers[0].norm1_w);  // embeddings
}

template <Backend B, class Arch>
void transformer<B, Arch>::attach_adapters(std::vector<adapter_ref> refs, std::vector<parameter_slice> slices, std::size_t total,
                                           double scale, double dropout) {
  if (!(dropout >= 0.0 && dropout < 1.0)) throw config_error("lora: field 'dropout'", "must lie in [0, 1)");
  adapters_ = std::move(refs);
  adapter_slices_ = std::move(slices);
  adapter_scale_ = scale;
  adapter_dropout_ = dropout;
  dropout_seed_.reset();
  adapter_params_ = be_.template allocate<float>(total);
  adapter_grads_ = be_.template allocate<float>(total);
  lora_xa_.clear();
  lora_xa_.resize(adapters_.size());
  grads_ = fbuf{};
  for (auto& layer : layout_.layers)
    for (linear_ref* l : layer.linears()) {
      l->adapter = -1;
      for (std::size_t i = 0; i < adapters_.size(); ++i)
        if (!l->module.empty() && adapters_[i].module == l->module) l->adapter = int(i);
    }
  has_acts_ = false;
}

} // namespace prefopt::models
