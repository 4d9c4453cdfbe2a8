// prefopt/data/detail/unicode.hpp — UTF-8 coding, NFC, and the two Unicode properties that
// added tokens need.
//
// utf8proc decodes and encodes UTF-8 (strictly: overlong forms, surrogates, code points above
// U+10FFFF and truncated sequences are ill formed, as Rust's str requires) and normalizes to NFC.
// Oniguruma answers the property questions, from the Unicode data it matches patterns with:
//   is_space      White_Space (Rust's char::is_whitespace, used by lstrip/rstrip);
//   is_word_rust  \w of Rust's regex crate (Alphabetic | M | Nd | Pc | Join_Control), which the
//                 tokenizers library uses to check single_word added tokens.
// Written here: utf8_lossy, because Rust's String::from_utf8_lossy replaces each *maximal
// ill-formed subpart* by one U+FFFD (Unicode's recommended practice) and neither library offers
// that rule; utf8proc's decoder only reports that a sequence is ill formed.
// Unicode versions are the libraries' (Debian 12: Oniguruma 6.9.8 has Unicode 14.0, utf8proc 2.8
// has 15.0); they differ from the tokenizers library's only on characters assigned since.
#pragma once

#include <prefopt/core/error.hpp>
#include <prefopt/data/detail/regex.hpp>

#include <oniguruma.h>
#include <utf8proc.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

namespace prefopt::data::detail::unicode {

inline constexpr char32_t replacement_char = 0xFFFD;

// ---------------------------------------------------------------------------------------------
// UTF-8

// Length of the well-formed UTF-8 sequence at s[i], or 0 when it is not well formed.
inline std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
  if (static_cast<unsigned char>(s[i]) < 0x80) return 1;
  utf8proc_int32_t c = 0;
  const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                                  static_cast<utf8proc_ssize_t>(s.size() - i), &c);
  return n > 0 ? static_cast<std::size_t>(n) : 0;
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
  if (n == 1) return static_cast<unsigned char>(s[i]);
  utf8proc_int32_t c = 0;
  utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i), static_cast<utf8proc_ssize_t>(n), &c);
  return c < 0 ? replacement_char : static_cast<char32_t>(c);
}

inline void append_utf8(std::string& out, char32_t c) {
  utf8proc_uint8_t buf[4];
  const auto n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(c), buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(n));
}

// Code points of valid UTF-8 text (an ill-formed byte becomes U+FFFD); offsets (if given) receives
// each code point's byte offset followed by text.size().
inline void decode_utf8(std::string_view text, std::vector<char32_t>& cps, std::vector<std::uint32_t>* offsets) {
  cps.clear();
  if (offsets) offsets->clear();
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = utf8_sequence_length(text, i);
    cps.push_back(n == 0 ? replacement_char : decode_at(text, i, n));
    if (offsets) offsets->push_back(static_cast<std::uint32_t>(i));
    i += n == 0 ? 1 : n;
  }
  if (offsets) offsets->push_back(static_cast<std::uint32_t>(text.size()));
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
// Normalization

// NFC of valid UTF-8 text (utf8proc: canonical decomposition, then canonical composition).
// Text whose code points all lie below U+0300 is returned as it is without calling utf8proc: every
// such character has NFC_Quick_Check = Yes and none composes with what precedes it (the first
// that do are the combining marks from U+0300), so the text is already in NFC. utf8proc has no
// quick check of its own; this one keeps ASCII and Latin-1 text off the slow path.
inline std::string nfc(std::string_view text) {
  bool below_0300 = true;  // lead bytes up to 0xCB encode code points below U+0300
  for (char c : text) below_0300 = below_0300 && static_cast<unsigned char>(c) < 0xCC;
  if (below_0300) return std::string(text);
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                              static_cast<utf8proc_ssize_t>(text.size()), &out,
                              static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  const std::unique_ptr<utf8proc_uint8_t, void (*)(void*)> owned(out, std::free);
  if (n == UTF8PROC_ERROR_NOMEM) throw std::bad_alloc();
  if (n < 0) throw data_error("NFC normalizer", std::string("utf8proc: ") + utf8proc_errmsg(n));
  return std::string(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
}

// ---------------------------------------------------------------------------------------------
// Properties (Oniguruma's Unicode data)

namespace props {
inline unsigned ctype(const char* name) {
  oniguruma_init();
  OnigEncoding enc = ONIG_ENCODING_UTF8;
  auto* p = const_cast<OnigUChar*>(reinterpret_cast<const OnigUChar*>(name));
  const int t = ONIGENC_PROPERTY_NAME_TO_CTYPE(enc, p, p + std::strlen(name));
  if (t < 0) throw std::logic_error(std::string("Oniguruma has no Unicode property ") + name);
  return static_cast<unsigned>(t);
}
struct table {
  unsigned white_space = ctype("White_Space"), alphabetic = ctype("Alphabetic"), mark = ctype("M"),
           decimal = ctype("Nd"), connector = ctype("Pc"), join_control = ctype("Join_Control");
};
inline const table& get() {
  static const table t;
  return t;
}
inline bool has(char32_t c, unsigned type) { return ONIGENC_IS_CODE_CTYPE(ONIG_ENCODING_UTF8, c, type) != 0; }
} // namespace props

inline bool is_space(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  return props::has(c, props::get().white_space);
}
// \w of Rust's regex crate: Alphabetic | M | Nd | Pc | Join_Control.
inline bool is_word_rust(char32_t c) {
  if (c < 0x80) return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9') || c == '_';
  const auto& t = props::get();
  return props::has(c, t.alphabetic) || props::has(c, t.mark) || props::has(c, t.decimal) ||
         props::has(c, t.connector) || props::has(c, t.join_control);
}

} // namespace prefopt::data::detail::unicode
