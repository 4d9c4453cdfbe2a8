// prefopt/core/transformer_ops.hpp — the op group a transformer needs, beyond core/backend.hpp.
//
// Activations are row-major [T × C] over the T tokens of a packed batch. Every op here has its
// backward next to it; backward ops ACCUMULATE into parameter gradients (dw += ...) and, where
// marked, into input gradients, so residual branches and tied weights need no extra adds.
// Reductions accumulate in float at least (the CPU backends use double for row moments, sums over
// tokens and LM-head sums); softmax-like ops use a max shift.
// Sizes an op is not given come from its first [T × C] argument: T = x.size() / C in forward
// ops, dout.size() / C in backward ops, out.size() / N in bias_forward, and it must divide
// exactly; n = x.size() (gelu) or gate.size() (swiglu); T = positions.size() (rope);
// ids.size() tokens (embedding). Every other buffer must hold at
// least what the op reads or writes (it may be longer). Bad sizes or out-of-range ids/targets
// throw prefopt::shape_error naming the op and the argument.
// Attention sees a packed batch through attention_layout: rows of tokens, each token with a
// segment id; token t may attend to token s of the same row iff s ≤ t (row order) and
// (segment[s] == segment[t] or segment[s] == 0). Segment 0 is a shared prefix (the prompt);
// prompt + chosen + rejected in one row (prefix sharing) gives chosen and rejected tokens the
// prompt and their own completion only. Segment −1 marks padding (attends to nothing, is never
// attended to, output 0); padding may sit anywhere in a row. The rows cover the batch:
// row_offsets[0] = 0, row_offsets non-decreasing, row_offsets[rows] = shape.tokens, every row at
// most max_row_length tokens; segment ids are ≥ −1.
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "prefopt/core/backend.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/core/random.hpp"

namespace prefopt {

struct attention_layout {
  int rows = 0;                          // packed rows
  int max_row_length = 0;                // longest row (bounds every row; sizes backend scratch)
  std::span<const std::int32_t> row_offsets;  // rows + 1 token offsets (backend memory)
  std::span<const std::int32_t> segment;      // T segment ids (backend memory)
};

// Sizes of one attention call. q: [T × Hq·D], k, v: [T × Hkv·D], out: [T × Hq·D]; Hq % Hkv == 0
// (grouped-query attention: query head h reads key/value head h / (Hq/Hkv)). Scale 1/sqrt(D).
// lse: attention_lse_size() = T·Hq floats the forward keeps for backward, one log-sum-exp of the
// scaled, masked scores per query token and head: lse[t·Hq + h] = log Σ_{j visible} exp(q_t·k_j/√D)
// (head h, keys of t's row), +∞ for a padding query (it sees no key; exp(s − lse) is then 0).
// Backward recomputes the probabilities P = exp(s − lse) from q, k and lse (FlashAttention;
// core/flash_attention.hpp holds the tile math every backend shares) and needs the forward's out
// for Δ = rowsum(dout ∘ out): memory O(T·Hq) instead of O(Hq·Σ L_r²). The lse is a plain,
// backend-independent value: any backend's forward may feed any backend's backward.
struct attention_shape {
  int tokens = 0, q_heads = 0, kv_heads = 0, head_dim = 0;
};

// Sizes of one attention_cached call (core/cached_attention.hpp): q, out [T × Hq·D] for T new
// tokens; k_cache, v_cache [slots × capacity × Hkv·D]; slot, position [T] ints in backend memory,
// 0 ≤ slot < slots, 0 ≤ position < capacity. Token t attends to its slot's keys 0..position[t]
// (its own key already written there). Inference only: there is no backward.
struct cached_attention_shape {
  int tokens = 0, q_heads = 0, kv_heads = 0, head_dim = 0, slots = 0, capacity = 0;
};

// LM-head row statistics over one chunk of logits [rows × V] (see lm_head_* below):
// lse[r] = logsumexp(z_r); logp[r] = z_r[target_r] − lse[r] (0 where target_r < 0);
// optional (non-empty spans): log_sum_sq[r] = log Σ_v p_v² (WPO), entropy[r] = −Σ p log p,
// mean_logit[r] = mean_v z_r[v] (TRL's logits/* metrics), top1[r] = 1 where the target is the
// row's argmax as torch.argmax picks it (the first index of the maximum; a NaN target logit is
// not), else 0 (0 without target: TRL's mean_token_accuracy); an empty span skips that statistic.
// A target ≥ V throws; any negative target means "no target".
struct lm_head_stats {
  std::span<float> lse, logp, log_sum_sq, entropy, mean_logit, top1;
};

namespace backend_ops {
template <class B>
concept transformer = requires(B& be, std::span<float> f, std::span<const float> cf, std::span<const std::int32_t> ci,
                               int n, float x, std::uint64_t seed, const attention_layout& lay,
                               const attention_shape& sh, const lm_head_stats& st,
                               const cached_attention_shape& csh) {
  // out[i,:] = table[ids[i],:]  /  dtable[ids[i],:] += dout[i,:]     (C = n columns)
  be.embedding_forward(ci, cf, n, f);                          // ids, table, C, out
  be.embedding_backward(ci, cf, n, f);                         // ids, dout, C, dtable (vocab = size / C)
  // y += x (elementwise)
  be.add_inplace(cf, f);
  // out[t,:] += bias  /  dbias += Σ_t dout[t,:]                  (N = n columns)
  be.bias_forward(cf, n, f);                                   // bias, N, out
  be.bias_backward(cf, n, f);                                  // dout, N, dbias
  // LayerNorm: out = (x − μ)·rstd·w + b, rstd = 1/sqrt(var + eps), biased variance; saves μ, rstd [T]
  be.layernorm_forward(cf, cf, cf, n, x, f, f, f);             // x, w, b, C, eps, out, mean, rstd
  // dx += ..., dw += Σ_t dout·x̂, db += Σ_t dout
  be.layernorm_backward(cf, cf, cf, cf, cf, n, f, f, f);       // dout, x, w, mean, rstd, C, dx, dw, db
  // RMSNorm (Llama): out = x·rstd·w, rstd = 1/sqrt(mean(x²) + eps); saves rstd [T]
  be.rmsnorm_forward(cf, cf, n, x, f, f);                      // x, w, C, eps, out, rstd
  be.rmsnorm_backward(cf, cf, cf, cf, n, f, f);                // dout, x, w, rstd, C, dx(+=), dw(+=)
  // GELU, tanh approximation (GPT-2's gelu_new): 0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))
  be.gelu_forward(cf, f);                                      // x, out
  be.gelu_backward(cf, cf, f);                                 // x, dout, dx (=, not +=)
  // SwiGLU (Llama MLP): out = silu(gate)·up, silu(g) = g·σ(g)
  be.swiglu_forward(cf, cf, f);                                // gate, up, out
  be.swiglu_backward(cf, cf, cf, f, f);                        // gate, up, dout, dgate (=), dup (=)
  // Rotary embedding in place on [T × H·D] (H = n heads), Hugging Face's rotate_half convention:
  // x' = x·cos(p·θ_i) + rotate_half(x)·sin(p·θ_i), p = positions[t], D even; θ = inv_freq, D/2
  // values in backend memory (rope_inv_freq() below, rescaled when Llama-3's rope_scaling asks).
  // In float32 as Hugging Face: angle = float(p)·θ_i rounded to float, then cos/sin of that float
  // angle (at p ≈ 4000 an angle formed in double differs from Hugging Face's by up to 2.4e-4 rad).
  // backward = the inverse rotation (sin → −sin), also in place on the gradient.
  be.rope_forward(f, ci, n, n, cf);                            // x, positions, heads, head_dim, inv_freq
  be.rope_backward(f, ci, n, n, cf);                           // dx, positions, heads, head_dim, inv_freq
  // Inverted dropout: out[i] = x[i]·dropout_multiplier(seed, i, p) (core/random.hpp: 0 with
  // probability p, else 1/(1−p)); out may be x itself. The mask is a function of (seed, i), so
  // backward is the same op with the same seed applied to the gradient.
  be.dropout(cf, f, x, seed);                                  // x, out, p, seed
  // Causal attention over the packed layout (see attention_layout and attention_shape).
  be.attention_forward(cf, cf, cf, lay, sh, f, f);             // q, k, v, layout, shape, out, lse
  be.attention_backward(cf, cf, cf, cf, cf, cf, lay, sh, f, f, f);  // dout, q, k, v, out, lse, layout, shape,
                                                               // dq(=), dk(=), dv(=)
  // New tokens against a key/value cache (generation; see cached_attention_shape).
  be.attention_cached(cf, cf, cf, ci, ci, csh, f);             // q, k_cache, v_cache, slot, position, shape, out
  // LM head statistics of a chunk of logits [rows × V]: fills `st` (see lm_head_stats).
  be.lm_head_stats(cf, ci, n, n, st);                          // logits, targets, rows, V, stats
  // dlogits[r,:] = dlogp[r]·(onehot(target_r) − softmax(z_r)) (zero rows where target_r < 0)
  be.lm_head_backward(cf, ci, cf, cf, n, n, f);                // logits, targets, lse, dlogp, rows, V, dlogits (=)
};
} // namespace backend_ops

// RoPE inverse frequencies as Hugging Face computes them in float32:
// inv_freq[i] = 1 / base^(float(2i) / D) (the power rounded to float, then a float division).
inline std::vector<float> rope_inv_freq(std::size_t head_dim, float base) {
  std::vector<float> inv(head_dim / 2);
  for (std::size_t i = 0; i < inv.size(); ++i) {
    const float e = float(2 * i) / float(head_dim);
    inv[i] = 1.0f / float(std::pow(double(base), double(e)));
  }
  return inv;
}

// Size of the buffer attention_forward fills for attention_backward: one log-sum-exp per query
// token and head (tokens · q_heads floats).
inline std::size_t attention_lse_size(std::size_t tokens, int q_heads) { return tokens * std::size_t(q_heads); }

// The checks every backend runs before attention_cached: sizes, and slot/position (host copies of
// them, T ints each) inside the cache.
inline void check_cached_attention(const cached_attention_shape& sh, std::size_t q, std::size_t k, std::size_t v,
                                   std::size_t out, const std::int32_t* slot, const std::int32_t* position,
                                   std::size_t ids, const char* op) {
  auto fail = [&](const std::string& what, const std::string& why) {
    throw shape_error(std::string("backend op '") + op + "': " + what, why);
  };
  if (sh.tokens < 0 || sh.slots < 0 || sh.capacity < 0) fail("shape", "negative tokens, slots or capacity");
  if (sh.q_heads <= 0 || sh.kv_heads <= 0 || sh.head_dim <= 0 || sh.q_heads % sh.kv_heads != 0)
    fail("shape", "q_heads and kv_heads must be positive, q_heads a multiple of kv_heads, head_dim positive");
  const std::size_t T = std::size_t(sh.tokens), qd = std::size_t(sh.q_heads) * std::size_t(sh.head_dim);
  const std::size_t cache = std::size_t(sh.slots) * std::size_t(sh.capacity) * std::size_t(sh.kv_heads) * std::size_t(sh.head_dim);
  auto need = [&](std::size_t have, std::size_t want, const char* what) {
    if (have < want) fail(what, "holds " + std::to_string(have) + " values, needs " + std::to_string(want));
  };
  need(q, T * qd, "q"), need(out, T * qd, "out"), need(k, cache, "k_cache"), need(v, cache, "v_cache");
  need(ids, T, "slot/position");
  for (std::size_t t = 0; t < T; ++t) {
    if (slot[t] < 0 || slot[t] >= sh.slots) fail("slot[" + std::to_string(t) + "]", "is " + std::to_string(slot[t]) + ", outside [0, " + std::to_string(sh.slots) + ")");
    if (position[t] < 0 || position[t] >= sh.capacity)
      fail("position[" + std::to_string(t) + "]", "is " + std::to_string(position[t]) + ", outside [0, " + std::to_string(sh.capacity) + ")");
  }
}

template <class B> constexpr bool require_transformer_ops() {
  static_assert(backend_ops::transformer<B>,
                "prefopt: this backend lacks a transformer op (embedding, bias, layernorm, rmsnorm, gelu, swiglu, rope, "
                "dropout, attention, attention_cached, lm_head_stats/backward, add_inplace) — see core/transformer_ops.hpp and docs/backends.md");
  return true;
}

} // namespace prefopt
