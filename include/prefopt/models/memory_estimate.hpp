// prefopt/models/memory_estimate.hpp — how much memory a run will need, known before it allocates.
//
// A config.json of legal sizes can still describe a model no machine holds (n_positions 10^9 gives
// GPT-2 a position table of 3 TB), and a run config can ask for activations of any size. Instead of
// a std::bad_alloc after gigabytes, naming nothing, estimate_memory() adds up what a run holds at
// its peak, from the shapes alone (float32, bf16 where said):
//   parameters   the model's flat buffer (transformer_layout), plus LoRA adapters when configured,
//                plus under precision bf16 the model's bf16 copy of its base weights (2 bytes each)
//   gradients    one per trainable parameter (the adapters only, with LoRA)
//   optimizer    AdamW: two moments per trainable parameter; SGD with momentum: one; SGD: none
//   reference    a second copy of the base model (reference strategies frozen, synced, precomputed
//                without LoRA while the cache is being filled), with its own bf16 copy under bf16
//   activations  what forward keeps for backward, per layer and token (transformer's layer_acts):
//                x, the residual, q, k, v, the attention output and its log-sum-exp (heads), the
//                norms' mean and rstd (4), the MLP's inputs to its activation (GPT-2: a; Llama:
//                gate and up; the activation itself is recomputed in backward), each adapter's
//                x·Aᵀ, all fp32, and the two norm outputs, fp32 or (bf16_norm_outputs) 2 bytes
//                each; plus attention probabilities heads × row length² per row; one more layer's
//                worth for the backward pass's scratch and the reference forward; and the
//                workspaces all layers share, per token: the final residual and its norm (2C), the
//                MLP activation (F) and, with bf16 norm outputs, a norm's fp32 output (C).
//                With gradient checkpointing (transformer::set_gradient_checkpointing) only each
//                layer's input x (C floats per token) is kept, plus one layer's full activations
//                (the workspace the backward recomputes into) and that scratch layer.
// Every row is taken to be as long as the longest (give the data's longest, not max_length, or
// the figure grows with the square of a bound no row reaches). The figure is an upper bound of the
// same order as the true peak, not a measurement; check_memory() compares it with the memory
// of the machine (the smaller of physical memory and the cgroup limit) or a configured limit.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>
#include <unistd.h>

#include "prefopt/core/error.hpp"
#include "prefopt/models/lora.hpp"
#include "prefopt/models/transformer_layout.hpp"

namespace prefopt::models {

struct run_shape {
  std::size_t rows = 2;               // rows per micro-batch (pairs: 2 per pair, 1 with prefix sharing)
  std::size_t row_length = 1024;      // tokens of the longest row
  bool training = true;               // false: forward only (evaluation, reference log-probs)
  int optimizer_slots = 2;            // per trainable parameter: AdamW 2, SGD with momentum 1, SGD 0
  bool reference_copy = false;        // a second copy of the base model is held
  int lora_rank = 0;                  // 0: full fine-tuning
  std::vector<std::string> lora_targets{};
  bool gradient_checkpointing = false;  // training keeps each layer's input only (recomputed in backward)
  // precision bf16 (core/bf16.hpp): each model held (the policy, a reference copy) keeps a bf16
  // copy of its base weights but an untied embedding table, 2 bytes per parameter
  // (transformer::weight_copy_bytes).
  bool bf16_weight_copy = false;
  // precision bf16's stored norm outputs (transformer::set_activation_copy, on by default): each
  // layer keeps n1, n2 at 2 bytes per value. Not while LoRA adapter dropout trains (fp32 then).
  bool bf16_norm_outputs = false;
};

struct memory_estimate {
  std::uint64_t parameters = 0, gradients = 0, optimizer = 0, reference = 0, activations = 0;  // bytes
  [[nodiscard]] std::uint64_t total() const noexcept { return parameters + gradients + optimizer + reference + activations; }
};

// The unit a figure reads best in: GiB from 1 GiB up, else MiB (tiny test models: KiB).
struct byte_unit {
  double size;
  const char* name;
};
inline byte_unit unit_for(std::uint64_t bytes) {
  if (bytes >= (1ull << 30)) return {double(1ull << 30), "GiB"};
  if (bytes >= (1ull << 20)) return {double(1ull << 20), "MiB"};
  return {1024.0, "KiB"};
}
inline std::string format_in(std::uint64_t bytes, byte_unit u, bool with_name) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.2f", double(bytes) / u.size);
  return with_name ? std::string(buf) + " " + u.name : std::string(buf);
}
inline std::string format_bytes(std::uint64_t bytes) { return format_in(bytes, unit_for(bytes), true); }

// "this run needs about 2.31 GiB (parameters 0.46, gradients 0.46, optimizer 0.93, reference 0.46,
// activations 0.01)", the parts in the unit of the total.
inline std::string describe(const memory_estimate& m) {
  const byte_unit u = unit_for(m.total());
  auto g = [&](std::uint64_t b) { return format_in(b, u, false); };
  return "this run needs about " + format_bytes(m.total()) + " (parameters " + g(m.parameters) + ", gradients " + g(m.gradients) +
         ", optimizer " + g(m.optimizer) + ", reference " + g(m.reference) + ", activations " + g(m.activations) + ")";
}

namespace detail {
// a·b, saturating at 2^64 − 1 (the estimate of an absurd shape must not wrap to a small number).
inline std::uint64_t sat_mul(std::uint64_t a, std::uint64_t b) {
  if (a != 0 && b > UINT64_MAX / a) return UINT64_MAX;
  return a * b;
}
inline std::uint64_t sat_add(std::uint64_t a, std::uint64_t b) { return b > UINT64_MAX - a ? UINT64_MAX : a + b; }
} // namespace detail

// The bytes one layer keeps for backward per token (transformer's layer_acts, without LoRA): x, the
// residual, q, k, v, attention output and log-sum-exp, the norms' mean and rstd, the MLP's inputs
// to its activation, in fp32; the two norm outputs at 2 bytes (bf16_norm_outputs) or 4.
inline std::uint64_t activation_bytes_per_token(const transformer_config& c, bool bf16_norm_outputs) {
  const std::uint64_t C = std::uint64_t(c.hidden), F = std::uint64_t(c.intermediate);
  const std::uint64_t QD = std::uint64_t(c.heads) * std::uint64_t(c.head_dim), KD = std::uint64_t(c.kv_heads) * std::uint64_t(c.head_dim);
  const std::uint64_t mlp_kept = c.arch == architecture::gpt2 ? F : 2 * F;  // GPT-2 a; Llama gate, up
  const std::uint64_t floats = 2 * C + 2 * QD + 2 * KD + std::uint64_t(c.heads) + 4 + mlp_kept;
  return 4 * floats + (bf16_norm_outputs ? 2 : 4) * 2 * C;
}

// The estimate for a model of configuration `c` (already validated) run as `r`.
inline memory_estimate estimate_memory(const transformer_config& c, const run_shape& r) {
  using detail::sat_add, detail::sat_mul;
  const transformer_layout layout = transformer_layout::make(c);
  const std::uint64_t base = layout.total;
  // LoRA adapters: r·(in + out) for each matched module, as lora<Model> lays them out.
  std::uint64_t adapters = 0, adapter_act = 0;  // adapter_act: floats kept per token and layer
  if (r.lora_rank > 0) {
    std::vector<std::string> seen;
    for (const auto& layer : layout.layers)
      for (const linear_ref* l : const_cast<layer_layout&>(layer).linears()) {
        if (l->module.empty() || std::find(seen.begin(), seen.end(), l->module) != seen.end()) continue;
        bool hit = false;
        for (const auto& t : r.lora_targets) hit = hit || lora_config::matches(l->module, t);
        if (!hit) continue;
        seen.push_back(l->module);
        const std::uint64_t out = c.arch == architecture::gpt2 && l->module.ends_with("c_attn") ? 3ull * l->out : std::uint64_t(l->out);
        adapters = sat_add(adapters, sat_mul(std::uint64_t(r.lora_rank), std::uint64_t(l->in) + out));
      }
    adapter_act = sat_mul(std::uint64_t(r.lora_rank), seen.size() / std::max<std::size_t>(layout.layers.size(), 1) + 1);
  }
  const std::uint64_t trainable = r.lora_rank > 0 ? adapters : base;
  memory_estimate m;
  // bytes: the flat buffer from where the copy starts (an untied embedding table is not copied)
  const std::uint64_t copy = r.bf16_weight_copy ? sat_mul(base - layout.weight_copy_begin(), 2) : 0;
  m.parameters = sat_add(sat_mul(sat_add(base, adapters), 4), copy);
  if (r.training) {
    m.gradients = sat_mul(trainable, 4);
    m.optimizer = sat_mul(sat_mul(trainable, std::uint64_t(std::max(r.optimizer_slots, 0))), 4);
  }
  if (r.reference_copy) m.reference = sat_add(sat_mul(base, 4), copy);
  // Activations.
  const std::uint64_t C = std::uint64_t(c.hidden), F = std::uint64_t(c.intermediate), Hq = std::uint64_t(c.heads);
  const std::uint64_t rows = r.rows, width = r.row_length;
  const std::uint64_t tokens = sat_mul(rows, width);
  const std::uint64_t per_token = activation_bytes_per_token(c, r.bf16_norm_outputs) + sat_mul(adapter_act, 4);  // bytes
  const std::uint64_t per_layer = sat_add(sat_mul(tokens, per_token), sat_mul(sat_mul(sat_mul(rows, Hq), sat_mul(width, width)), 4));
  const std::uint64_t layers = std::uint64_t(c.layers);
  const bool checkpointed = r.training && r.gradient_checkpointing;
  const std::uint64_t kept_layers = checkpointed ? 2 : r.training ? layers + 1 : 1;
  const std::uint64_t kept_inputs = checkpointed ? sat_mul(sat_mul(tokens, C), layers) : 0;  // x of every layer
  const std::uint64_t workspace = sat_mul(tokens, 2 * C + F + (r.bf16_norm_outputs ? C : 0));  // floats
  m.activations = sat_add(sat_mul(per_layer, kept_layers), sat_mul(sat_add(kept_inputs, workspace), 4));
  return m;
}

// The memory of this machine in bytes: physical memory, or the cgroup (v2, then v1) limit when that
// is smaller. 0 when unknown.
inline std::uint64_t machine_memory_bytes() {
  std::uint64_t mem = 0;
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page > 0) mem = std::uint64_t(pages) * std::uint64_t(page);
  for (const char* file : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in(file);
    std::string text;
    if (!(in >> text) || text.empty() || text.find_first_not_of("0123456789") != std::string::npos) continue;
    try {
      const std::uint64_t limit = std::stoull(text);
      if (limit > 0 && (mem == 0 || limit < mem)) mem = limit;
    } catch (const std::exception&) {  // out of range: no limit
    }
    break;
  }
  return mem;
}

// Throws config_error at `where` when `m` exceeds the limit: `limit_gib` > 0 GiB, or the machine's
// memory when `limit_gib` is 0; a negative `limit_gib` turns the check off. `how_to_raise` ends the
// message ("set training.memory_limit_gib").
inline void check_memory(const memory_estimate& m, double limit_gib, const std::string& where, const std::string& how_to_raise) {
  if (limit_gib < 0.0) return;
  const std::uint64_t limit = limit_gib > 0.0 ? std::uint64_t(limit_gib * double(1ull << 30)) : machine_memory_bytes();
  if (limit == 0 || m.total() <= limit) return;
  throw config_error(where, describe(m) + ", more than the " + format_bytes(limit) +
                                (limit_gib > 0.0 ? " of the configured limit" : " of memory this machine has") + "; " + how_to_raise);
}

} // namespace prefopt::models
