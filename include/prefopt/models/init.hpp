// prefopt/models/init.hpp — seeded weight initialization of a transformer created in code.
//
//   models::gpt2<B> m(B{}, config);
//   models::init_weights(m, /*seed=*/42);          // Hugging Face's GPT-2 initialization
//
// As transformers' GPT2PreTrainedModel._init_weights (and LlamaPreTrainedModel's):
//   every linear weight, the token embedding, GPT-2's position embedding and an untied lm_head
//                               ~ N(0, σ²),  σ = initializer_range (config.json; 0.02 by default)
//   GPT-2's residual projections (attn.c_proj.weight, mlp.c_proj.weight; the GPT-2 paper's scheme)
//                               ~ N(0, (σ/√(2·n_layer))²)
//   biases                      = 0
//   LayerNorm / RMSNorm weights = 1
//   the token embedding's padding row (Llama family with a pad_token_id, see transformer_config's
//   embedding_padding_row; a tied head shares it) = 0, after its draws, as nn.Embedding(padding_idx)
// The Llama family has no residual scaling in transformers, so it is applied to GPT-2 only.
// Draws go slice by slice in layout order, element by element, from a Box–Muller normal over
// std::mt19937_64(seed) (detail/random.hpp): a seed gives the same weights with every compiler
// and standard library. Only the base weights are set; attached LoRA adapters are left alone.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/models/detail/random.hpp"
#include "prefopt/models/transformer.hpp"

namespace prefopt::models {

struct init_options {
  double initializer_range = 0.02;         // σ
  bool scale_residual_projections = true;  // GPT-2: c_proj weights get σ/√(2·n_layer)

  void validate() const {
    if (!(initializer_range >= 0.0) || !std::isfinite(initializer_range))
      throw config_error("init_options: field 'initializer_range'", "must be a finite value >= 0");
  }
};

// How one slice of a transformer's parameters is initialized (see the top of this file).
struct init_rule {
  enum kind_t { normal, zeros, ones } kind = normal;
  double stddev = 0.0;  // for normal
};

template <Backend B, class Arch>
init_rule init_rule_of(const transformer<B, Arch>& m, const parameter_slice& s, const init_options& opt = {}) {
  const auto& L = m.layout();
  bool norm_weight = s.offset == L.normf_w, residual = false;
  for (const auto& l : L.layers) {
    norm_weight = norm_weight || s.offset == l.norm1_w || s.offset == l.norm2_w;
    residual = residual || s.offset == l.o.w || s.offset == l.mlp_out.w;
  }
  if (norm_weight) return {init_rule::ones, 0.0};
  if (s.name.ends_with(".bias")) return {init_rule::zeros, 0.0};
  double sd = opt.initializer_range;
  if (residual && Arch::id == architecture::gpt2 && opt.scale_residual_projections)
    sd /= std::sqrt(2.0 * double(m.config().layers));
  return {init_rule::normal, sd};
}

// Sets every base weight of `m` as described at the top of this file.
template <Backend B, class Arch>
void init_weights(transformer<B, Arch>& m, std::uint64_t seed, const init_options& opt = {}) {
  opt.validate();
  detail::normal_source normal(seed);
  std::vector<float> host;
  for (const auto& s : m.base_slices()) {
    const init_rule r = init_rule_of(m, s, opt);
    host.assign(s.size(), r.kind == init_rule::ones ? 1.0f : 0.0f);
    if (r.kind == init_rule::normal)
      for (auto& v : host) v = float(r.stddev * normal());
    if (const int pad = m.config().embedding_padding_row; pad >= 0 && s.offset == m.layout().wte) {
      const std::size_t C = std::size_t(m.config().hidden);
      std::fill_n(host.begin() + std::ptrdiff_t(std::size_t(pad) * C), C, 0.0f);
    }
    m.backend().upload(std::span<const float>(host), m.base_parameters().subspan(s.offset, s.size()));
  }
}

} // namespace prefopt::models
