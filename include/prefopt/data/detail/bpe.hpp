// prefopt/data/detail/bpe.hpp — the BPE model: merges by rank, with a bounded per-word cache.
//
// A word (one pre-token, already in the vocabulary's alphabet) starts as one symbol per
// character; characters missing from the vocabulary become the unknown token (fused into one when
// fuse_unk) or, with no unknown token, are dropped — both as the tokenizers library does. Then the
// adjacent pair with the lowest merge rank (leftmost among equal ranks) is merged, repeatedly,
// with a priority queue; stale queue entries are skipped. With ignore_merges (Llama-3), a word that
// is itself in the vocabulary is emitted whole. Results for words under 256 bytes are cached.
#pragma once

#include <prefopt/data/detail/bpe_tables.hpp>
#include <prefopt/data/detail/unicode.hpp>

#include <cstdint>
#include <functional>
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

struct bpe_model {
  using merge_value = pair_map::value;
  static constexpr std::size_t cache_max_word = 256;

  string_map<std::int32_t> vocab;
  std::unordered_map<std::int32_t, std::string> vocab_r;
  pair_map merges;
  std::vector<std::int32_t> low_char_ids;              // single-character tokens below U+0800 (-1: none)
  std::unordered_map<char32_t, std::int32_t> char_ids; // the others
  bool ignore_merges = false;
  std::optional<std::int32_t> unk_id;
  bool fuse_unk = false;

  static std::uint64_t pair_key(std::int32_t a, std::int32_t b) noexcept { return pair_map::key(a, b); }

  void index_characters() {
    char_ids.clear();
    low_char_ids.assign(0x800, -1);
    for (const auto& [tok, id] : vocab) {
      const std::size_t n = unicode::utf8_sequence_length(tok, 0);
      if (tok.empty() || n != tok.size()) continue;
      const char32_t c = unicode::decode_at(tok, 0, n);
      if (c < low_char_ids.size()) low_char_ids[c] = id;
      else char_ids.emplace(c, id);
    }
  }

  [[nodiscard]] std::int32_t char_id(char32_t c) const {
    if (c < low_char_ids.size()) return low_char_ids[c];
    const auto it = char_ids.find(c);
    return it == char_ids.end() ? -1 : it->second;
  }

  // Appends the ids of `word` to out.
  void tokenize(std::string_view word, std::vector<std::int32_t>& out, word_cache* cache) const {
    if (word.empty()) return;
    const bool cacheable = cache != nullptr && word.size() < cache_max_word;
    if (cacheable && cache->get(word, out)) return; // holds what the lines below gave before
    const std::size_t before = out.size();
    const auto whole = ignore_merges ? vocab.find(word) : vocab.end();
    if (whole != vocab.end()) out.push_back(whole->second);
    else merge_word(word, out);
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
      const std::int32_t id = char_id(unicode::decode_at(w, i, n));
      i += n;
      if (id >= 0) {
        if (pending_unk) add(*unk_id);
        pending_unk = false;
        add(id);
      } else if (unk_id) {
        if (pending_unk && !fuse_unk) add(*unk_id);
        pending_unk = true;
      }
    }
    if (pending_unk) add(*unk_id);

    std::priority_queue<queued, std::vector<queued>, std::greater<>> queue;
    for (std::size_t i = 0; i + 1 < sym.size(); ++i) {
      if (const auto* m = merges.find(pair_key(sym[i].id, sym[i + 1].id)))
        queue.push({m->rank, static_cast<std::uint32_t>(i), m->new_id});
    }
    while (!queue.empty()) {
      const queued top = queue.top();
      queue.pop();
      symbol& cur = sym[top.pos];
      if (!cur.alive || cur.next < 0) continue;
      const auto next_pos = static_cast<std::size_t>(cur.next);
      const symbol right = sym[next_pos];
      const auto* m = merges.find(pair_key(cur.id, right.id));
      if (m == nullptr || m->new_id != top.new_id) continue; // stale entry
      cur.id = top.new_id;
      cur.next = right.next;
      sym[next_pos].alive = false;
      if (right.next >= 0) sym[static_cast<std::size_t>(right.next)].prev = static_cast<std::int32_t>(top.pos);
      if (cur.prev >= 0) {
        if (const auto* pm = merges.find(pair_key(sym[static_cast<std::size_t>(cur.prev)].id, cur.id)))
          queue.push({pm->rank, static_cast<std::uint32_t>(cur.prev), pm->new_id});
      }
      if (cur.next >= 0) {
        if (const auto* nm = merges.find(pair_key(cur.id, sym[static_cast<std::size_t>(cur.next)].id)))
          queue.push({nm->rank, top.pos, nm->new_id});
      }
    }
    for (const symbol& s : sym)
      if (s.alive) out.push_back(s.id);
  }
};

} // namespace prefopt::data::detail
