// prefopt/io/gzip_impl.hpp — the member framing of gzip (RFC 1952) around zlib's raw inflate.
//
// zlib (inflateInit2 with negative window bits) decodes each member's DEFLATE data; the 10-byte
// header with its optional fields and the 8-byte trailer are read here, so every error can name
// the file and the byte offset, and members follow each other as `cat a.gz b.gz` makes them.
// zlib's own gzip mode would do the framing too, but it reports neither where a header or trailer
// is wrong nor which check failed. Input is read in 64 KiB pieces and output produced in 64 KiB
// pieces; nothing else is buffered.
//
// Block counts: inflate is run with Z_BLOCK, which returns at every block boundary with the
// number of unused bits of the last input byte in data_type (zlib.h); the three header bits of
// the next block (BFINAL, BTYPE) are then read from the input bytes themselves.
#pragma once

#include <zlib.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <limits>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include <prefopt/core/error.hpp>

namespace prefopt::io::detail {

class gzip_stream {
public:
  gzip_stream(std::istream& in, std::string name) : in_(&in), name_(std::move(name)) {
    z_.zalloc = Z_NULL;
    z_.zfree = Z_NULL;
    z_.opaque = Z_NULL;
    if (inflateInit2(&z_, -MAX_WBITS) != Z_OK) throw std::bad_alloc();
  }
  gzip_stream(const gzip_stream&) = delete;
  gzip_stream& operator=(const gzip_stream&) = delete;
  ~gzip_stream() { inflateEnd(&z_); }

  // Makes sure decompressed bytes wait in contiguous(); false at the end of the last member.
  bool fill() {
    while (opos_ == oend_) {
      if (at_ == phase::end) return false;
      if (at_ == phase::header) {
        if (!member_header()) { at_ = phase::end; return false; }
        if (inflateReset(&z_) != Z_OK) throw std::bad_alloc();
        crc_ = crc32(0L, Z_NULL, 0);
        size_ = 0;
        next_block_bits_ = 0;  // the first block header starts at the next byte
        at_ = phase::body;
        continue;
      }
      inflate_some();
    }
    return true;
  }
  [[nodiscard]] std::string_view contiguous() const noexcept {
    return {reinterpret_cast<const char*>(out_.data()) + opos_, oend_ - opos_};
  }
  void consume(std::size_t n) noexcept {
    opos_ += n;
    position_ += n;
  }

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] std::uint64_t position() const noexcept { return position_; }
  [[nodiscard]] std::size_t members() const noexcept { return members_; }
  [[nodiscard]] const std::array<std::uint64_t, 3>& blocks() const noexcept { return blocks_; }

private:
  enum class phase { header, body, end };
  static constexpr std::size_t piece = std::size_t{1} << 16;

  // ---- input
  [[nodiscard]] std::uint64_t offset() const noexcept { return base_ + ipos_; }
  bool refill() {
    if (ipos_ < iend_) return true;
    if (eof_) return false;
    if (iend_ > 0) last_ = in_buf_[iend_ - 1];
    base_ += iend_;
    in_->read(reinterpret_cast<char*>(in_buf_.data()), static_cast<std::streamsize>(in_buf_.size()));
    if (in_->bad()) throw io_error(name_, "read failed");
    ipos_ = 0;
    iend_ = static_cast<std::size_t>(in_->gcount());
    eof_ = iend_ == 0;
    return !eof_;
  }
  int byte() { return refill() ? in_buf_[ipos_++] : -1; }
  int byte_or_fail(const char* what) {
    const int v = byte();
    if (v < 0) fail_at(offset(), std::string("truncated stream (ends inside the ") + what + ")");
    return v;
  }
  [[noreturn]] void fail_at(std::uint64_t at, const std::string& why) const {
    throw format_error(name_ + ": byte " + std::to_string(at), why);
  }

  // ---- one step of inflate: some output, a block boundary, or the end of the member
  void inflate_some() {
    if (!refill()) fail_at(offset(), "truncated stream (the compressed data ends early)");
    if (next_block_bits_ >= 0) count_block();
    z_.next_in = in_buf_.data() + ipos_;
    z_.avail_in = static_cast<uInt>(iend_ - ipos_);
    z_.next_out = out_.data();
    z_.avail_out = static_cast<uInt>(out_.size());
    const int r = inflate(&z_, Z_BLOCK);
    ipos_ = iend_ - z_.avail_in;
    opos_ = 0;
    oend_ = out_.size() - z_.avail_out;
    crc_ = crc32(crc_, out_.data(), static_cast<uInt>(oend_));
    size_ += oend_;
    switch (r) {
    case Z_OK:
    case Z_BUF_ERROR:  // no progress possible: more input is needed
      if ((z_.data_type & 128) != 0 && (z_.data_type & 64) == 0) next_block_bits_ = z_.data_type & 7;
      return;
    case Z_STREAM_END: trailer(); at_ = phase::header; return;
    case Z_MEM_ERROR: throw std::bad_alloc();
    default: {
      const std::uint64_t at = offset() - ((ipos_ > 0 && (z_.data_type & 7) != 0) ? 1 : 0);
      fail_at(at, std::string("corrupt DEFLATE data (") + (z_.msg != nullptr ? z_.msg : "zlib error") + ")");
    }
    }
  }

  // Counts the block whose 3 header bits start `next_block_bits_` bits from the top of the last
  // byte consumed (0: at the next byte). Needs the next input byte, which refill() provided.
  void count_block() {
    const unsigned bits = static_cast<unsigned>(next_block_bits_);
    const unsigned prev = ipos_ > 0 ? in_buf_[ipos_ - 1] : last_;
    const unsigned v = (bits > 0 ? prev >> (8 - bits) : 0U) | (static_cast<unsigned>(in_buf_[ipos_]) << bits);
    const unsigned type = (v >> 1) & 3U;
    if (type < 3) ++blocks_[type];
    next_block_bits_ = -1;
  }

  // Reads a member header; false if the input ends where a member could start.
  bool member_header() {
    int b = byte();
    if (members_ > 0)
      while (b == 0) b = byte();  // zero padding after a member, as Python's gzip allows
    if (b < 0) return false;
    const std::uint64_t at = offset() - 1;
    const auto first = static_cast<unsigned char>(b);
    uLong crc = crc32(crc32(0L, Z_NULL, 0), &first, 1);
    auto next = [&] {
      const int v = byte_or_fail("gzip header");
      const auto c = static_cast<unsigned char>(v);
      crc = crc32(crc, &c, 1);
      return v;
    };
    const int b2 = next();
    if (b != 0x1F || b2 != 0x8B)
      fail_at(at, (members_ == 0 ? std::string("not a gzip file")
                                 : "trailing bytes after gzip member " + std::to_string(members_)) +
                      " (magic bytes " + hex(static_cast<std::uint32_t>(b)) + " " +
                      hex(static_cast<std::uint32_t>(b2)) + ", expected 0x1f 0x8b)");
    if (const int method = next(); method != 8)
      fail_at(offset() - 1, "unsupported compression method " + std::to_string(method) + " (only 8, deflate)");
    const int flags = next();
    if ((flags & 0xE0) != 0) fail_at(offset() - 1, "reserved header flag bits set (" + hex(static_cast<std::uint32_t>(flags)) + ")");
    for (int i = 0; i < 6; ++i) next();  // MTIME, XFL, OS
    if ((flags & 0x04) != 0) {           // FEXTRA
      const int len = next();
      for (int n = len | (next() << 8); n > 0; --n) next();
    }
    if ((flags & 0x08) != 0) while (next() != 0) {}  // FNAME
    if ((flags & 0x10) != 0) while (next() != 0) {}  // FCOMMENT
    if ((flags & 0x02) != 0) {                       // FHCRC: low 16 bits of the header's CRC-32
      const auto want = static_cast<std::uint32_t>(crc & 0xFFFFU);
      const int lo = byte_or_fail("gzip header"), hi = byte_or_fail("gzip header");
      if (static_cast<std::uint32_t>(lo | (hi << 8)) != want) fail_at(offset() - 2, "gzip header CRC-16 mismatch");
    }
    return true;
  }

  void trailer() {
    const std::uint64_t at = offset();
    std::uint32_t v[2] = {0, 0};
    for (auto& word : v)
      for (int k = 0; k < 4; ++k) word |= static_cast<std::uint32_t>(byte_or_fail("gzip trailer")) << (8 * k);
    const auto crc = static_cast<std::uint32_t>(crc_);
    if (v[0] != crc)
      fail_at(at, "CRC-32 mismatch in member " + std::to_string(members_ + 1) + " (stored " + hex(v[0]) +
                      ", computed " + hex(crc) + ")");
    const auto size = static_cast<std::uint32_t>(size_ & 0xFFFFFFFFU);
    if (v[1] != size)
      fail_at(at + 4, "length mismatch in member " + std::to_string(members_ + 1) + " (stored ISIZE " +
                          std::to_string(v[1]) + ", decompressed " + std::to_string(size) + " mod 2^32)");
    ++members_;
  }

  static std::string hex(std::uint32_t v) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    do { s.insert(s.begin(), digits[v & 0xFU]); v >>= 4; } while (v != 0);
    if (s.size() % 2 != 0) s.insert(s.begin(), '0');
    return "0x" + s;
  }

  std::istream* in_;
  std::string name_;
  z_stream z_{};
  phase at_ = phase::header;
  std::vector<unsigned char> in_buf_ = std::vector<unsigned char>(piece);
  std::size_t ipos_ = 0, iend_ = 0;
  std::uint64_t base_ = 0;      // file offset of in_buf_[0]
  unsigned char last_ = 0;      // the byte before in_buf_[0]
  bool eof_ = false;
  std::vector<unsigned char> out_ = std::vector<unsigned char>(piece);
  std::size_t opos_ = 0, oend_ = 0;
  uLong crc_ = 0;
  std::uint64_t size_ = 0;      // decompressed bytes of the current member
  int next_block_bits_ = -1;    // a block header waits to be counted (see count_block)
  std::size_t members_ = 0;
  std::uint64_t position_ = 0;  // decompressed bytes consumed
  std::array<std::uint64_t, 3> blocks_{};
};

} // namespace prefopt::io::detail
