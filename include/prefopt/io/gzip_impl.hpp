// prefopt/io/gzip_impl.hpp — the DEFLATE (RFC 1951) decoder and CRC-32 behind gzip_reader.
//
// Pieces, bottom up:
//  - crc32_update: the CRC-32 of gzip and zlib (reflected polynomial 0xEDB88320), table driven.
//  - bit_reader: bytes from an std::istream in 64 KiB chunks; DEFLATE packs bits least significant
//    first, so bits accumulate in a 64-bit buffer from the bottom. It knows the file offset of the
//    byte it is working on, which every error reports.
//  - huffman: a canonical code built from code lengths (RFC 1951 §3.2.2). Decoding looks up the
//    next 9 bits in a table (codes of at most 9 bits, almost all of them in practice) and falls back
//    to the canonical bit-by-bit walk (as zlib's puff.c does) for longer codes.
//  - inflate_stream: a resumable decoder for one DEFLATE stream writing into a 64 KiB ring. It stops
//    when 32 KiB are waiting to be read, so the 32 KiB history that back-references may reach is
//    always intact behind the unread bytes.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <string>
#include <string_view>
#include <vector>

#include <prefopt/core/error.hpp>

namespace prefopt::io::detail {

inline constexpr std::array<std::uint32_t, 256> crc32_table = [] {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1U) ? 0xEDB88320U ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}();

// Continues a CRC-32: start from 0; crc32_update(crc32_update(0, a), b) == CRC of a followed by b.
inline std::uint32_t crc32_update(std::uint32_t crc, const unsigned char* p, std::size_t n) noexcept {
  crc = ~crc;
  for (std::size_t i = 0; i < n; ++i) crc = crc32_table[(crc ^ p[i]) & 0xFFU] ^ (crc >> 8);
  return ~crc;
}

class bit_reader {
public:
  bit_reader(std::istream& in, std::string name) : in_(&in), name_(std::move(name)), buf_(1 << 16) {}

  // Offset in the file of the first byte whose bits are not all consumed.
  [[nodiscard]] std::uint64_t offset() const noexcept {
    return base_ + pos_ - static_cast<std::uint64_t>((count_ + 7) / 8);
  }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }

  [[noreturn]] void fail(const std::string& why) const { fail_at(offset(), why); }
  [[noreturn]] void fail_at(std::uint64_t at, const std::string& why) const {
    throw format_error(name_ + ": byte " + std::to_string(at), why);
  }

  // The next n bits (n <= 32), least significant first; throws at the end of the input.
  std::uint32_t bits(int n) {
    while (count_ < n) {
      int byte = next_byte();
      if (byte < 0) fail("truncated stream (the compressed data ends early)");
      bits_ |= static_cast<std::uint64_t>(byte) << count_;
      count_ += 8;
    }
    const auto v = static_cast<std::uint32_t>(bits_ & ((std::uint64_t{1} << n) - 1));
    bits_ >>= n;
    count_ -= n;
    return v;
  }
  // Up to 56 bits without consuming them; bits past the end of the input read as 0 and
  // available() says how many are real.
  std::uint64_t peek() {
    while (count_ <= 48) {
      int byte = next_byte();
      if (byte < 0) break;
      bits_ |= static_cast<std::uint64_t>(byte) << count_;
      count_ += 8;
    }
    return bits_;
  }
  [[nodiscard]] int available() const noexcept { return count_; }
  void drop(int n) noexcept { bits_ >>= n; count_ -= n; }
  void align() noexcept { drop(count_ % 8); }

  // After align(): the next whole byte, or -1 at the end of the input.
  int byte() {
    if (count_ >= 8) {
      const int v = static_cast<int>(bits_ & 0xFFU);
      drop(8);
      return v;
    }
    return next_byte();
  }
  int byte_or_fail(const char* what) {
    int v = byte();
    if (v < 0) fail(std::string("truncated stream (ends inside the ") + what + ")");
    return v;
  }

private:
  int next_byte() {
    if (pos_ == end_) {
      base_ += end_;
      pos_ = end_ = 0;
      if (!in_->good()) return -1;
      in_->read(buf_.data(), static_cast<std::streamsize>(buf_.size()));
      end_ = static_cast<std::size_t>(in_->gcount());
      if (in_->bad()) throw io_error(name_, "read failed");
      if (end_ == 0) return -1;
    }
    return static_cast<unsigned char>(buf_[pos_++]);
  }

  std::istream* in_;
  std::string name_;
  std::vector<char> buf_;
  std::size_t pos_ = 0, end_ = 0;
  std::uint64_t base_ = 0;  // file offset of buf_[0]
  std::uint64_t bits_ = 0;
  int count_ = 0;
};

struct huffman {
  static constexpr int fast_bits = 9;
  std::array<std::uint16_t, 16> count{};    // codes of each length
  std::array<std::uint16_t, 288> symbol{};  // symbols ordered by code
  std::array<std::uint16_t, 1 << fast_bits> fast{};  // reversed code -> (length << 9) | symbol; 0: not here

  // Builds from lengths[0..n). Returns 0 for a complete code, < 0 over-subscribed, > 0 incomplete.
  int build(const std::uint8_t* lengths, int n) {
    count.fill(0);
    fast.fill(0);
    for (int s = 0; s < n; ++s) ++count[lengths[s]];
    if (count[0] == n) return 0;  // no codes: complete, but any decode fails
    int left = 1;
    for (int len = 1; len < 16; ++len) {
      left = 2 * left - count[len];
      if (left < 0) return left;
    }
    std::array<std::uint16_t, 16> offs{};
    for (int len = 1; len < 15; ++len) offs[len + 1] = static_cast<std::uint16_t>(offs[len] + count[len]);
    for (int s = 0; s < n; ++s)
      if (lengths[s] != 0) symbol[offs[lengths[s]]++] = static_cast<std::uint16_t>(s);
    // Canonical codes: within a length, consecutive; the first code of each length follows the last
    // of the shorter one, shifted left.
    unsigned code = 0;
    int index = 0;
    for (int len = 1; len <= fast_bits; ++len) {
      for (int k = 0; k < count[len]; ++k, ++code, ++index) {
        unsigned rev = 0;
        for (int b = 0; b < len; ++b) rev |= ((code >> b) & 1U) << (len - 1 - b);
        for (unsigned r = rev; r < (1U << fast_bits); r += 1U << len)
          fast[r] = static_cast<std::uint16_t>((len << 9) | symbol[index]);
      }
      code <<= 1;
    }
    return left;
  }

  int decode(bit_reader& in, const char* what) const {
    const auto peeked = static_cast<unsigned>(in.peek() & ((1U << fast_bits) - 1));
    const unsigned entry = fast[peeked];
    const int len = static_cast<int>(entry >> 9);
    if (len != 0 && len <= in.available()) {
      in.drop(len);
      return static_cast<int>(entry & 0x1FFU);
    }
    int code = 0, first = 0, index = 0;
    for (int l = 1; l < 16; ++l) {
      code |= static_cast<int>(in.bits(1));
      const int n = count[l];
      if (code - n < first) return symbol[index + (code - first)];
      index += n;
      first = (first + n) << 1;
      code <<= 1;
    }
    in.fail(std::string("corrupt Huffman code: invalid ") + what + " code");
  }
};

// One DEFLATE stream, decoded on demand into a ring buffer (see the top of this file).
class inflate_stream {
public:
  static constexpr std::uint64_t ring_size = std::uint64_t{1} << 16;
  static constexpr std::uint64_t max_pending = std::uint64_t{1} << 15;

  explicit inflate_stream(bit_reader& in) : in_(&in), ring_(ring_size) {
    std::array<std::uint8_t, 288> l{};
    for (int s = 0; s < 288; ++s) l[s] = s < 144 ? 8 : s < 256 ? 9 : s < 280 ? 7 : 8;
    fixed_lit_.build(l.data(), 288);
    l.fill(5);
    fixed_dist_.build(l.data(), 30);
  }

  // Starts a new stream (the next gzip member): no history, CRC from zero.
  void reset() noexcept { state_ = state::block_header; last_ = false; start_ = write_; crc_ = 0; }
  [[nodiscard]] bool finished() const noexcept { return state_ == state::done; }
  [[nodiscard]] std::uint64_t pending() const noexcept { return write_ - read_; }
  [[nodiscard]] std::uint64_t stream_size() const noexcept { return write_ - start_; }
  [[nodiscard]] std::uint32_t crc() const noexcept { return crc_; }
  // The unread bytes that lie contiguously in the ring (possibly fewer than pending()).
  [[nodiscard]] std::string_view contiguous() const noexcept {
    const auto at = read_ % ring_size;
    const auto n = std::min(pending(), ring_size - at);
    return {reinterpret_cast<const char*>(ring_.data() + at), static_cast<std::size_t>(n)};
  }
  void consume(std::size_t n) noexcept { read_ += n; }
  // Blocks started so far, by type: [0] stored, [1] fixed Huffman, [2] dynamic Huffman.
  [[nodiscard]] const std::array<std::uint64_t, 3>& blocks() const noexcept { return blocks_; }

  // Decodes until max_pending - 258 bytes wait to be read or the stream's last block has ended.
  void produce() {
    const std::uint64_t from = write_;
    while (state_ != state::done && pending() + 258 < max_pending) {
      if (state_ == state::block_header) {
        block_header();
      } else if (state_ == state::stored) {
        auto n = std::min<std::uint64_t>(stored_left_, max_pending - pending());
        stored_left_ -= static_cast<std::uint32_t>(n);
        while (n-- > 0) put(static_cast<std::uint8_t>(in_->byte_or_fail("stored block")));
        if (stored_left_ == 0) state_ = last_ ? state::done : state::block_header;
      } else {
        codes();
      }
    }
    for (std::uint64_t at = from; at < write_;) {  // CRC of the new bytes, in at most two pieces
      const auto i = at % ring_size;
      const auto n = std::min(write_ - at, ring_size - i);
      crc_ = crc32_update(crc_, ring_.data() + i, static_cast<std::size_t>(n));
      at += n;
    }
  }

private:
  enum class state { block_header, stored, codes, done };

  void put(std::uint8_t b) noexcept { ring_[write_ % ring_size] = b; ++write_; }

  void block_header() {
    last_ = in_->bits(1) != 0;
    const auto type = in_->bits(2);
    if (type < 3) ++blocks_[type];
    if (type == 0) {
      in_->align();
      const int a = in_->byte_or_fail("stored block header"), b = in_->byte_or_fail("stored block header");
      const int c = in_->byte_or_fail("stored block header"), d = in_->byte_or_fail("stored block header");
      stored_left_ = static_cast<std::uint32_t>(a | (b << 8));
      if (static_cast<std::uint32_t>(c | (d << 8)) != (~stored_left_ & 0xFFFFU))
        in_->fail("corrupt stored block: LEN and NLEN do not match");
      state_ = stored_left_ == 0 ? (last_ ? state::done : state::block_header) : state::stored;
    } else if (type == 1) {
      lit_ = &fixed_lit_;
      dist_ = &fixed_dist_;
      state_ = state::codes;
    } else if (type == 2) {
      dynamic_header();
      state_ = state::codes;
    } else {
      in_->fail("bad block type 3 (reserved)");
    }
  }

  void dynamic_header() {
    const int nlen = static_cast<int>(in_->bits(5)) + 257, ndist = static_cast<int>(in_->bits(5)) + 1;
    const int ncode = static_cast<int>(in_->bits(4)) + 4;
    if (nlen > 286 || ndist > 30)
      in_->fail("corrupt dynamic block header: " + std::to_string(nlen) + " literal/length and " +
                std::to_string(ndist) + " distance codes (at most 286 and 30)");
    static constexpr std::array<std::uint8_t, 19> order{16, 17, 18, 0, 8, 7, 9, 6, 10, 5,
                                                        11, 4,  12, 3, 13, 2, 14, 1, 15};
    std::array<std::uint8_t, 320> len{};
    for (int i = 0; i < ncode; ++i) len[order[i]] = static_cast<std::uint8_t>(in_->bits(3));
    if (lens_.build(len.data(), 19) != 0)
      in_->fail("corrupt Huffman code: the code-length code is incomplete or over-subscribed");
    len.fill(0);
    for (int i = 0; i < nlen + ndist;) {
      const int sym = lens_.decode(*in_, "code-length");
      if (sym < 16) { len[i++] = static_cast<std::uint8_t>(sym); continue; }
      std::uint8_t value = 0;
      int repeat = 0;
      if (sym == 16) {
        if (i == 0) in_->fail("corrupt dynamic block header: repeat of a code length before the first one");
        value = len[i - 1];
        repeat = 3 + static_cast<int>(in_->bits(2));
      } else {
        repeat = sym == 17 ? 3 + static_cast<int>(in_->bits(3)) : 11 + static_cast<int>(in_->bits(7));
      }
      if (i + repeat > nlen + ndist) in_->fail("corrupt dynamic block header: code lengths run past the end");
      while (repeat-- > 0) len[i++] = value;
    }
    if (len[256] == 0) in_->fail("corrupt dynamic block header: no end-of-block code");
    // An incomplete code is accepted only when it is a single code of length 1 (as zlib does).
    int err = dyn_lit_.build(len.data(), nlen);
    if (err < 0 || (err > 0 && nlen != dyn_lit_.count[0] + dyn_lit_.count[1]))
      in_->fail(std::string("corrupt Huffman code: the literal/length code is ") +
                (err < 0 ? "over-subscribed" : "incomplete"));
    err = dyn_dist_.build(len.data() + nlen, ndist);
    if (err < 0 || (err > 0 && ndist != dyn_dist_.count[0] + dyn_dist_.count[1]))
      in_->fail(std::string("corrupt Huffman code: the distance code is ") +
                (err < 0 ? "over-subscribed" : "incomplete"));
    lit_ = &dyn_lit_;
    dist_ = &dyn_dist_;
  }

  void codes() {
    static constexpr std::array<std::uint16_t, 29> len_base{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                                            35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
    static constexpr std::array<std::uint8_t, 29> len_extra{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                                            2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
    static constexpr std::array<std::uint16_t, 30> dist_base{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129,
                                                             193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
                                                             4097, 6145, 8193, 12289, 16385, 24577};
    static constexpr std::array<std::uint8_t, 30> dist_extra{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                                             6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
    while (pending() + 258 < max_pending) {
      int sym = lit_->decode(*in_, "literal/length");
      if (sym < 256) { put(static_cast<std::uint8_t>(sym)); continue; }
      if (sym == 256) { state_ = last_ ? state::done : state::block_header; return; }
      sym -= 257;
      if (sym >= 29) in_->fail("corrupt Huffman code: invalid length symbol " + std::to_string(sym + 257));
      const std::uint32_t length = len_base[sym] + in_->bits(len_extra[sym]);
      const int dsym = dist_->decode(*in_, "distance");
      if (dsym >= 30) in_->fail("corrupt Huffman code: invalid distance symbol " + std::to_string(dsym));
      const std::uint64_t distance = dist_base[dsym] + in_->bits(dist_extra[dsym]);
      if (distance > stream_size())
        in_->fail("distance too far back (" + std::to_string(distance) + " bytes, only " +
                  std::to_string(stream_size()) + " decompressed so far)");
      for (std::uint32_t k = 0; k < length; ++k) put(ring_[(write_ - distance) % ring_size]);
    }
  }

  bit_reader* in_;
  std::vector<std::uint8_t> ring_;
  std::uint64_t read_ = 0, write_ = 0, start_ = 0;  // positions in the whole output, ring index = % ring_size
  std::uint32_t crc_ = 0, stored_left_ = 0;
  state state_ = state::block_header;
  bool last_ = false;
  std::array<std::uint64_t, 3> blocks_{};
  huffman fixed_lit_, fixed_dist_, dyn_lit_, dyn_dist_, lens_;
  const huffman* lit_ = &fixed_lit_;
  const huffman* dist_ = &fixed_dist_;
};

} // namespace prefopt::io::detail
