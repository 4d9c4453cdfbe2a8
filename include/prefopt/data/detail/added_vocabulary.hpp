// prefopt/data/detail/added_vocabulary.hpp — added tokens: ids and splitting them out of text.
//
// Follows the tokenizers library's AddedVocabulary. Tokens are added one at a time in the order
// of tokenizer.json's "added_tokens" (as the library's loader does): a token whose content the
// added vocabulary or the model already knows takes that id; a new one takes the next id after
// the model's vocabulary (or after the largest added id when that is larger). Before
// normalization, tokens with normalized == false are split out of the raw text; after it,
// tokens with normalized == true (matched in normalized form) are split out of the rest. Both
// use leftmost-longest matching. A match of a single_word token is skipped when a word
// character (Rust's \w) touches it; lstrip/rstrip widen the match over adjacent white space.
#pragma once

#include <prefopt/data/detail/bpe.hpp>
#include <prefopt/data/detail/unicode.hpp>

#include <algorithm>
#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace prefopt::data::detail {

struct added_token {
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
  bool operator==(const added_token&) const = default;
};

// A piece of the input: text still to tokenize (id < 0) or an added token already found.
struct segment {
  std::string text;
  std::int32_t id = -1;
};

// Leftmost-longest matching of many byte strings at once (a trie walked from each start).
class token_matcher {
public:
  void add(std::string_view pattern, std::int32_t id) {
    if (pattern.empty()) return;
    std::uint32_t at = 0;
    for (char ch : pattern) {
      const auto c = static_cast<unsigned char>(ch);
      std::uint32_t next = 0;
      for (const auto& [b, n] : nodes_[at].edges)
        if (b == c) next = n;
      if (next == 0) {
        next = static_cast<std::uint32_t>(nodes_.size());
        nodes_[at].edges.emplace_back(c, next);
        nodes_.emplace_back();
      }
      at = next;
    }
    if (nodes_[at].id < 0) nodes_[at].id = id; // among equal patterns the first one wins
    first_.set(static_cast<unsigned char>(pattern[0]));
  }

  // The leftmost-longest match starting at or after `from`: {start, end, id}.
  struct hit {
    std::size_t start, end;
    std::int32_t id;
  };
  [[nodiscard]] std::optional<hit> find(std::string_view text, std::size_t from) const {
    for (std::size_t s = from; s < text.size(); ++s) {
      if (!first_.test(static_cast<unsigned char>(text[s]))) continue;
      std::uint32_t at = 0;
      std::optional<hit> best;
      for (std::size_t i = s; i < text.size(); ++i) {
        std::uint32_t next = 0;
        for (const auto& [b, n] : nodes_[at].edges)
          if (b == static_cast<unsigned char>(text[i])) next = n;
        if (next == 0) break;
        at = next;
        if (nodes_[at].id >= 0) best = hit{s, i + 1, nodes_[at].id};
      }
      if (best) return best;
    }
    return std::nullopt;
  }
  [[nodiscard]] bool empty() const noexcept { return nodes_.size() == 1; }

private:
  struct node {
    std::vector<std::pair<unsigned char, std::uint32_t>> edges;
    std::int32_t id = -1;
  };
  std::vector<node> nodes_{1};
  std::bitset<256> first_;
};

class added_vocabulary {
public:
  string_map<std::int32_t> ids;                          // content -> id
  std::unordered_map<std::int32_t, added_token> tokens;  // id -> token
  string_map<bool> special_contents;                     // contents of special tokens
  // The spelling decode and id_to_token use for a normalized token whose normalized content
  // differs from its content (the library decodes the form it matched).
  std::unordered_map<std::int32_t, std::string> normalized_forms;
  token_matcher raw, normalized;                         // normalized == false / true tokens

  [[nodiscard]] std::optional<std::int32_t> token_to_id(std::string_view content, const bpe_model& model) const {
    if (const auto it = ids.find(content); it != ids.end()) return it->second;
    if (const auto it = model.vocab.find(content); it != model.vocab.end()) return it->second;
    return std::nullopt;
  }

  // Adds one token as the library's add_tokens/add_special_tokens does; returns its id (or
  // nullopt when the token is ignored: empty content or an identical token already present).
  // normalize(content) is the tokenizer's normalizer.
  template <class Normalize>
  std::optional<std::int32_t> add(const added_token& t, const bpe_model& model, Normalize&& normalize) {
    if (t.special && !t.content.empty() && !special_contents.contains(t.content)) {
      special_contents.emplace(t.content, true);
      special_order_.push_back(t);
    }
    if (t.content.empty()) return std::nullopt;
    for (const auto& [id, existing] : tokens)
      if (existing == t) return std::nullopt;
    std::int32_t id = 0;
    if (const auto known = token_to_id(t.content, model)) {
      id = *known;
    } else {
      const auto model_size = static_cast<std::int64_t>(model.vocab.size());
      std::int64_t next = model_size;
      if (max_id_ && (*max_id_ >= model_size || model_size == 0)) next = *max_id_ + 1;
      if (next > INT32_MAX) return std::nullopt;
      id = static_cast<std::int32_t>(next);
    }
    if (t.normalized) {
      std::string form = normalize(t.content);
      if (form != t.content) normalized_forms.insert_or_assign(id, std::move(form));
    }
    ids.insert_or_assign(t.content, id);
    tokens.insert_or_assign(id, t);
    if (!max_id_ || id > *max_id_) max_id_ = id;
    if (!special_contents.contains(t.content)) classic_order_.push_back(t);
    return id;
  }

  // Builds the two matchers once all tokens are added; normalize(content) gives the form a
  // normalized token is matched in.
  template <class Normalize>
  void build_matchers(const bpe_model& model, Normalize&& normalize) {
    raw = {};
    normalized = {};
    for (const auto* list : {&special_order_, &classic_order_})
      for (const added_token& t : *list) {
        const auto id = token_to_id(t.content, model);
        if (!id) continue;
        if (t.normalized) normalized.add(normalize(t.content), *id);
        else raw.add(t.content, *id);
      }
  }

  // Splits `sentence` around the matches of `m`, appending non-empty pieces to out.
  void split(std::string_view sentence, const token_matcher& m, std::vector<segment>& out) const {
    if (m.empty() || sentence.empty()) {
      if (!sentence.empty()) out.push_back({std::string(sentence), -1});
      return;
    }
    std::size_t start_offset = 0;
    auto piece = [&](std::size_t a, std::size_t b, std::int32_t id) {
      if (b > a) out.push_back({std::string(sentence.substr(a, b - a)), id});
    };
    for (auto h = m.find(sentence, 0); h; h = m.find(sentence, h->end)) {
      std::size_t start = h->start, stop = h->end;
      const added_token& tok = tokens.at(h->id);
      if (tok.single_word) {
        const bool start_space = start == 0 || !last_is_word(sentence.substr(0, start));
        const bool stop_space = stop == sentence.size() || !first_is_word(sentence.substr(stop));
        if (!start_space || !stop_space) continue;
      }
      if (tok.lstrip) start = std::max(trailing_space_start(sentence.substr(0, start)), start_offset);
      if (tok.rstrip) stop += leading_space_length(sentence.substr(stop));
      if (start_offset < start) piece(start_offset, start, -1);
      piece(start, stop, h->id);
      start_offset = stop;
    }
    if (start_offset < sentence.size()) piece(start_offset, sentence.size(), -1);
  }

private:
  std::vector<added_token> special_order_, classic_order_;
  std::optional<std::int64_t> max_id_;

  static char32_t last_char(std::string_view s) {
    std::size_t i = s.size() - 1;
    while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
    return unicode::decode_at(s, i, s.size() - i);
  }
  static bool last_is_word(std::string_view s) { return !s.empty() && unicode::is_word_rust(last_char(s)); }
  static bool first_is_word(std::string_view s) {
    return !s.empty() && unicode::is_word_rust(unicode::decode_at(s, 0, unicode::utf8_sequence_length(s, 0)));
  }
  static std::size_t trailing_space_start(std::string_view s) {
    std::size_t end = s.size();
    while (end > 0) {
      std::size_t i = end - 1;
      while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
      if (!unicode::is_space(unicode::decode_at(s, i, end - i))) break;
      end = i;
    }
    return end;
  }
  static std::size_t leading_space_length(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
      const std::size_t n = unicode::utf8_sequence_length(s, i);
      if (n == 0 || !unicode::is_space(unicode::decode_at(s, i, n))) break;
      i += n;
    }
    return i;
  }
};

} // namespace prefopt::data::detail
