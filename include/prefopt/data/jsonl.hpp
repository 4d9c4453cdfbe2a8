// prefopt/data/jsonl.hpp — JSON Lines reader for .jsonl and .jsonl.gz with a skip-or-stop policy.
//
// One JSON value per line. The reader:
//  - decompresses gzip on the fly when the file starts with the gzip magic bytes 1f 8b (whatever
//    its name); a file named *.gz that does not start with them is a format_error;
//  - drops a UTF-8 byte order mark at the start of the file, a '\r' before each '\n' (CRLF files),
//    and reads a last line that has no newline;
//  - skips blank lines (only spaces, tabs, CR), counting them in the report;
//  - bounds the length of a line (read_options::max_line_bytes, 64 MiB by default): a longer line
//    is a data_error "file:line: line longer than the limit of N bytes", thrown whatever the
//    policy, before more than N bytes of it are held in memory;
//  - turns a malformed line into a data_error "file:line: malformed JSON at column N: <parser's
//    message>" (nlohmann-json's message; a number too large for a double is malformed too). A line
//    nested deeper than read_options::json.max_depth, one whose object repeats a key or one holding
//    a raw NUL byte is a data_error "file:line: ..." too (prefopt::read_json, core/json.hpp). Python's
//    json.dumps writes non-finite floats as NaN / Infinity / -Infinity, which JSON does not allow; such
//    a line gets the error "file:line: field 'a.b[2]': NaN is not a valid JSON number ...".
// on_error::stop throws the first error; on_error::skip counts it, keeps the first `keep_errors`
// messages in the report and goes on. A caller that finds a parsed value unusable (a missing field)
// hands the error to reject(), which applies the same policy, so one report covers both kinds.
//
//   prefopt::data::jsonl_reader in("train.jsonl.gz", {.policy = prefopt::data::on_error::skip});
//   for (const auto& [line, value] : in) { ... }
//   std::cerr << in.report().summary() << "\n";
#pragma once

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <prefopt/core/error.hpp>
#include <prefopt/core/json.hpp>
#include <prefopt/io/detail/lines.hpp>
#include <prefopt/io/gzip.hpp>

namespace prefopt::data {

enum class on_error {
  stop,  // throw the first error
  skip,  // count the record as skipped, keep its message (up to keep_errors), go on
};

struct read_options {
  on_error policy = on_error::stop;
  std::size_t keep_errors = 10;  // messages kept in read_report::first_errors; all errors are counted
  std::size_t max_line_bytes = io::default_max_line;  // longest line accepted (decompressed bytes)
  json_limits json{};            // nesting depth and duplicate keys of each line (core/json.hpp)
};

struct read_report {
  std::size_t lines = 0;    // lines read, blank ones included
  std::size_t blank = 0;    // blank lines, skipped
  std::size_t records = 0;  // records accepted (parsed, and not rejected by the caller)
  std::size_t skipped = 0;  // records rejected under on_error::skip
  std::vector<std::string> first_errors;  // their messages, the first keep_errors of them

  // "120 lines: 117 records, 2 skipped, 1 blank; first error: train.jsonl:5: malformed JSON: ..."
  [[nodiscard]] std::string summary() const {
    std::string s = std::to_string(lines) + " lines: " + std::to_string(records) + " records, " +
                    std::to_string(skipped) + " skipped, " + std::to_string(blank) + " blank";
    if (!first_errors.empty()) s += "; first error: " + first_errors.front();
    return s;
  }
};

struct jsonl_line {
  std::size_t line = 0;  // 1-based line number in the (decompressed) file
  nlohmann::json value;
  std::string text;  // the line as read (the JSON text of value)
};

namespace detail {

// "[json.exception.parse_error.101] parse error at line 1, column 5: syntax error ..." ->
// "malformed JSON at column 5: syntax error ..." (the line is the file's line, reported in where()).
inline std::string malformed_message(std::string msg) {
  if (msg.starts_with("[json.exception.")) {
    if (const auto p = msg.find("] "); p != std::string::npos) msg.erase(0, p + 2);
  }
  if (msg.starts_with("parse error at line 1, column ")) {
    msg.erase(0, std::strlen("parse error at line 1, "));
    return "malformed JSON at " + msg;
  }
  if (msg.starts_with("parse error: ")) msg.erase(0, std::strlen("parse error: "));
  return "malformed JSON: " + msg;
}

inline constexpr const char* nonfinite_marker = "\x01nonfinite:";

// Replaces the bare literals NaN, Infinity and -Infinity outside strings by marker strings, so the
// line parses and the field holding them can be named. False if there were none.
inline bool mark_nonfinite(std::string& text) {
  std::string out;
  bool in_string = false, escaped = false, found = false;
  for (std::size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      out += c;
      ++i;
      continue;
    }
    bool matched = false;
    for (const char* literal : {"-Infinity", "Infinity", "NaN"}) {
      const std::size_t n = std::strlen(literal);
      if (text.compare(i, n, literal) == 0) {
        out += std::string("\"\\u0001nonfinite:") + literal + "\"";
        i += n;
        matched = found = true;
        break;
      }
    }
    if (matched) continue;
    in_string = c == '"';
    out += c;
    ++i;
  }
  text = std::move(out);
  return found;
}

// Finds the first marker left by mark_nonfinite: its path ("a.b[2]") and the literal it replaced.
inline bool find_nonfinite(const nlohmann::json& v, std::string& path, std::string& literal) {
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (!s.starts_with(nonfinite_marker)) return false;
    literal = s.substr(std::strlen(nonfinite_marker));
    return true;
  }
  if (v.is_object()) {
    for (const auto& [key, item] : v.items()) {
      std::string sub = path.empty() ? key : path + "." + key;
      if (find_nonfinite(item, sub, literal)) { path = std::move(sub); return true; }
    }
  } else if (v.is_array()) {
    for (std::size_t i = 0; i < v.size(); ++i) {
      std::string sub = path + "[" + std::to_string(i) + "]";
      if (find_nonfinite(v[i], sub, literal)) { path = std::move(sub); return true; }
    }
  }
  return false;
}

inline nlohmann::json parse_json_line(const std::string& text, const std::string& file, std::size_t line,
                                      const json_limits& limits = {}) {
  const std::string where = where_in(file, line);
  try {
    return read_json(text, where, limits);
  } catch (const json_error& e) {
    if (e.parser_message().empty()) throw data_error(where, e.why());  // depth, duplicate key, NUL
    std::string marked = text;
    if (mark_nonfinite(marked)) {
      nlohmann::json v;
      try {
        v = read_json(marked, where, limits);
      } catch (const json_error&) {
        throw data_error(where, malformed_message(e.parser_message()));
      }
      std::string path, literal;
      if (find_nonfinite(v, path, literal))
        throw data_error(where_in(file, line, path),
                         literal + " is not a valid JSON number (non-finite values are not allowed)");
    }
    throw data_error(where, malformed_message(e.parser_message()));
  }
}

} // namespace detail

class jsonl_reader {
public:
  explicit jsonl_reader(const std::filesystem::path& path, read_options options = {})
      : file_(path.string()), options_(options) {
    std::ifstream probe(path, std::ios::binary);
    if (!probe) throw io_error(file_, "cannot open for reading");
    char magic[2] = {0, 0};
    probe.read(magic, 2);
    const auto got = probe.gcount();
    probe.close();
    if (got == 2 && magic[0] == '\x1f' && magic[1] == '\x8b') {
      gzip_ = std::make_unique<io::gzip_reader>(path);
    } else {
      if (path.extension() == ".gz" && got > 0)
        throw format_error(file_, "the name ends in .gz but the file does not start with the gzip magic bytes");
      plain_ = std::make_unique<io::detail::plain_file>(path, file_);
    }
  }

  // The next JSON value; false at the end of the file. Throws data_error for a malformed line under
  // on_error::stop, format_error for corrupt gzip data, data_error for a line longer than
  // max_line_bytes and io_error for a failed read (the last three always).
  bool next(jsonl_line& out) {
    std::string text;
    while (read_line(text)) {
      const std::size_t line = ++report_.lines;
      if (line == 1 && text.starts_with("\xEF\xBB\xBF")) text.erase(0, 3);
      if (!text.empty() && text.back() == '\r') text.pop_back();
      if (text.find_first_not_of(" \t\r") == std::string::npos) {
        ++report_.blank;
        continue;
      }
      try {
        out.value = detail::parse_json_line(text, file_, line, options_.json);
      } catch (const data_error& e) {
        note(e);
        continue;
      }
      out.line = line;
      out.text = std::move(text);
      ++report_.records;
      return true;
    }
    return false;
  }

  // The caller rejects the value last returned by next(): throws e under on_error::stop; under
  // on_error::skip moves the record from `records` to `skipped` and keeps the message.
  void reject(const data_error& e) {
    if (report_.records > 0) --report_.records;
    note(e);
  }

  [[nodiscard]] const read_report& report() const noexcept { return report_; }
  [[nodiscard]] const read_options& options() const noexcept { return options_; }
  // The file as error messages spell it (the path as given).
  [[nodiscard]] const std::string& file() const noexcept { return file_; }
  [[nodiscard]] bool compressed() const noexcept { return gzip_ != nullptr; }

  class iterator {
  public:
    using value_type = jsonl_line;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(jsonl_reader* r) : r_(r) { ++*this; }
    const jsonl_line& operator*() const noexcept { return current_; }
    const jsonl_line* operator->() const noexcept { return &current_; }
    iterator& operator++() {
      if (r_ != nullptr && !r_->next(current_)) r_ = nullptr;
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const noexcept { return r_ == nullptr; }

  private:
    jsonl_reader* r_ = nullptr;
    jsonl_line current_;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

private:
  bool read_line(std::string& text) {
    if (gzip_) return gzip_->getline(text, '\n', options_.max_line_bytes);
    return io::detail::bounded_getline(*plain_, text, '\n', options_.max_line_bytes, file_, report_.lines + 1);
  }

  void note(const data_error& e) {
    if (options_.policy == on_error::stop) throw e;
    ++report_.skipped;
    if (report_.first_errors.size() < options_.keep_errors) report_.first_errors.emplace_back(e.what());
  }

  std::string file_;
  read_options options_;
  std::unique_ptr<io::gzip_reader> gzip_;
  std::unique_ptr<io::detail::plain_file> plain_;
  read_report report_;
};

} // namespace prefopt::data
