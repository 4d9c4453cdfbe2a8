// prefopt/io/detail/utf8.hpp — strict UTF-8 validation (as Rust's str::from_utf8 checks it).
//
// Rejects overlong forms, UTF-16 surrogates (U+D800..U+DFFF), code points above U+10FFFF, stray
// continuation bytes and truncated sequences.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace prefopt::io::detail {

// The offset of the first byte that is not part of a valid UTF-8 sequence, or nothing.
[[nodiscard]] inline std::optional<std::size_t> first_invalid_utf8(std::string_view text) noexcept {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t length = 0;
    unsigned char low = 0x80, high = 0xbf; // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      length = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      length = 3;
      if (c == 0xe0) low = 0xa0;  // no overlong 3-byte forms
      if (c == 0xed) high = 0x9f; // no surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      length = 4;
      if (c == 0xf0) low = 0x90;  // no overlong 4-byte forms
      if (c == 0xf4) high = 0x8f; // nothing above U+10FFFF
    } else {
      return i; // continuation byte without a lead, overlong 2-byte lead, or 0xf5..0xff
    }
    if (i + length > n) return i;
    if (s[i + 1] < low || s[i + 1] > high) return i;
    for (std::size_t k = 2; k < length; ++k)
      if (s[i + k] < 0x80 || s[i + k] > 0xbf) return i;
    i += length;
  }
  return std::nullopt;
}

[[nodiscard]] inline bool is_valid_utf8(std::string_view text) noexcept { return !first_invalid_utf8(text); }

} // namespace prefopt::io::detail
