// prefopt/io/gzip.hpp — a streaming gzip (RFC 1952) reader with its own DEFLATE decoder.
//
// gzip_reader decompresses a .gz file or stream piece by piece (64 KiB of input, at most 32 KiB of
// output buffered), so a multi-gigabyte .jsonl.gz never sits in memory whole. It needs no zlib.
//
// What it accepts, like Python's gzip module and zlib:
//  - stored, fixed-Huffman and dynamic-Huffman DEFLATE blocks;
//  - several members one after another (what `cat a.gz b.gz` makes): their contents are joined;
//    zero bytes between or after members are skipped;
//  - the optional header fields FEXTRA, FNAME, FCOMMENT and FHCRC (whose CRC-16 is checked);
//  - an empty file (0 bytes): no data, no error.
// Each member's CRC-32 and ISIZE (length mod 2^32) are checked at its end. Anything else — bad magic
// bytes, a compression method other than 8, reserved flags, block type 3, LEN/NLEN mismatch,
// over-subscribed or incomplete Huffman codes, invalid codes or symbols, a distance reaching before
// the start of the member, data that ends early, a CRC or length mismatch — throws
// prefopt::format_error whose where() is "<file>: byte <offset in the compressed file>".
//
//   prefopt::io::gzip_reader in("train.jsonl.gz");
//   for (std::string line; in.getline(line);) { ... }
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <istream>
#include <memory>
#include <string>

#include <prefopt/core/error.hpp>
#include <prefopt/io/gzip_impl.hpp>

namespace prefopt::io {

class gzip_reader {
public:
  // Reads the file at `path`; io_error if it cannot be opened.
  explicit gzip_reader(const std::filesystem::path& path) : s_(std::make_unique<state>(path)) {}
  // Reads `in` (which must outlive the reader); `name` is used in error messages.
  gzip_reader(std::istream& in, std::string name) : s_(std::make_unique<state>(in, std::move(name))) {}

  // Copies up to n decompressed bytes into dst; returns how many (0 only at the end of the data).
  std::size_t read(char* dst, std::size_t n) {
    std::size_t done = 0;
    while (done < n && fill()) {
      const auto chunk = s_->inflate.contiguous();
      const auto k = std::min(n - done, chunk.size());
      std::memcpy(dst + done, chunk.data(), k);
      s_->inflate.consume(k);
      done += k;
    }
    s_->out += done;
    return done;
  }

  // Like std::getline: the next line without its delimiter; false when no data is left. A last
  // line without a delimiter is still returned.
  bool getline(std::string& line, char delim = '\n') {
    line.clear();
    bool any = false;
    while (fill()) {
      any = true;
      const auto chunk = s_->inflate.contiguous();
      const auto at = chunk.find(delim);
      const auto take = at == std::string_view::npos ? chunk.size() : at;
      line.append(chunk.data(), take);
      s_->inflate.consume(at == std::string_view::npos ? take : take + 1);
      s_->out += at == std::string_view::npos ? take : take + 1;
      if (at != std::string_view::npos) return true;
    }
    return any;
  }

  // True when every member has been read and checked.
  [[nodiscard]] bool at_end() { return !fill(); }
  // Decompressed bytes handed out so far.
  [[nodiscard]] std::uint64_t position() const noexcept { return s_->out; }
  // Members completely read (and checked) so far.
  [[nodiscard]] std::size_t members() const noexcept { return s_->members; }
  [[nodiscard]] const std::string& name() const noexcept { return s_->bits.name(); }
  // DEFLATE blocks started so far, by type: [0] stored, [1] fixed Huffman, [2] dynamic Huffman.
  [[nodiscard]] const std::array<std::uint64_t, 3>& blocks() const noexcept { return s_->inflate.blocks(); }

private:
  enum class phase { header, body, end };
  struct state {
    explicit state(const std::filesystem::path& path)
        : file(path, std::ios::binary), bits(file, path.string()), inflate(bits) {
      if (!file) throw io_error(path.string(), "cannot open for reading");
    }
    state(std::istream& in, std::string name) : bits(in, std::move(name)), inflate(bits) {}
    std::ifstream file;
    detail::bit_reader bits;
    detail::inflate_stream inflate;
    phase at = phase::header;
    std::size_t members = 0;
    std::uint64_t out = 0;
  };

  // Makes sure some decompressed bytes wait to be read; false at the end of the last member.
  bool fill() {
    auto& s = *s_;
    while (s.inflate.pending() == 0) {
      if (s.at == phase::end) return false;
      if (s.at == phase::header) {
        if (!member_header()) { s.at = phase::end; return false; }
        s.inflate.reset();
        s.at = phase::body;
      } else if (s.inflate.finished()) {
        trailer();
        s.at = phase::header;
      } else {
        s.inflate.produce();
      }
    }
    return true;
  }

  // Reads a member header; false if the input ends where a member could start.
  bool member_header() {
    auto& in = s_->bits;
    in.align();
    int b = in.byte();
    if (s_->members > 0)
      while (b == 0) b = in.byte();  // zero padding after a member, as Python's gzip allows
    if (b < 0) return false;
    const std::uint64_t at = in.offset() - 1;
    std::uint32_t crc = 0;
    auto next = [&] {
      const int v = in.byte_or_fail("gzip header");
      const auto c = static_cast<unsigned char>(v);
      crc = detail::crc32_update(crc, &c, 1);
      return v;
    };
    const auto first = static_cast<unsigned char>(b);
    crc = detail::crc32_update(crc, &first, 1);
    const int b2 = next();
    if (b != 0x1F || b2 != 0x8B)
      in.fail_at(at, (s_->members == 0 ? std::string("not a gzip file") : "trailing bytes after gzip member " +
                                                                              std::to_string(s_->members)) +
                         " (magic bytes " + hex(b) + " " + hex(b2) + ", expected 0x1f 0x8b)");
    if (const int method = next(); method != 8)
      in.fail("unsupported compression method " + std::to_string(method) + " (only 8, deflate)");
    const int flags = next();
    if ((flags & 0xE0) != 0) in.fail("reserved header flag bits set (" + hex(flags) + ")");
    for (int i = 0; i < 6; ++i) next();  // MTIME, XFL, OS
    if ((flags & 0x04) != 0) {           // FEXTRA
      const int len = next();
      for (int n = len | (next() << 8); n > 0; --n) next();
    }
    if ((flags & 0x08) != 0) while (next() != 0) {}  // FNAME
    if ((flags & 0x10) != 0) while (next() != 0) {}  // FCOMMENT
    if ((flags & 0x02) != 0) {                       // FHCRC: low 16 bits of the header's CRC-32
      const auto want = crc & 0xFFFFU;
      const int lo = in.byte_or_fail("gzip header"), hi = in.byte_or_fail("gzip header");
      if (static_cast<std::uint32_t>(lo | (hi << 8)) != want) in.fail("gzip header CRC-16 mismatch");
    }
    return true;
  }

  void trailer() {
    auto& in = s_->bits;
    in.align();
    const std::uint64_t at = in.offset();
    std::uint32_t v[2] = {0, 0};
    for (auto& word : v)
      for (int k = 0; k < 4; ++k)
        word |= static_cast<std::uint32_t>(in.byte_or_fail("gzip trailer")) << (8 * k);
    if (v[0] != s_->inflate.crc())
      in.fail_at(at, "CRC-32 mismatch in member " + std::to_string(s_->members + 1) + " (stored " + hex(v[0]) +
                         ", computed " + hex(s_->inflate.crc()) + ")");
    const auto size = static_cast<std::uint32_t>(s_->inflate.stream_size() & 0xFFFFFFFFU);
    if (v[1] != size)
      in.fail_at(at + 4, "length mismatch in member " + std::to_string(s_->members + 1) + " (stored ISIZE " +
                             std::to_string(v[1]) + ", decompressed " + std::to_string(size) + " mod 2^32)");
    ++s_->members;
  }

  static std::string hex(std::uint32_t v) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    do { s.insert(s.begin(), digits[v & 0xFU]); v >>= 4; } while (v != 0);
    if (s.size() % 2 != 0) s.insert(s.begin(), '0');
    return "0x" + s;
  }
  static std::string hex(int v) { return hex(static_cast<std::uint32_t>(v)); }

  std::unique_ptr<state> s_;
};

} // namespace prefopt::io
