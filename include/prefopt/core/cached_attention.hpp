// prefopt/core/cached_attention.hpp — attention of new tokens against a key/value cache (decoding).
//
// Generation keeps, per layer, the keys and values of every token a sequence has seen in a cache
// of `slots` sequences × `capacity` positions: k_cache, v_cache [slots × capacity × Hkv·D]
// (models/kv_cache.hpp). A step runs only the new tokens; new token t (its keys and values already
// written at cache[slot[t]][position[t]]) attends, for query head h (key/value head
// g = h / (Hq/Hkv)), to the cached keys 0..position[t] of its slot:
//   s_j = q_t·k_j/√D,  out_t = Σ_j softmax(s)_j·v_j,  j ≤ position[t]
// One query costs O(position·D): a continuation of N tokens is O(N²·D) in all instead of the
// O(N³·D) of recomputing the prefix, and the projections and MLP run once per token.
// The math is flash_attention.hpp's forward over key tiles (online softmax, nothing of size L
// kept), each (token, query head) one work item: the CPU backends loop over items, the cuda
// backend runs one thread per item — the same function, so the CPU tests check the GPU's math.
// Written by hand for the same reason as flash_attention.hpp: these are device-callable steps
// over raw pointers, which no library provides.
#pragma once

#include <cstddef>
#include <cstdint>

#include "prefopt/core/config.hpp"
#include "prefopt/core/flash_attention.hpp"

namespace prefopt::flash {

// A cached-attention call as the per-item function reads it (pointers into one memory).
struct cached_attention {
  const std::int32_t* slot = nullptr;      // [T] cache slot of each new token
  const std::int32_t* position = nullptr;  // [T] its position (keys 0..position are visible)
  std::size_t tokens = 0, capacity = 0;    // T new tokens; positions per slot
  int q_heads = 0, kv_heads = 0, head_dim = 0;
};

// Item e = t·Hq + h: out[t, h, :] from q[t, h, :] and the slot's cached keys/values.
// head_dim ≤ max_head_dim; slot and position checked by the caller (position < capacity).
PREFOPT_HD inline void cached_attention_item(const cached_attention& a, std::size_t e, const float* q, const float* k_cache,
                                             const float* v_cache, float* out) {
  const std::size_t Hq = std::size_t(a.q_heads), Hkv = std::size_t(a.kv_heads);
  const std::size_t t = e / Hq, h = e % Hq, g = h / (Hq / Hkv);
  const int D = a.head_dim, kv_stride = int(Hkv) * D, i = a.position[t];
  const std::size_t base = std::size_t(a.slot[t]) * a.capacity * Hkv;  // first key of the slot, in heads
  std::int32_t same[tile];  // every cached key is in the query's segment
  for (int jj = 0; jj < tile; ++jj) same[jj] = 0;
  row_state st;
  float acc[max_head_dim];
  float s[tile];
  float lse = 0.0f;
  for (int d = 0; d < D; ++d) acc[d] = 0.0f;
  for (int j0 = 0; j0 <= i; j0 += tile) {
    const int n = i + 1 - j0 < tile ? i + 1 - j0 : tile;
    const std::size_t first = (base + std::size_t(j0) * Hkv + g) * std::size_t(D);
    forward_row_tile(st, acc, q + e * std::size_t(D), i, 0, k_cache + first, v_cache + first, kv_stride, j0, same, n, D,
                     head_scale(D), s);
  }
  finalize_row(st, acc, D, out + e * std::size_t(D), &lse);
}

} // namespace prefopt::flash
