// prefopt/data/detail/bpe_tables.hpp — open-addressing tables for the BPE hot path.
//
// pair_map: (left id, right id) -> (merge rank, merged id), the merge lookup done for every
// adjacent pair. word_cache: pre-token -> ids, the bounded cache that makes repeated words cost
// one lookup. Both use linear probing in a power-of-two array, so a lookup touches one or two
// cache lines instead of walking a linked bucket.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace prefopt::data::detail {

inline std::uint64_t hash_bytes(std::string_view s) noexcept { // FNV-1a, then a final mix
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  return h ^ (h >> 29);
}

inline std::uint64_t mix64(std::uint64_t x) noexcept { // splitmix64 finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

class pair_map {
public:
  struct value {
    std::uint32_t rank;
    std::int32_t new_id;
  };

  static std::uint64_t key(std::int32_t a, std::int32_t b) noexcept {
    return (std::uint64_t{static_cast<std::uint32_t>(a)} << 32) | static_cast<std::uint32_t>(b);
  }

  void reserve(std::size_t n) { rehash(capacity_for(n)); }

  // Inserts or replaces (a later merge of the same pair wins, as in the library's HashMap).
  void insert_or_assign(std::uint64_t k, value v) {
    if ((size_ + 1) * 2 > slots_.size()) rehash(capacity_for(size_ + 1));
    slot& s = find_slot(k);
    if (!s.used) ++size_;
    s = {k, v, true};
  }

  [[nodiscard]] const value* find(std::uint64_t k) const noexcept {
    if (slots_.empty()) return nullptr;
    for (std::size_t i = mix64(k) & mask_;; i = (i + 1) & mask_) {
      const slot& s = slots_[i];
      if (!s.used) return nullptr;
      if (s.k == k) return &s.v;
    }
  }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

private:
  struct slot {
    std::uint64_t k = 0;
    value v{};
    bool used = false;
  };
  std::vector<slot> slots_;
  std::size_t mask_ = 0, size_ = 0;

  static std::size_t capacity_for(std::size_t n) {
    std::size_t c = 16;
    while (c < n * 2) c *= 2;
    return c;
  }
  slot& find_slot(std::uint64_t k) {
    for (std::size_t i = mix64(k) & mask_;; i = (i + 1) & mask_)
      if (!slots_[i].used || slots_[i].k == k) return slots_[i];
  }
  void rehash(std::size_t capacity) {
    if (capacity <= slots_.size()) return;
    std::vector<slot> old = std::move(slots_);
    slots_.assign(capacity, slot{});
    mask_ = capacity - 1;
    for (const slot& s : old)
      if (s.used) find_slot(s.k) = s;
  }
};

// Word -> ids, shared by copies of a tokenizer; thread-safe (one mutex); emptied when it holds
// `capacity` words.
class word_cache {
public:
  explicit word_cache(std::size_t capacity = 10000) : capacity_(capacity) {
    std::size_t slots = 16;
    while (slots < capacity * 2) slots *= 2;
    slots_.resize(slots);
    mask_ = slots - 1;
  }

  bool get(std::string_view word, std::vector<std::int32_t>& out) const {
    const std::uint64_t h = hash_bytes(word);
    std::lock_guard lock(mutex_);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const slot& s = slots_[i];
      if (!s.used) return false;
      if (s.hash == h && s.word == word) {
        out.insert(out.end(), s.ids.begin(), s.ids.end());
        return true;
      }
    }
  }

  void put(std::string_view word, std::span<const std::int32_t> ids) {
    const std::uint64_t h = hash_bytes(word);
    std::lock_guard lock(mutex_);
    if (size_ >= capacity_) {
      for (slot& s : slots_) s = slot{};
      size_ = 0;
    }
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      slot& s = slots_[i];
      if (s.used && (s.hash != h || s.word != word)) continue;
      if (!s.used) ++size_;
      s.used = true;
      s.hash = h;
      s.word.assign(word);
      s.ids.assign(ids.begin(), ids.end());
      return;
    }
  }

private:
  struct slot {
    std::uint64_t hash = 0;
    std::string word;
    std::vector<std::int32_t> ids;
    bool used = false;
  };
  std::size_t capacity_;
  std::size_t mask_ = 0, size_ = 0;
  std::vector<slot> slots_;
  mutable std::mutex mutex_;
};

} // namespace prefopt::data::detail
