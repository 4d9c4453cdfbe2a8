// prefopt/data/detail/unicode.hpp — UTF-8 coding, Unicode properties and simple case folding.
//
// The tokenizer works on UTF-8 strings; its regex engine and normalizer work on code points.
// Properties come from the generated tables in unicode_tables.hpp (Unicode 16.0):
//   letter (\p{L}), number (\p{N}), decimal (\d), space (White_Space, \s),
//   word: Alphabetic | Mark | Nd | Pc, plus engine-specific extras (see is_word_oniguruma and
//   is_word_rust: the tokenizers library uses Oniguruma for its pre-tokenizer patterns and Rust's
//   regex crate for added-token word checks, and the two disagree on six Latin-1 digits and on
//   the joiners U+200C/U+200D).
#pragma once

#include <prefopt/data/detail/unicode_tables.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace prefopt::data::detail::unicode {

inline constexpr char32_t replacement_char = 0xFFFD;

// ---------------------------------------------------------------------------------------------
// UTF-8

// Length of the well-formed UTF-8 sequence at s[i], or 0 when it is not well formed (overlong
// forms, surrogates, code points above U+10FFFF and truncated sequences are all ill formed).
inline std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  const std::size_t left = s.size() - i;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return (left >= 2 && (b(i + 1) & 0xC0) == 0x80) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (left < 3) return 0;
    const unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return (b(i + 1) >= lo && b(i + 1) <= hi && (b(i + 2) & 0xC0) == 0x80) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (left < 4) return 0;
    const unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return (b(i + 1) >= lo && b(i + 1) <= hi && (b(i + 2) & 0xC0) == 0x80 && (b(i + 3) & 0xC0) == 0x80) ? 4
                                                                                                        : 0;
  }
  return 0;
}

// Byte offset of the first ill-formed sequence, or npos when s is valid UTF-8.
inline std::size_t find_invalid_utf8(std::string_view s) noexcept {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence_length(s, i);
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

// Decodes the (well-formed) sequence of length n at s[i].
inline char32_t decode_at(std::string_view s, std::size_t i, std::size_t n) noexcept {
  const auto b = [&](std::size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(s[i + k])); };
  switch (n) {
  case 1: return b(0);
  case 2: return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
  case 3: return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
  default: return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
}

inline void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// Code points of valid UTF-8 text; offsets (if given) receives each code point's byte offset
// followed by text.size().
inline void decode_utf8(std::string_view text, std::vector<char32_t>& cps, std::vector<std::uint32_t>* offsets) {
  cps.clear();
  if (offsets) offsets->clear();
  for (std::size_t i = 0; i < text.size();) {
    std::size_t n = utf8_sequence_length(text, i);
    if (n == 0) n = 1; // callers validate first; keep going defensively
    cps.push_back(n == 1 && static_cast<unsigned char>(text[i]) >= 0x80 ? replacement_char : decode_at(text, i, n));
    if (offsets) offsets->push_back(static_cast<std::uint32_t>(i));
    i += n;
  }
  if (offsets) offsets->push_back(static_cast<std::uint32_t>(text.size()));
}

inline std::string encode_utf8(std::span<const char32_t> cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t c : cps) append_utf8(out, c);
  return out;
}

// Bytes to UTF-8 with every maximal ill-formed subpart replaced by U+FFFD — what Rust's
// String::from_utf8_lossy (and Python's errors="replace") do.
inline std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
  for (std::size_t i = 0; i < bytes.size();) {
    const std::size_t n = utf8_sequence_length(bytes, i);
    if (n != 0) {
      out.append(bytes.substr(i, n));
      i += n;
      continue;
    }
    // Length of the maximal subpart: the lead byte plus the continuation bytes that could still
    // have completed a well-formed sequence.
    const unsigned char c = b(i);
    std::size_t need = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) { need = 2; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 3; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    std::size_t k = 1;
    if (need > 0 && i + 1 < bytes.size() && b(i + 1) >= lo && b(i + 1) <= hi) {
      k = 2;
      while (k <= need && i + k < bytes.size() && (b(i + k) & 0xC0) == 0x80) ++k;
    }
    out += "\xEF\xBF\xBD";
    i += k;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Properties

template <std::size_t N>
constexpr bool in_ranges(const code_range (&table)[N], char32_t c) noexcept {
  const auto* it = std::upper_bound(std::begin(table), std::end(table), c,
                                    [](char32_t v, const code_range& r) { return v < r.lo; });
  return it != std::begin(table) && c <= std::prev(it)->hi;
}

constexpr bool is_letter(char32_t c) noexcept {
  if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
  return in_ranges(letter, c);
}
constexpr bool is_number(char32_t c) noexcept {
  if (c < 0x80) return c >= '0' && c <= '9';
  return in_ranges(number, c);
}
constexpr bool is_decimal(char32_t c) noexcept {
  if (c < 0x80) return c >= '0' && c <= '9';
  return in_ranges(decimal_number, c);
}
constexpr bool is_space(char32_t c) noexcept {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  return in_ranges(white_space, c);
}
// \w of the Oniguruma engine: Alphabetic | M | Nd | Pc, and the Latin-1 digits ² ³ ¹ ¼ ½ ¾.
constexpr bool is_word_oniguruma(char32_t c) noexcept {
  if (c < 0x80) return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9') || c == '_';
  if (c == 0xB2 || c == 0xB3 || c == 0xB9 || c == 0xBC || c == 0xBD || c == 0xBE) return true;
  return in_ranges(word, c);
}
// \w of Rust's regex crate: Alphabetic | M | Nd | Pc | Join_Control.
constexpr bool is_word_rust(char32_t c) noexcept {
  if (c < 0x80) return is_word_oniguruma(c);
  return c == 0x200C || c == 0x200D || in_ranges(word, c);
}

// Simple case folding (one code point to one code point).
constexpr char32_t fold_case(char32_t c) noexcept {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  const auto* it = std::upper_bound(std::begin(case_fold), std::end(case_fold), c,
                                    [](char32_t v, const fold_run& r) { return v < r.lo; });
  if (it == std::begin(case_fold)) return c;
  const fold_run& r = *std::prev(it);
  if (c > r.hi || (c - r.lo) % r.stride != 0) return c;
  return static_cast<char32_t>(static_cast<std::int64_t>(c) + r.delta);
}

// Every code point whose simple case fold equals that of c (c included).
inline std::vector<char32_t> case_orbit(char32_t c) {
  const char32_t f = fold_case(c);
  std::vector<char32_t> out{c};
  if (f != c) out.push_back(f);
  for (const fold_run& r : case_fold) {
    const std::int64_t x = static_cast<std::int64_t>(f) - r.delta;
    if (x < r.lo || x > r.hi || (x - r.lo) % r.stride != 0) continue;
    if (std::find(out.begin(), out.end(), static_cast<char32_t>(x)) == out.end()) out.push_back(static_cast<char32_t>(x));
  }
  return out;
}

} // namespace prefopt::data::detail::unicode
