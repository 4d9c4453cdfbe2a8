// prefopt/data/detail/bpe.hpp — the BPE model: merges by rank, with a bounded per-word cache.
//
// A word (one pre-token, already in the vocabulary's alphabet) starts as one symbol per
// character; characters missing from the vocabulary become the unknown token (fused into one when
// fuse_unk) or, with no unknown token, are dropped — both as the tokenizers library does. Then the
// adjacent pair with the lowest merge rank (leftmost among equal ranks) is merged, repeatedly,
// with a priority queue; stale queue entries are skipped. With ignore_merges (Llama-3), a word that
// is itself in the vocabulary is emitted whole. Results for words under 256 bytes are cached.
#pragma once

#include <prefopt/data/detail/unicode.hpp>

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace prefopt::data::detail {

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <class V>
using string_map = std::unordered_map<std::string, V, string_hash, std::equal_to<>>;

// Word -> ids, shared by copies of a tokenizer; thread-safe; emptied when it reaches capacity.
class word_cache {
public:
  explicit word_cache(std::size_t capacity = 10000) : capacity_(capacity) {}
  bool get(std::string_view word, std::vector<std::int32_t>& out) const {
    std::lock_guard lock(mutex_);
    const auto it = map_.find(word);
    if (it == map_.end()) return false;
    out.insert(out.end(), it->second.begin(), it->second.end());
    return true;
  }
  void put(std::string_view word, std::span<const std::int32_t> ids) {
    std::lock_guard lock(mutex_);
    if (map_.size() >= capacity_) map_.clear();
    map_.emplace(std::string(word), std::vector<std::int32_t>(ids.begin(), ids.end()));
  }

private:
  std::size_t capacity_;
  mutable std::mutex mutex_;
  string_map<std::vector<std::int32_t>> map_;
};

struct bpe_model {
  struct merge_value {
    std::uint32_t rank;
    std::int32_t new_id;
  };
  static constexpr std::size_t cache_max_word = 256;

  string_map<std::int32_t> vocab;
  std::unordered_map<std::int32_t, std::string> vocab_r;
  std::unordered_map<std::uint64_t, merge_value> merges;
  std::unordered_map<char32_t, std::int32_t> char_ids; // single-character tokens
  bool ignore_merges = false;
  std::optional<std::int32_t> unk_id;
  bool fuse_unk = false;

  static std::uint64_t pair_key(std::int32_t a, std::int32_t b) noexcept {
    return (std::uint64_t{static_cast<std::uint32_t>(a)} << 32) | static_cast<std::uint32_t>(b);
  }

  void index_characters() {
    char_ids.clear();
    for (const auto& [tok, id] : vocab) {
      const std::size_t n = unicode::utf8_sequence_length(tok, 0);
      if (!tok.empty() && n == tok.size()) char_ids.emplace(unicode::decode_at(tok, 0, n), id);
    }
  }

  // Appends the ids of `word` to out.
  void tokenize(std::string_view word, std::vector<std::int32_t>& out, word_cache* cache) const {
    if (word.empty()) return;
    if (ignore_merges) {
      const auto it = vocab.find(word);
      if (it != vocab.end()) {
        out.push_back(it->second);
        return;
      }
    }
    const bool cacheable = cache != nullptr && word.size() < cache_max_word;
    if (cacheable && cache->get(word, out)) return;
    const std::size_t before = out.size();
    merge_word(word, out);
    if (cacheable) cache->put(word, std::span<const std::int32_t>(out).subspan(before));
  }

private:
  struct symbol {
    std::int32_t id;
    std::int32_t prev, next;
    bool alive;
  };
  struct queued {
    std::uint32_t rank;
    std::uint32_t pos;
    std::int32_t new_id;
    bool operator>(const queued& o) const noexcept { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };

  void merge_word(std::string_view w, std::vector<std::int32_t>& out) const {
    std::vector<symbol> sym;
    sym.reserve(w.size());
    auto add = [&](std::int32_t id) {
      const auto len = static_cast<std::int32_t>(sym.size());
      if (!sym.empty()) sym.back().next = len;
      sym.push_back({id, len - 1, -1, true});
    };
    bool pending_unk = false; // an unknown token not yet added (fused with the next unknown ones)
    for (std::size_t i = 0; i < w.size();) {
      std::size_t n = unicode::utf8_sequence_length(w, i);
      if (n == 0) n = 1;
      const auto it = char_ids.find(unicode::decode_at(w, i, n));
      i += n;
      if (it != char_ids.end()) {
        if (pending_unk) add(*unk_id);
        pending_unk = false;
        add(it->second);
      } else if (unk_id) {
        if (pending_unk && !fuse_unk) add(*unk_id);
        pending_unk = true;
      }
    }
    if (pending_unk) add(*unk_id);

    std::priority_queue<queued, std::vector<queued>, std::greater<>> queue;
    for (std::size_t i = 0; i + 1 < sym.size(); ++i) {
      const auto m = merges.find(pair_key(sym[i].id, sym[i + 1].id));
      if (m != merges.end()) queue.push({m->second.rank, static_cast<std::uint32_t>(i), m->second.new_id});
    }
    while (!queue.empty()) {
      const queued top = queue.top();
      queue.pop();
      symbol& cur = sym[top.pos];
      if (!cur.alive || cur.next < 0) continue;
      const auto next_pos = static_cast<std::size_t>(cur.next);
      const symbol right = sym[next_pos];
      const auto m = merges.find(pair_key(cur.id, right.id));
      if (m == merges.end() || m->second.new_id != top.new_id) continue; // stale entry
      cur.id = top.new_id;
      cur.next = right.next;
      sym[next_pos].alive = false;
      if (right.next >= 0) sym[static_cast<std::size_t>(right.next)].prev = static_cast<std::int32_t>(top.pos);
      if (cur.prev >= 0) {
        const auto pm = merges.find(pair_key(sym[static_cast<std::size_t>(cur.prev)].id, cur.id));
        if (pm != merges.end()) queue.push({pm->second.rank, static_cast<std::uint32_t>(cur.prev), pm->second.new_id});
      }
      if (cur.next >= 0) {
        const auto nm = merges.find(pair_key(cur.id, sym[static_cast<std::size_t>(cur.next)].id));
        if (nm != merges.end()) queue.push({nm->second.rank, top.pos, nm->second.new_id});
      }
    }
    for (const symbol& s : sym)
      if (s.alive) out.push_back(s.id);
  }
};

} // namespace prefopt::data::detail
