// prefopt/io/detail/lines.hpp — line splitting with a bound on line length, over any buffered source.
//
// A dataset line is held in memory whole, so its length must be bounded: without a bound a small
// file (a 10 MB .gz expanding to 10 GiB without a newline) is buffered whole. bounded_getline
// stops with a data_error naming the file and the line as soon as the line would grow past the
// limit, having buffered at most `max_length` bytes of it (plus one source buffer).
//
// A source offers `bool fill()` (false at the end of its data), `std::string_view contiguous()`
// (bytes ready to be read, non-empty after fill() returned true) and `void consume(std::size_t)`.
// std::getline has no length bound and std::istream::get(buf, n, delim) cannot tell an empty
// line from a failed read, hence this small splitter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <prefopt/core/error.hpp>

namespace prefopt::io {

// The default bound on one line of a dataset file (data::read_options::max_line_bytes).
inline constexpr std::size_t default_max_line = std::size_t{64} << 20;  // 64 MiB

namespace detail {

// The next line of `src` without its delimiter; false when no data is left (a last line without a
// delimiter is still returned). `line_number` (1-based) and `name` only go into the error.
template <class Source>
bool bounded_getline(Source& src, std::string& line, char delim, std::size_t max_length, const std::string& name,
                     std::uint64_t line_number) {
  line.clear();
  bool any = false;
  while (src.fill()) {
    any = true;
    const std::string_view chunk = src.contiguous();
    const auto at = chunk.find(delim);
    const std::size_t take = at == std::string_view::npos ? chunk.size() : at;
    if (take > max_length - line.size())
      throw data_error(where_in(name, static_cast<std::size_t>(line_number)),
                       "line longer than the limit of " + std::to_string(max_length) + " bytes");
    line.append(chunk.data(), take);
    src.consume(at == std::string_view::npos ? take : take + 1);
    if (at != std::string_view::npos) return true;
  }
  return any;
}

// An uncompressed file read in 64 KiB pieces, as a source for bounded_getline.
class plain_file {
public:
  plain_file(const std::filesystem::path& path, std::string name) : in_(path, std::ios::binary), name_(std::move(name)) {
    if (!in_) throw io_error(name_, "cannot open for reading");
  }
  bool fill() {
    if (pos_ < end_) return true;
    if (done_) return false;
    in_.read(buf_.data(), static_cast<std::streamsize>(buf_.size()));
    if (in_.bad()) throw io_error(name_, "read failed");
    pos_ = 0;
    end_ = static_cast<std::size_t>(in_.gcount());
    done_ = end_ == 0;
    return !done_;
  }
  [[nodiscard]] std::string_view contiguous() const noexcept { return {buf_.data() + pos_, end_ - pos_}; }
  void consume(std::size_t n) noexcept { pos_ += n; }

private:
  std::ifstream in_;
  std::string name_;
  std::vector<char> buf_ = std::vector<char>(std::size_t{1} << 16);
  std::size_t pos_ = 0, end_ = 0;
  bool done_ = false;
};

} // namespace detail
} // namespace prefopt::io
