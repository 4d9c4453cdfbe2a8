// prefopt/io/gzip.hpp — a streaming gzip (RFC 1952) reader over zlib.
//
// gzip_reader decompresses a .gz file or stream piece by piece (64 KiB of input and 64 KiB of
// output buffered), so a multi-gigabyte .jsonl.gz never sits in memory whole. zlib decodes the
// DEFLATE data; gzip_impl.hpp reads the member framing around it.
//
// What it accepts, like Python's gzip module:
//  - several members one after another (what `cat a.gz b.gz` makes): their contents are joined;
//    zero bytes between or after members are skipped;
//  - the optional header fields FEXTRA, FNAME, FCOMMENT and FHCRC (whose CRC-16 is checked);
//  - an empty file (0 bytes): no data, no error.
// Each member's CRC-32 and ISIZE (length mod 2^32) are checked at its end. Anything else — bad magic
// bytes, a compression method other than 8, reserved flags, corrupt DEFLATE data (zlib's message
// says what: invalid block type, stored block lengths, code lengths, distance too far back, ...),
// data that ends early, a CRC or length mismatch — throws prefopt::format_error whose where() is
// "<file>: byte <offset in the compressed file>".
//
// getline bounds the length of a line (default_max_line, 64 MiB, unless told otherwise): a longer
// line is a data_error "<file>:<line>: line longer than the limit of N bytes", thrown before more
// than N bytes of it are buffered — a small .gz that expands to gigabytes without a newline cannot
// exhaust memory.
//
//   prefopt::io::gzip_reader in("train.jsonl.gz");
//   for (std::string line; in.getline(line);) { ... }
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <istream>
#include <memory>
#include <string>

#include <prefopt/core/error.hpp>
#include <prefopt/io/detail/lines.hpp>
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
    while (done < n && s_->z.fill()) {
      const auto chunk = s_->z.contiguous();
      const auto k = std::min(n - done, chunk.size());
      std::memcpy(dst + done, chunk.data(), k);
      s_->z.consume(k);
      done += k;
    }
    return done;
  }

  // Like std::getline: the next line without its delimiter; false when no data is left. A last
  // line without a delimiter is still returned. A line longer than max_length bytes throws
  // data_error naming the file and the line (counted over the lines getline returned).
  bool getline(std::string& line, char delim = '\n', std::size_t max_length = default_max_line) {
    if (!detail::bounded_getline(s_->z, line, delim, max_length, name(), s_->lines + 1)) return false;
    ++s_->lines;
    return true;
  }

  // True when every member has been read and checked.
  [[nodiscard]] bool at_end() { return !s_->z.fill(); }
  // Decompressed bytes handed out so far.
  [[nodiscard]] std::uint64_t position() const noexcept { return s_->z.position(); }
  // Members completely read (and checked) so far.
  [[nodiscard]] std::size_t members() const noexcept { return s_->z.members(); }
  [[nodiscard]] const std::string& name() const noexcept { return s_->z.name(); }
  // DEFLATE blocks started so far, by type: [0] stored, [1] fixed Huffman, [2] dynamic Huffman.
  [[nodiscard]] const std::array<std::uint64_t, 3>& blocks() const noexcept { return s_->z.blocks(); }

private:
  struct state {
    explicit state(const std::filesystem::path& path) : file(path, std::ios::binary), z(file, path.string()) {
      if (!file) throw io_error(path.string(), "cannot open for reading");
    }
    state(std::istream& in, std::string name) : z(in, std::move(name)) {}
    std::ifstream file;
    detail::gzip_stream z;
    std::uint64_t lines = 0;
  };
  std::unique_ptr<state> s_;
};

} // namespace prefopt::io
