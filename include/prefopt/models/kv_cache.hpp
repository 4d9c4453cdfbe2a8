// prefopt/models/kv_cache.hpp — the key/value cache of a transformer's generation.
//
//   auto cache = models::kv_cache<backend>(model.backend(), model.config(), /*slots*/ 8, /*capacity*/ 256);
//   auto logits = model.cached_logits(cache, step);     // models/detail/transformer_decode.hpp
//
// Per layer, keys and values of every token a sequence has seen, in backend memory:
// keys(l), values(l) [slots × capacity × Hkv·D] — Hkv = config.kv_heads, so a grouped-query model
// (Llama, Qwen2) caches its Hkv key/value heads, not Hq. A slot holds one sequence; length(s)
// tokens of it are cached (positions 0..length−1). A step (cache_step) appends new tokens to some
// slots: their keys and values are written at their positions, then each attends to its slot's
// cached keys (core/cached_attention.hpp). Memory: 2 · layers · slots · capacity · Hkv·D floats.
//
// Keys are written by adding into zeroed rows (the backend's scatter-add), so every row past a
// slot's length is zero: reset() and clear(slot) keep that. A step that throws after writing
// leaves the cache unusable until reset() (the model refuses it, naming the cause).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "prefopt/core/backend.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/models/transformer_config.hpp"

namespace prefopt::models {

// New tokens of some cached sequences, packed sequence by sequence (as token_batch rows).
struct cache_step {
  std::vector<std::int32_t> slots{};          // S sequences: the cache slot of each (distinct)
  std::vector<std::int32_t> tokens{};         // their new tokens, back to back
  std::vector<std::int32_t> row_offsets{0};   // S + 1 offsets into tokens; every row ≥ 1 token
  bool every_position = false;                // logits after every new token, not only each row's last

  // Appends a sequence's new tokens.
  void add(std::int32_t slot, const std::vector<std::int32_t>& new_tokens) {
    slots.push_back(slot);
    tokens.insert(tokens.end(), new_tokens.begin(), new_tokens.end());
    row_offsets.push_back(std::int32_t(tokens.size()));
  }
  [[nodiscard]] int rows() const noexcept { return int(slots.size()); }
};

template <Backend B> class kv_cache {
public:
  using fbuf = typename B::template buffer<float>;

  kv_cache(B be, const transformer_config& cfg, int slots, int capacity)
      : be_(std::move(be)), layers_(cfg.layers), slots_(slots), capacity_(capacity), width_(cfg.kv_heads * cfg.head_dim) {
    if (slots <= 0) throw config_error("kv_cache: slots", "must be > 0");
    if (capacity <= 0) throw config_error("kv_cache: capacity", "must be > 0");
    const std::size_t n = std::size_t(slots) * std::size_t(capacity) * std::size_t(width_);
    for (int l = 0; l < layers_; ++l) {
      k_.push_back(be_.template allocate<float>(n));
      v_.push_back(be_.template allocate<float>(n));
    }
    reset();
  }

  [[nodiscard]] int layers() const noexcept { return layers_; }
  [[nodiscard]] int slots() const noexcept { return slots_; }
  [[nodiscard]] int capacity() const noexcept { return capacity_; }
  [[nodiscard]] int width() const noexcept { return width_; }  // Hkv·D
  [[nodiscard]] int length(int slot) const { return length_.at(std::size_t(slot)); }
  [[nodiscard]] bool usable() const noexcept { return usable_; }
  // Floats held in backend memory (keys and values of every layer).
  [[nodiscard]] std::size_t floats() const noexcept {
    return 2 * std::size_t(layers_) * std::size_t(slots_) * std::size_t(capacity_) * std::size_t(width_);
  }

  std::span<float> keys(std::size_t layer) { return k_.at(layer).span(); }
  std::span<float> values(std::size_t layer) { return v_.at(layer).span(); }

  // Empties every slot.
  void reset() {
    for (auto& b : k_) be_.fill(b.span(), 0.0f);
    for (auto& b : v_) be_.fill(b.span(), 0.0f);
    length_.assign(std::size_t(slots_), 0);
    usable_ = true;
  }
  // Empties one slot (for another sequence).
  void clear(int slot) {
    check_slot(slot);
    const std::size_t n = std::size_t(capacity_) * std::size_t(width_), at = std::size_t(slot) * n;
    for (auto& b : k_) be_.fill(b.span().subspan(at, n), 0.0f);
    for (auto& b : v_) be_.fill(b.span().subspan(at, n), 0.0f);
    length_[std::size_t(slot)] = 0;
  }

  // Used by the model's step: mark the cache in use (unusable until finish) and record new lengths.
  void begin_step() {
    if (!usable_) throw error("kv_cache", "an earlier step failed after writing keys; reset() the cache");
    usable_ = false;
  }
  void finish_step(int slot, int new_length) {
    check_slot(slot);
    length_[std::size_t(slot)] = new_length;
  }
  void end_step() { usable_ = true; }

  void check_slot(int slot) const {
    if (slot < 0 || slot >= slots_)
      throw shape_error("kv_cache: slot " + std::to_string(slot), "outside [0, " + std::to_string(slots_) + ")");
  }

private:
  B be_;  // a copy (backends share their context between copies)
  int layers_, slots_, capacity_, width_;
  std::vector<fbuf> k_, v_;
  std::vector<int> length_;
  bool usable_ = true;
};

} // namespace prefopt::models
