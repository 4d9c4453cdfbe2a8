// prefopt/models/transformer_layout.hpp — where each weight of a transformer lives in the flat buffer.
//
// One flat float buffer holds every parameter, each a named slice with its Hugging Face name and
// shape as saved. A linear_ref tells the layer code how to multiply by a weight without copying
// it: Hugging Face's GPT-2 stores Conv1D weights [in × out] (y = x·W), the Llama family nn.Linear
// weights [out × in] (y = x·Wᵀ); GPT-2's fused c_attn [C × 3C] is read as three column slices.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "prefopt/models/concepts.hpp"
#include "prefopt/models/transformer_config.hpp"

namespace prefopt::models {

inline constexpr std::size_t no_offset = std::size_t(-1);

struct linear_ref {
  std::size_t w = no_offset;   // first element used (a column offset is already added for slices)
  std::size_t b = no_offset;   // bias (no_offset: none)
  int in = 0, out = 0;
  int ld = 0;                  // row stride of the stored matrix
  bool conv1d = false;         // stored [in × out] (x·W) instead of [out × in] (x·Wᵀ)
  int adapter = -1;            // index of its LoRA adapter, −1 for none
  int adapter_row0 = 0;        // first row of the adapter's B used (fused c_attn: 0, C, 2C)
  std::string module{};        // Hugging Face module path ("transformer.h.0.attn.c_attn")
};

struct layer_layout {
  std::size_t norm1_w = no_offset, norm1_b = no_offset, norm2_w = no_offset, norm2_b = no_offset;
  linear_ref q, k, v, o;
  linear_ref mlp_in;           // GPT-2 c_fc, Llama gate_proj
  linear_ref mlp_up;           // Llama up_proj (unused for GPT-2)
  linear_ref mlp_out;          // GPT-2 mlp.c_proj, Llama down_proj
  std::array<linear_ref*, 7> linears() { return {&q, &k, &v, &o, &mlp_in, &mlp_up, &mlp_out}; }
};

struct transformer_layout {
  std::vector<parameter_slice> slices;
  std::size_t total = 0;
  std::size_t wte = no_offset, wpe = no_offset, normf_w = no_offset, normf_b = no_offset, head = no_offset;
  std::vector<layer_layout> layers;

  // Where precision bf16's weight copy starts (core/bf16.hpp, "The weight copy"): after an untied
  // embedding table, which only the lookup reads (Llama's embed_tokens comes first), else at 0.
  std::size_t weight_copy_begin() const { return head != wte && wte == 0 ? slices.front().size() : 0; }

  static transformer_layout make(const transformer_config& c) {
    transformer_layout L;
    const std::size_t C = std::size_t(c.hidden), F = std::size_t(c.intermediate), V = std::size_t(c.vocab_size);
    const std::size_t QD = std::size_t(c.heads * c.head_dim), KD = std::size_t(c.kv_heads * c.head_dim);
    auto add = [&](std::string name, std::vector<std::size_t> shape, bool decay) {
      parameter_slice s{std::move(name), L.total, std::move(shape), true, decay};
      L.total += s.size();
      L.slices.push_back(std::move(s));
      return L.slices.back().offset;
    };
    if (c.arch == architecture::gpt2) {
      L.wte = add("transformer.wte.weight", {V, C}, true);
      L.wpe = add("transformer.wpe.weight", {std::size_t(c.max_positions), C}, true);
      for (int i = 0; i < c.layers; ++i) {
        const std::string p = "transformer.h." + std::to_string(i) + ".";
        layer_layout l;
        l.norm1_w = add(p + "ln_1.weight", {C}, false);
        l.norm1_b = add(p + "ln_1.bias", {C}, false);
        const std::size_t aw = add(p + "attn.c_attn.weight", {C, 3 * C}, true), ab = add(p + "attn.c_attn.bias", {3 * C}, false);
        l.q = {aw, ab, int(C), int(C), int(3 * C), true, -1, 0, p + "attn.c_attn"};
        l.k = {aw + C, ab + C, int(C), int(C), int(3 * C), true, -1, int(C), p + "attn.c_attn"};
        l.v = {aw + 2 * C, ab + 2 * C, int(C), int(C), int(3 * C), true, -1, int(2 * C), p + "attn.c_attn"};
        const std::size_t pw = add(p + "attn.c_proj.weight", {C, C}, true), pb = add(p + "attn.c_proj.bias", {C}, false);
        l.o = {pw, pb, int(C), int(C), int(C), true, -1, 0, p + "attn.c_proj"};
        l.norm2_w = add(p + "ln_2.weight", {C}, false);
        l.norm2_b = add(p + "ln_2.bias", {C}, false);
        const std::size_t fw = add(p + "mlp.c_fc.weight", {C, F}, true), fb = add(p + "mlp.c_fc.bias", {F}, false);
        l.mlp_in = {fw, fb, int(C), int(F), int(F), true, -1, 0, p + "mlp.c_fc"};
        const std::size_t mw = add(p + "mlp.c_proj.weight", {F, C}, true), mb = add(p + "mlp.c_proj.bias", {C}, false);
        l.mlp_out = {mw, mb, int(F), int(C), int(C), true, -1, 0, p + "mlp.c_proj"};
        L.layers.push_back(l);
      }
      L.normf_w = add("transformer.ln_f.weight", {C}, false);
      L.normf_b = add("transformer.ln_f.bias", {C}, false);
      L.head = L.wte;
    } else {
      L.wte = add("model.embed_tokens.weight", {V, C}, true);
      for (int i = 0; i < c.layers; ++i) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        layer_layout l;
        l.norm1_w = add(p + "input_layernorm.weight", {C}, false);
        auto linear = [&](const std::string& name, std::size_t out, std::size_t in, bool bias) {
          linear_ref r;
          r.w = add(p + name + ".weight", {out, in}, true);
          if (bias) r.b = add(p + name + ".bias", {out}, false);
          r.in = int(in);
          r.out = int(out);
          r.ld = int(in);
          r.module = p + name;
          return r;
        };
        l.q = linear("self_attn.q_proj", QD, C, c.attention_bias);
        l.k = linear("self_attn.k_proj", KD, C, c.attention_bias);
        l.v = linear("self_attn.v_proj", KD, C, c.attention_bias);
        l.o = linear("self_attn.o_proj", C, QD, c.o_bias);
        l.norm2_w = add(p + "post_attention_layernorm.weight", {C}, false);
        l.mlp_in = linear("mlp.gate_proj", F, C, c.mlp_bias);
        l.mlp_up = linear("mlp.up_proj", F, C, c.mlp_bias);
        l.mlp_out = linear("mlp.down_proj", C, F, c.mlp_bias);
        L.layers.push_back(l);
      }
      L.normf_w = add("model.norm.weight", {C}, false);
      L.head = c.tie_word_embeddings ? L.wte : add("lm_head.weight", {V, C}, true);
    }
    return L;
  }
};

} // namespace prefopt::models
