// prefopt/models/detail/transformer_decode.hpp — transformer's cached forward (generation).
//
// The same layer as layer_forward (detail/transformer_impl.hpp: qkv_forward, attention,
// mlp_forward) on the step's T new tokens only, except attention: the new keys and values
// [T × Hkv·D] are written into the cache at (slot, position), then each new token attends to its
// slot's keys 0..position through the backend's attention_cached (core/cached_attention.hpp). A
// prefill is a step whose rows hold whole prompts; a decode step has one token per live sequence.
// Nothing is kept for backward.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

namespace prefopt::models {

template <Backend B, class Arch>
void transformer<B, Arch>::cached_layer_forward(std::size_t i, layer_acts& a, std::span<float> x_out, int T,
                                                kv_cache<B>& cache, std::span<const std::int32_t> slot,
                                                std::span<const std::int32_t> cache_row) {
  const std::size_t t = std::size_t(T);
  const std::size_t QD = std::size_t(cfg_.heads) * cfg_.head_dim, KD = std::size_t(cfg_.kv_heads) * cfg_.head_dim;
  qkv_forward(i, a, T, false);
  // cache[slot·capacity + position] += k, v (rows past a slot's length are zero: a write)
  be_.embedding_backward(cache_row, a.k.span().first(t * KD), int(KD), cache.keys(i));
  be_.embedding_backward(cache_row, a.v.span().first(t * KD), int(KD), cache.values(i));
  const cached_attention_shape sh{T, cfg_.heads, cfg_.kv_heads, cfg_.head_dim, cache.slots(), cache.capacity()};
  be_.attention_cached(a.q.span().first(t * QD), cache.keys(i), cache.values(i), slot, positions_.span().first(t), sh,
                       a.att.span().first(t * QD));                                              // att [T × Hq·D]
  mlp_forward(i, a, x_out, T, false);
}

template <Backend B, class Arch>
std::vector<float> transformer<B, Arch>::cached_logits(kv_cache<B>& cache, const cache_step& step, const forward_options& opt) {
  const int C = cfg_.hidden, V = cfg_.vocab_size, S = step.rows();
  const int T = int(step.tokens.size());
  auto bad = [](const std::string& what, const std::string& why) { throw shape_error("cache_step: " + what, why); };
  if (cache.layers() != cfg_.layers || cache.width() != cfg_.kv_heads * cfg_.head_dim)
    throw shape_error("kv_cache", "was made for another model shape (layers or kv_heads·head_dim differ)");
  if (step.row_offsets.size() != std::size_t(S) + 1 || step.row_offsets.front() != 0 || step.row_offsets.back() != T)
    bad("row_offsets", "must hold rows + 1 offsets from 0 to the token count");
  // Host tables: position of each new token, its cache row; checked before anything is written.
  const std::size_t nt = static_cast<std::size_t>(T);
  std::vector<std::int32_t> pos(nt), slot(nt), row(nt), at;
  std::vector<char> seen(std::size_t(cache.slots()), 0);
  for (int r = 0; r < S; ++r) {
    const std::int32_t s = step.slots[std::size_t(r)];
    cache.check_slot(s);
    if (seen[std::size_t(s)]++) bad("slots", "slot " + std::to_string(s) + " appears twice");
    const int n = step.row_offsets[std::size_t(r) + 1] - step.row_offsets[std::size_t(r)];
    if (n <= 0) bad("row " + std::to_string(r), "has no new token");
    const int start = cache.length(s);
    if (start + n > cache.capacity())
      bad("row " + std::to_string(r), std::to_string(start + n) + " tokens exceed the cache capacity " + std::to_string(cache.capacity()));
    if (Arch::id == architecture::gpt2 && start + n > cfg_.max_positions)
      bad("row " + std::to_string(r), std::to_string(start + n) + " tokens exceed max_positions " + std::to_string(cfg_.max_positions));
    for (int j = 0; j < n; ++j) {
      const std::size_t k = std::size_t(step.row_offsets[std::size_t(r)] + j);
      if (step.tokens[k] < 0 || step.tokens[k] >= V) bad("token " + std::to_string(k), "id outside the vocabulary");
      pos[k] = start + j;
      slot[k] = s;
      row[k] = s * cache.capacity() + start + j;
      if (step.every_position || j == n - 1) at.push_back(std::int32_t(k));
    }
  }
  std::vector<float> out(at.size() * std::size_t(V));
  if (T == 0) return out;
  cache.begin_step();
  const std::size_t t = std::size_t(T), nl = layout_.layers.size();
  use_adapters_ = opt.adapters && !adapters_.empty();
  dropout_seed_.reset();
  has_acts_ = false;  // acts_[0] is overwritten: no backward of an earlier forward
  refresh_weight_copy();  // this step's weights, in bf16 (core/bf16.hpp, "The weight copy")
  norms_bf16_ = choose_norm_storage();
  ensure_acts(1, T);
  grow(tokens_, t), grow(positions_, t);
  auto slot_b = be_.template allocate<std::int32_t>(t), row_b = be_.template allocate<std::int32_t>(t);
  be_.upload(std::span<const std::int32_t>(step.tokens), tokens_.span().first(t));
  be_.upload(std::span<const std::int32_t>(pos), positions_.span().first(t));
  be_.upload(std::span<const std::int32_t>(slot), slot_b.span());
  be_.upload(std::span<const std::int32_t>(row), row_b.span());
  // x₀ = wte[tokens] (+ wpe[positions] for GPT-2)                                            [T × C]
  auto x0 = acts_[0].x.span().first(t * C);
  be_.embedding_forward(tokens_.span().first(t), pspan(layout_.wte, std::size_t(V) * C), C, x0);
  if constexpr (Arch::id == architecture::gpt2) {
    be_.embedding_forward(positions_.span().first(t), pspan(layout_.wpe, std::size_t(cfg_.max_positions) * C), C,
                          dn_.span().first(t * C));
    be_.add_inplace(dn_.span().first(t * C), x0);
  }
  for (std::size_t l = 0; l < nl; ++l) {
    std::span<float> x_out = l + 1 < nl ? acts_[0].x.span() : xf_.span();
    cached_layer_forward(l, acts_[0], x_out, T, cache, slot_b.span(), row_b.span());
  }
  if (nl == 0) be_.copy(x0, xf_.span());
  norm_forward(layout_.normf_w, layout_.normf_b, xf_.span(), nf_, meanf_, rstdf_, T);            // nf [T × C]
  const int R = int(at.size());
  auto idx = be_.template allocate<std::int32_t>(std::size_t(R));
  be_.upload(std::span<const std::int32_t>(at), idx.span());
  grow(hrows_, std::size_t(R) * C);
  be_.embedding_forward(idx.span(), nf_.span().first(t * C), C, hrows_.span().first(std::size_t(R) * C));  // [R × C]
  auto logits = be_.template allocate<float>(std::size_t(R) * V);                                          // [R × V]
  gemm_weight(be_, {.trans_b = true, .m = R, .n = V, .k = C, .lda = C, .ldb = C, .ldc = V}, hrows_.span().first(std::size_t(R) * C),
              params_.span().subspan(layout_.head, std::size_t(V) * C), wcopy(layout_.head, std::size_t(V) * C), logits.span());
  be_.download(logits.span(), std::span<float>(out));
  for (int r = 0; r < S; ++r)
    cache.finish_step(step.slots[std::size_t(r)],
                      cache.length(step.slots[std::size_t(r)]) + step.row_offsets[std::size_t(r) + 1] - step.row_offsets[std::size_t(r)]);
  cache.end_step();
  return out;
}

} // namespace prefopt::models
