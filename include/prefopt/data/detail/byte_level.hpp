// prefopt/data/detail/byte_level.hpp — GPT-2's byte <-> printable character mapping.
//
// Byte-level BPE works on bytes, but its vocabulary is stored as text, so every byte b is shown
// as one printable code point: the bytes 0x21-0x7E, 0xA1-0xAC and 0xAE-0xFF stand for
// themselves, and the other 68 bytes (controls, space, 0x7F-0xA0, 0xAD) become U+0100, U+0101, ...
// in increasing byte order (so ' ' is 'Ġ' U+0120 and '\n' is 'Ċ' U+010A).
#pragma once

#include <prefopt/data/detail/unicode.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace prefopt::data::detail {

struct byte_level_map {
  std::array<char32_t, 256> byte_to_char{};
  std::array<std::string, 256> byte_to_utf8{};
  std::array<std::int16_t, 0x144> char_to_byte{}; // -1: not a byte character (all lie below U+0144)

  byte_level_map() {
    char_to_byte.fill(-1);
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const bool self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t c = self ? static_cast<char32_t>(b) : next++;
      byte_to_char[b] = c;
      unicode::append_utf8(byte_to_utf8[b], c);
      char_to_byte[c] = static_cast<std::int16_t>(b);
    }
  }

  // Each byte of `text` replaced by its character, appended to `out`.
  void encode(std::string_view text, std::string& out) const {
    for (char ch : text) out += byte_to_utf8[static_cast<unsigned char>(ch)];
  }

  // The bytes a token stands for, when every character of it is a byte character; otherwise the
  // token's own UTF-8 bytes (as the tokenizers ByteLevel decoder does, e.g. for added tokens).
  void decode_token(std::string_view token, std::string& out) const {
    std::string bytes;
    bytes.reserve(token.size());
    for (std::size_t i = 0; i < token.size();) {
      const std::size_t n = unicode::utf8_sequence_length(token, i);
      const char32_t c = n == 0 ? 0x110000 : unicode::decode_at(token, i, n);
      if (c >= char_to_byte.size() || char_to_byte[c] < 0) {
        out.append(token);
        return;
      }
      bytes += static_cast<char>(char_to_byte[c]);
      i += n;
    }
    out += bytes;
  }
};

} // namespace prefopt::data::detail
