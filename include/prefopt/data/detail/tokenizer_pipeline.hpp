// prefopt/data/detail/tokenizer_pipeline.hpp — the stages of a tokenizer and how each one runs.
//
// encode(text): split out added tokens (raw) -> normalize the rest -> split out added tokens
// (normalized) -> pre-tokenize every remaining piece -> BPE each pre-token -> post-process.
// Each stage mirrors the tokenizers library component of the same name:
//   normalizer NFC           utf8proc's NFC (unicode.hpp)
//   pre-tokenizer Split      pattern matches (Oniguruma, regex.hpp) and the gaps between them
//                            become pieces, combined
//                            by `behavior` (Removed, Isolated, MergedWithPrevious,
//                            MergedWithNext, Contiguous); `invert` swaps matches and gaps
//   pre-tokenizer ByteLevel  optional leading space, optional split with GPT-2's pattern, then
//                            every byte shown as its printable character (byte_level.hpp)
//   post-processor           TemplateProcessing (single-sequence template), ByteLevel (ids
//                            unchanged), applied only when special tokens are requested
//   decoder ByteLevel        characters back to bytes, then UTF-8 with U+FFFD for bad bytes
// Empty pieces are dropped after every stage, as the library does.
#pragma once

#include <prefopt/data/detail/added_vocabulary.hpp>
#include <prefopt/data/detail/bpe.hpp>
#include <prefopt/data/detail/byte_level.hpp>
#include <prefopt/data/detail/regex.hpp>
#include <prefopt/data/detail/unicode.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <variant>
#include <vector>

namespace prefopt::data::detail {

// GPT-2's pre-tokenization pattern, used by ByteLevel when use_regex is true.
inline constexpr std::string_view gpt2_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class split_behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

struct split_step {
  regex pattern;
  split_behavior behavior = split_behavior::isolated;
  bool invert = false;
};
struct byte_level_step {
  bool add_prefix_space = false;
  std::optional<regex> gpt2; // present when use_regex
};
using pre_tokenizer_step = std::variant<split_step, byte_level_step>;

struct template_piece {
  bool is_sequence = false;        // $A
  std::vector<std::int32_t> ids;   // a special token's ids otherwise
};
struct template_step {
  std::vector<template_piece> single;
};
struct byte_level_post_step {};
using post_processor_step = std::variant<byte_level_post_step, template_step>;

enum class normalizer_step { nfc };
enum class decoder_step { byte_level };

// Working buffers reused across the pieces of one encode call.
struct encode_scratch {
  regex::scratch search;
  std::vector<regex::match> matches;
  std::vector<std::tuple<std::size_t, std::size_t, bool>> parts;
};

// Pieces of `piece` cut by `re` (as NormalizedString::split), appended to out.
inline void split_piece(std::string_view piece, const regex& re, split_behavior behavior, bool invert,
                        std::vector<std::string>& out, encode_scratch& s) {
  auto& parts = s.parts; // (begin, end, is_match) covering the piece
  parts.clear();
  re.find_all(piece, s.matches, s.search);
  std::size_t prev = 0;
  for (const auto& [a, b] : s.matches) {
    if (prev != a) parts.emplace_back(prev, a, false);
    parts.emplace_back(a, b, true);
    prev = b;
  }
  if (prev != piece.size()) parts.emplace_back(prev, piece.size(), false);
  if (invert)
    for (auto& p : parts) std::get<2>(p) = !std::get<2>(p);

  // (begin, end, remove) after applying the behavior.
  std::vector<std::tuple<std::size_t, std::size_t, bool>> cuts;
  bool previous_match = false;
  switch (behavior) {
  case split_behavior::isolated:
    for (const auto& [a, b, m] : parts) cuts.emplace_back(a, b, false);
    break;
  case split_behavior::removed: cuts = parts; break;
  case split_behavior::contiguous:
    for (const auto& [a, b, m] : parts) {
      if (m == previous_match && !cuts.empty()) std::get<1>(cuts.back()) = b;
      else cuts.emplace_back(a, b, false);
      previous_match = m;
    }
    break;
  case split_behavior::merged_with_previous:
    for (const auto& [a, b, m] : parts) {
      if (m && !previous_match && !cuts.empty()) std::get<1>(cuts.back()) = b;
      else cuts.emplace_back(a, b, false);
      previous_match = m;
    }
    break;
  case split_behavior::merged_with_next:
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
      const auto& [a, b, m] = *it;
      if (m && !previous_match && !cuts.empty()) std::get<0>(cuts.back()) = a;
      else cuts.emplace_back(a, b, false);
      previous_match = m;
    }
    std::reverse(cuts.begin(), cuts.end());
    break;
  }
  for (const auto& [a, b, remove] : cuts)
    if (!remove && b > a) out.emplace_back(piece.substr(a, b - a));
}

inline void apply_pre_tokenizer(const pre_tokenizer_step& step, const byte_level_map& bytes,
                                std::vector<std::string>& pieces, encode_scratch& s) {
  std::vector<std::string> out;
  out.reserve(pieces.size());
  if (const auto* sp = std::get_if<split_step>(&step)) {
    for (const auto& p : pieces) split_piece(p, sp->pattern, sp->behavior, sp->invert, out, s);
  } else {
    const auto& bl = std::get<byte_level_step>(step);
    std::vector<std::string> sub;
    for (auto& p : pieces) {
      if (bl.add_prefix_space && p.front() != ' ') p.insert(p.begin(), ' ');
      sub.clear();
      if (bl.gpt2) split_piece(p, *bl.gpt2, split_behavior::isolated, false, sub, s);
      else sub.push_back(std::move(p));
      for (const auto& q : sub) {
        std::string mapped;
        mapped.reserve(q.size() * 2);
        bytes.encode(q, mapped);
        out.push_back(std::move(mapped));
      }
    }
  }
  pieces = std::move(out);
}

inline void apply_post_processor(const post_processor_step& step, std::vector<std::int32_t>& ids) {
  const auto* t = std::get_if<template_step>(&step);
  if (t == nullptr) return; // ByteLevel leaves ids alone
  std::vector<std::int32_t> out;
  out.reserve(ids.size() + 4);
  for (const auto& piece : t->single) {
    if (piece.is_sequence) out.insert(out.end(), ids.begin(), ids.end());
    else out.insert(out.end(), piece.ids.begin(), piece.ids.end());
  }
  ids = std::move(out);
}

inline void apply_decoder(decoder_step step, const byte_level_map& bytes, std::vector<std::string>& tokens) {
  switch (step) {
  case decoder_step::byte_level: {
    std::string raw;
    for (const auto& t : tokens) bytes.decode_token(t, raw);
    tokens.assign(1, unicode::utf8_lossy(raw));
    return;
  }
  }
}

// Everything a tokenizer knows; immutable once loaded, shared by copies of a tokenizer.
struct tokenizer_state {
  std::string source;
  std::vector<normalizer_step> normalizers;
  std::vector<pre_tokenizer_step> pre_tokenizers;
  bpe_model model;
  added_vocabulary added;
  std::vector<post_processor_step> post_processors;
  bool has_decoder = false;
  std::vector<decoder_step> decoders;
  byte_level_map bytes;
  std::int32_t vocab_size = 0;

  [[nodiscard]] std::string normalize(std::string_view text) const {
    std::string s(text);
    for (normalizer_step n : normalizers)
      if (n == normalizer_step::nfc) s = unicode::nfc(s);
    return s;
  }
};

} // namespace prefopt::data::detail
