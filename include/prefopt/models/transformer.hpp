// prefopt/models/transformer.hpp — GPT-2 and Llama-family causal LMs written once over backend ops.
//
//   using model = prefopt::models::gpt2<prefopt::backends::eigen>;    // or llama<...>
//   auto m = model::from_pretrained(backend, "path/to/checkpoint");   // config.json + safetensors
//
// Layer by layer, llm.c style: every *_forward keeps what its *_backward needs; shapes are noted
// on each buffer ([T × C]: T packed tokens, C hidden). The architecture policy (GPT-2: learned
// positions, LayerNorm, GELU MLP; Llama: RMSNorm, rotary, SwiGLU, GQA) is a template parameter,
// so each model is its own type. Sequences come as a token_batch (token_batch.hpp); the LM head is
// fused and chunked (lm_head.hpp) and runs only on the rows that predict a scored token.
// LoRA adapters (lora.hpp) are applied inside the linear layers when attached.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "prefopt/core/backend.hpp"
#include "prefopt/core/bf16.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/core/transformer_ops.hpp"
#include "prefopt/models/concepts.hpp"
#include "prefopt/models/kv_cache.hpp"
#include "prefopt/models/lm_head.hpp"
#include "prefopt/models/token_batch.hpp"
#include "prefopt/models/transformer_config.hpp"
#include "prefopt/models/transformer_layout.hpp"

namespace prefopt::models {

namespace arch {
struct gpt2 {
  static constexpr architecture id = architecture::gpt2;
  static constexpr const char* name = "gpt2";
};
struct llama {
  static constexpr architecture id = architecture::llama;
  static constexpr const char* name = "llama";
};
} // namespace arch

// LoRA adapters as the transformer sees them (lora.hpp builds and names them).
struct adapter_ref {
  std::string module;          // Hugging Face module path, e.g. "model.layers.0.self_attn.q_proj"
  int in = 0, out = 0, rank = 0;
  std::size_t a = 0, b = 0;    // offsets of lora_A [r × in] and lora_B [out × r] in the adapter buffer
};

template <Backend B, class Arch> class transformer {
  static_assert(require_core_backend_ops<B>());
  static_assert(require_transformer_ops<B>());

public:
  using backend_type = B;
  using input_type = token_batch;
  using arch_type = Arch;

  transformer(B backend, transformer_config config)
      : be_(std::move(backend)), cfg_(std::move(config)), layout_(transformer_layout::make(cfg_)) {
    if (cfg_.arch != Arch::id)
      throw config_error("config.json: field 'model_type'",
                         "'" + cfg_.model_type + "' does not fit a " + std::string(Arch::name) + " model type");
    params_ = be_.template allocate<float>(layout_.total);
    if constexpr (Arch::id == architecture::llama) {
      const auto f = cfg_.inv_freq();
      inv_freq_ = be_.template allocate<float>(f.size());
      be_.upload(std::span<const float>(f), inv_freq_.span());
    }
  }

  static std::size_t input_sequences(const input_type& in) { return std::size_t(in.sequences); }
  static std::vector<int> completion_tokens(const input_type& in) { return in.completion_tokens(); }

  const transformer_config& config() const { return cfg_; }
  const transformer_layout& layout() const { return layout_; }
  B& backend() { return be_; }
  lm_head_chunked<B>& head() { return head_; }

  // ---- parameters ------------------------------------------------------------------------
  // The trainable parameters: the whole model, or only the LoRA adapters when attached.
  std::span<float> parameters() { return adapters_.empty() ? params_.span() : adapter_params_.span(); }
  std::span<float> gradients() {
    ensure_grads();
    return adapters_.empty() ? grads_.span() : adapter_grads_.span();
  }
  const std::vector<parameter_slice>& parameter_slices() const {
    return adapters_.empty() ? layout_.slices : adapter_slices_;
  }
  void zero_grad() {
    ensure_grads();
    be_.fill(gradients(), 0.0f);
  }
  // The base model's weights, whatever is trained.
  std::span<float> base_parameters() { return params_.span(); }
  const std::vector<parameter_slice>& base_slices() const { return layout_.slices; }

  // precision bf16's copy of the weights (core/bf16.hpp, "The weight copy"): under bf16, on a
  // backend with backend_ops::bf16_operands, every forward pass first writes the bf16 bits of the
  // flat parameter buffer (2 bytes per base parameter; an untied embed_tokens, which only the
  // embedding lookup reads, is left out: weight_copy_parameters()) and that forward and its
  // backward multiply the copy instead of rounding each weight per gemm. Results are the same bit
  // for bit with the copy off (set_weight_copy(false): per-call rounding, no memory). Under fp32
  // no copy is held. weight_copy_bytes(): the memory the copy holds now.
  void set_weight_copy(bool on) {
    weight_copy_ = on;
    if (!on) release_weight_copy();
  }
  bool weight_copy() const { return weight_copy_; }
  std::size_t weight_copy_bytes() const { return w16_.size() * sizeof(std::uint16_t); }
  // The base parameters the copy holds: all but an untied embedding table (the buffer's first slice).
  std::size_t weight_copy_parameters() const { return layout_.total - copy_begin(); }

  // precision bf16's stored norm outputs (core/bf16.hpp, "Stored norm outputs"): under bf16, on a
  // backend with backend_ops::bf16_operands, each layer keeps its two norm outputs n1, n2 (inputs
  // of matrix products only) as bf16 bits, 2 bytes instead of 4 per value; the products read them
  // directly. Results are the same bit for bit with it off (set_activation_copy(false): fp32, each
  // product rounds them per call). Not while LoRA adapter dropout runs (the adapters' input is
  // dropout of the unrounded values): n1, n2 stay fp32 then. activation_bytes(): the memory the
  // layers' kept activations hold now (not the workspaces shared by all layers).
  void set_activation_copy(bool on) { activation_copy_ = on; }
  bool activation_copy() const { return activation_copy_; }
  std::size_t activation_bytes() const;

  // Attach LoRA adapters (lora.hpp); the base weights become frozen.
  // dropout: inverted dropout on each adapter's input (PEFT's lora_dropout) in training forwards
  // (forward_options::dropout_seed set); the base path never sees it.
  void attach_adapters(std::vector<adapter_ref> refs, std::vector<parameter_slice> slices, std::size_t total,
                       double scale, double dropout = 0.0);
  const std::vector<adapter_ref>& adapters() const { return adapters_; }
  double adapter_scale() const { return adapter_scale_; }
  double adapter_dropout() const { return adapter_dropout_; }

  // Activation (gradient) checkpointing, transformers' gradient_checkpointing: a training forward
  // keeps only each layer's input x [T × C] (plus one layer's full activations, the workspace);
  // backward recomputes each layer's forward into that workspace (same ops in the same order, LoRA
  // dropout masks redrawn from the seed), then runs its backward. Log-probs and gradients are
  // bit-equal to the run without it; activation memory falls from L·(a layer) to L·T·C + a layer.
  void set_gradient_checkpointing(bool on) {
    if (on == checkpointing_) return;
    checkpointing_ = on;
    has_acts_ = false;
    if (on && acts_.size() > 1) acts_.resize(1);  // the other layers' full activations are no longer kept
  }
  bool gradient_checkpointing() const { return checkpointing_; }

  // ---- forward / backward ------------------------------------------------------------------
  void forward(const input_type& in, sequence_logps& out, const forward_options& opt = {});
  void backward(std::span<const double> d_logp);
  // Data parallel overlap (train/trainer.hpp): while set, backward calls ready(offset, count) as
  // soon as the gradients [offset, offset + count) of gradients() are final for this backward —
  // the final norm (and an untied head) first, then each layer from the last to the first, the
  // embeddings last; every value exactly once. The flat layout stores them in the opposite order
  // (embeddings first), so the buffer completes from its end. Empty: no calls.
  void set_gradients_ready(std::function<void(std::size_t, std::size_t)> ready) { grads_ready_ = std::move(ready); }

  // The fused head (lm_head_chunked::fused; code in detail/transformer_head.hpp), for a batch of
  // pairs (sequences [0, n) chosen, [n, 2n) rejected) and a loss whose d loss / d log-prob of a pair
  // is known from that pair's own outputs: a training forward that runs the head's backward while
  // it holds each chunk's logits, without recomputing them. grad(out, first, count, d) is called
  // once per pair (a chunk's pairs [first, first + count) at once) when out's entries of those
  // pairs' sequences (logp, tokens, wpo_aligned) are final, and writes d[i] and d[n + i] for each
  // pair i of them. out is complete when forward_fused returns (token statistics included);
  // backward_fused() then runs the rest of backward from the head's d hidden.
  using head_gradient = std::function<void(const sequence_logps&, std::size_t, std::size_t, std::span<double>)>;
  void forward_fused(const input_type& in, sequence_logps& out, const forward_options& opt, const head_gradient& grad);
  void backward_fused();

  // log softmax of the next-token distribution after token at[r] of `in`, for every vocabulary
  // entry: [rows × V] (sampling; one head product per row instead of V scored targets).
  std::vector<float> next_token_logprobs(const input_type& in, std::span<const std::int32_t> at,
                                         const forward_options& opt = {.keep_activations = false});

  // Generation with a key/value cache (models/kv_cache.hpp, detail/transformer_decode.hpp): runs
  // only the step's new tokens, appends their keys and values to their slots, and returns the
  // next-token logits [rows × V] after each row's last token (or after every new token).
  std::vector<float> cached_logits(kv_cache<B>& cache, const cache_step& step, const forward_options& opt = {});
  // The body alone (reward_model.hpp; code in detail/transformer_hidden.hpp): runs `in` (its
  // predictions are ignored) and writes the final-norm hidden states of tokens `at` to `hidden`
  // [R × C] in backend memory; backward_hidden takes d loss / d hidden [R × C] of that forward.
  void forward_hidden(const input_type& in, std::span<const std::int32_t> at, std::span<float> hidden,
                      const forward_options& opt = {});
  void backward_hidden(std::span<const float> d_hidden);

private:
  using fbuf = typename B::template buffer<float>;
  using ibuf = typename B::template buffer<std::int32_t>;
  using hbuf = typename B::template buffer<std::uint16_t>;  // bf16 bits (backend_ops::bf16_operands only)
  // What one layer keeps for backward; shapes in the comments ([T × C] etc.). The MLP activation
  // (GPT-2 gelu(a), Llama swiglu(gate, up)) is not kept: it goes to mlp_act_ and backward recomputes it.
  struct layer_acts {
    fbuf x;                  // [T × C]  the layer's input (residual stream)
    fbuf n1, mean1, rstd1;   // [T × C], [T], [T]  first norm (n1 empty while norms_bf16_: see n1h)
    hbuf n1h, n2h;           // [T × C] ×2  n1, n2 as bf16 bits while norms_bf16_ (set_activation_copy)
    fbuf q, k, v;            // [T × Hq·D], [T × Hkv·D] ×2  (after rotary for Llama)
    fbuf lse;                // [T × Hq]  attention log-sum-exp per query and head (core/transformer_ops.hpp)
    fbuf att;                // [T × Hq·D]  attention output before o_proj
    fbuf xmid;               // [T × C]  residual after attention
    fbuf n2, mean2, rstd2;   // [T × C], [T], [T]  second norm (n2 empty while norms_bf16_)
    fbuf a, b;               // [T × F]  GPT-2: a = c_fc out (b unused); Llama: a = gate, b = up
  };

  void ensure_grads();
  void ensure_acts(std::size_t layers_kept, int T);
  void ensure_backward(int T);
  void grow(fbuf& b, std::size_t n) {
    if (b.size() < n) b = be_.template allocate<float>(n);
  }
  void grow(ibuf& b, std::size_t n) {
    if (b.size() < n) b = be_.template allocate<std::int32_t>(n);
  }
  void grow(hbuf& b, std::size_t n) {
    if constexpr (backend_ops::bf16_operands<B>) {
      if (b.size() < n) b = be_.template allocate<std::uint16_t>(n);
    }
  }
  void upload_batch(const input_type& in);
  void forward_impl(const input_type& in, sequence_logps& out, const forward_options& opt, const head_gradient* fused);
  void head_forward(const input_type& in, sequence_logps& out, const forward_options& opt, const head_gradient* fused);
  void order_rows_by_pair(const input_type& in);  // predictions in pair order (fused head); pair_bounds_
  void backward_from_head_rows();          // dhrows_ scattered to d nf, then body_backward
  void norm_forward(std::size_t w, std::size_t b, std::span<const float> x, fbuf& out, fbuf& mean, fbuf& rstd, int T);
  // A layer's norm into its kept output: fp32 out, or (norms_bf16_) norm_out_ converted into out16.
  void norm_keep(std::size_t w, std::size_t b, std::span<const float> x, fbuf& out, hbuf& out16, fbuf& mean, fbuf& rstd, int T);
  // A kept norm output [T × C] as the products read it: bf16 bits while norms_bf16_, else fp32.
  gemm_operand norm_operand(const fbuf& out, const hbuf& out16, int T) const;
  bool choose_norm_storage() const;  // norms_bf16_ for the forward pass that starts
  void mlp_activation(const layer_acts& a, int T);  // mlp_act_ = gelu(a) or swiglu(a, b)
  void norm_backward(std::size_t w, std::size_t b, std::span<const float> dout, std::span<const float> x, const fbuf& mean,
                     const fbuf& rstd, std::span<float> dx, int T);
  void linear_forward(const linear_ref& l, gemm_operand x, std::span<float> y, int T, bool keep);
  void linear_backward(const linear_ref& l, gemm_operand x, std::span<const float> dy, std::span<float> dx,
                       bool accumulate_dx, int T);
  void qkv_forward(std::size_t i, layer_acts& a, int T, bool keep);
  void mlp_forward(std::size_t i, layer_acts& a, std::span<float> x_out, int T, bool keep);
  void layer_forward(std::size_t i, layer_acts& a, std::span<float> x_out, int T, bool keep);
  void layer_backward(std::size_t i, layer_acts& a, std::span<float> dx, int T);
  void layers_backward_checkpointed(std::span<float> dx, int T);
  void body_backward(int T);
  void announce_layer(std::size_t l);  // grads_ready_ for layer l's range of gradients()
  void cached_layer_forward(std::size_t i, layer_acts& a, std::span<float> x_out, int T, kv_cache<B>& cache,
                            std::span<const std::int32_t> slot, std::span<const std::int32_t> cache_row);
  void refresh_weight_copy();  // at the start of every forward pass (detail/transformer_linear.hpp)
  void release_weight_copy() {
    w16_ = typename B::template buffer<std::uint16_t>{};
    w16_live_ = false;
  }
  // The weight copy from offset off (n elements, or to the end), or empty: gemm rounds per call.
  std::span<const std::uint16_t> wcopy(std::size_t off, std::size_t n = std::dynamic_extent);
  std::size_t copy_begin() const { return layout_.weight_copy_begin(); }  // where the weight copy starts
  std::span<float> pspan(std::size_t off, std::size_t n) { return params_.span().subspan(off, n); }
  std::span<float> gspan(std::size_t off, std::size_t n) { return grads_.span().subspan(off, n); }
  bool base_trainable() const { return adapters_.empty(); }

  B be_;
  transformer_config cfg_;
  transformer_layout layout_;
  fbuf params_, grads_, inv_freq_;
  std::vector<adapter_ref> adapters_;
  std::vector<parameter_slice> adapter_slices_;
  fbuf adapter_params_, adapter_grads_;
  std::vector<fbuf> lora_xa_;              // [T × r] per adapter: x·Aᵀ kept for backward
  double adapter_scale_ = 0.0;
  double adapter_dropout_ = 0.0;
  std::optional<std::uint64_t> dropout_seed_{};  // the seed of this forward's adapter dropout (none: off)
  fbuf lora_xd_;                           // [T × max in] dropped adapter input (recomputed in backward)
  bool use_adapters_ = true;               // this forward runs the adapters
  lm_head_chunked<B> head_{};
  std::vector<layer_acts> acts_;
  fbuf xf_, nf_, meanf_, rstdf_;            // [T × C] final residual and its norm
  fbuf mlp_act_;                            // [T × F] the MLP activation of the layer running (recomputed in backward)
  fbuf norm_out_;                           // [T × C] a norm's fp32 output before it is kept as bf16 (norms_bf16_)
  fbuf hrows_, dhrows_, lse_, logp_, lss_;  // [H × C], [H × C], [H] ×3
  fbuf entropy_, mean_logit_, top1_;        // [H] ×3, with forward_options::token_stats
  // backward workspace: dx_, dn_ [T × C]; df1_..df3_ [T × F]; datt_, dq_ [T × Hq·D]; dk_, dv_ [T × Hkv·D]
  fbuf dx_, dn_, df1_, df2_, df3_, datt_, dq_, dk_, dv_, lora_dxa_, dnorm_w_, dnorm_b_;
  ibuf tokens_, positions_, segment_, row_offsets_, predict_from_, predict_token_;
  std::vector<std::int32_t> host_offsets_, predict_sequence_;
  std::vector<float> token_weight_;         // [H] LD-DPO weights (1 when unused)
  std::vector<int> pair_bounds_;            // fused head: pair p's predictions are rows [b[p], b[p + 1])
  bool head_done_ = false;                  // a fused forward ran the head's backward already
  int T_ = 0, H_ = 0, max_row_ = 0;
  bool has_acts_ = false;
  bool checkpointing_ = false;              // training forwards keep acts_[0] (the workspace) and acts_[l > 0].x only
  std::function<void(std::size_t, std::size_t)> grads_ready_{};  // set_gradients_ready
  typename B::template buffer<std::uint16_t> w16_{};  // bf16 bits of params_ (refresh_weight_copy)
  bool weight_copy_ = true;                  // set_weight_copy
  bool w16_live_ = false;                    // w16_ holds this forward's weights
  bool activation_copy_ = true;              // set_activation_copy
  bool norms_bf16_ = false;                  // this forward keeps n1, n2 as bf16 bits
};

template <Backend B> using gpt2 = transformer<B, arch::gpt2>;
template <Backend B> using llama = transformer<B, arch::llama>;

} // namespace prefopt::models

#include "prefopt/models/detail/transformer_impl.hpp"
#include "prefopt/models/detail/transformer_acts.hpp"
#include "prefopt/models/detail/transformer_head.hpp"
#include "prefopt/models/detail/transformer_linear.hpp"
#include "prefopt/models/detail/transformer_decode.hpp"
#include "prefopt/models/detail/transformer_hidden.hpp"
