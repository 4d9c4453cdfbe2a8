// prefopt/core/json.hpp — the one way prefopt reads JSON: a nesting limit, no duplicate keys, no NUL
// bytes, and every failure a prefopt error that names its source.
//
// Every JSON text prefopt reads from a user (run.json, config.json, tokenizer.json,
// tokenizer_config.json, adapter_config.json, safetensors headers and indexes, JSONL lines, --set
// values) goes through read_json:
//  - nesting deeper than json_limits::max_depth (default 256) is an error raised while parsing, at
//    the first array or object too deep. nlohmann-json's parser is iterative, but much of what is
//    done with the value afterwards (copies, dump, comparisons, a recursive walk) recurses once per
//    level, so ~30 000 levels in a 60 KB line would overflow the stack later on;
//  - a key that appears twice in one object is an error naming the key and the object's path
//    (RFC 8259 leaves it undefined; nlohmann-json silently keeps the last value);
//  - a raw NUL byte is an error (JSON has none outside escapes; nlohmann's lexer would take it for
//    the end of the input and ignore whatever follows);
//  - a syntax error, or a number beyond a double (1e400), is a json_error — a format_error — whose
//    where() is the source name given ("model.safetensors", "train.jsonl:17").
// Hand-written on top of nlohmann-json's parser callback (which reports the depth of every event)
// because the library has no depth limit and no duplicate-key check of its own.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "prefopt/core/error.hpp"

namespace prefopt {

inline constexpr std::size_t json_default_max_depth = 256;

struct json_limits {
  std::size_t max_depth = json_default_max_depth;  // arrays and objects nested at most this deep
  bool reject_duplicate_keys = true;
};

// A JSON text that cannot be used. parser_message() is nlohmann-json's own message for a syntax
// error or a number beyond a double (empty for the limits prefopt adds: depth, duplicate keys,
// NUL bytes), for readers that reword it (the JSONL reader does).
class json_error : public format_error {
public:
  json_error(std::string where, std::string why, std::string parser_message = {})
      : format_error(std::move(where), std::move(why)), parser_message_(std::move(parser_message)) {}
  [[nodiscard]] const std::string& parser_message() const noexcept { return parser_message_; }

private:
  std::string parser_message_;
};

struct json_duplicate_key {
  std::vector<std::string> path;  // keys of the enclosing objects, outermost first ({} at top level)
  std::string key;
};

namespace detail {

inline std::string json_subject(const std::string& subject, const std::string& rest) {
  if (!subject.empty()) return subject + " " + rest;
  return rest.starts_with("is ") ? rest.substr(3) : rest;  // "run.json: not valid JSON: ..."
}

// Parses `text` under the depth limit. With `duplicate` given, the first repeated key is stored
// there (the value keeps the last occurrence) and the caller reports it; without, duplicates are
// not looked for. `subject` ("the header") starts the messages; empty: they start with "not valid".
inline nlohmann::json parse_json(std::string_view text, const std::string& where, const std::string& subject,
                                 std::size_t max_depth, std::optional<json_duplicate_key>* duplicate) {
  if (const auto nul = text.find('\0'); nul != std::string_view::npos)
    throw json_error(where, json_subject(subject, "is not valid JSON: NUL byte at offset " + std::to_string(nul)));
  if (duplicate) duplicate->reset();
  struct frame {
    bool is_object = false;
    std::set<std::string, std::less<>> keys;
    std::string last_key;
  };
  std::vector<frame> stack;
  auto callback = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using event_t = nlohmann::json::parse_event_t;
    switch (event) {
    case event_t::object_start:
    case event_t::array_start:
      // `depth` counts the containers around this one; this one is level depth + 1.
      if (std::size_t(depth) >= max_depth)
        throw json_error(where, json_subject(subject, "nests arrays and objects deeper than " + std::to_string(max_depth) +
                                                          " levels (the limit; prefopt::json_limits::max_depth)"));
      if (duplicate) stack.push_back({event == event_t::object_start, {}, {}});
      break;
    case event_t::object_end:
    case event_t::array_end:
      if (duplicate && !stack.empty()) stack.pop_back();
      break;
    case event_t::key:
      if (duplicate && !stack.empty() && stack.back().is_object) {
        auto& top = stack.back();
        const auto& key = parsed.get_ref<const std::string&>();
        if (!top.keys.insert(key).second && !*duplicate) {
          json_duplicate_key d;
          for (std::size_t i = 0; i + 1 < stack.size(); ++i)
            if (stack[i].is_object) d.path.push_back(stack[i].last_key);
          d.key = key;
          *duplicate = std::move(d);
        }
        top.last_key = key;
      }
      break;
    case event_t::value: break;
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true);
  } catch (const nlohmann::json::parse_error& e) {
    throw json_error(where, json_subject(subject, std::string("is not valid JSON: ") + e.what()), e.what());
  } catch (const nlohmann::json::out_of_range& e) {  // 406: a number beyond a double, e.g. 1e400
    throw json_error(where, json_subject(subject, std::string("holds a number out of the range of a double: ") + e.what()), e.what());
  } catch (const nlohmann::json::exception& e) {
    throw json_error(where, json_subject(subject, std::string("is not valid JSON: ") + e.what()));
  }
}

inline std::string duplicate_message(const json_duplicate_key& d) {
  std::string in = "the top-level object";
  if (!d.path.empty()) {
    in = "'";
    for (std::size_t i = 0; i < d.path.size(); ++i) in += (i ? "." : "") + d.path[i];
    in += "'";
  }
  return "key '" + d.key + "' appears more than once in " + in;
}

} // namespace detail

// At most `max_bytes` bytes of `text`, cut at a UTF-8 character boundary (never inside one).
[[nodiscard]] inline std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t n = max_bytes;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;  // text[n] continues a character
  return text.substr(0, n);
}

// A value for an error message: JSON text, invalid UTF-8 replaced by U+FFFD (dump() would throw),
// cut at a character boundary after about `max_bytes` bytes with "..." appended.
[[nodiscard]] inline std::string json_excerpt(const nlohmann::json& value, std::size_t max_bytes = 80) {
  const std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const std::string_view cut = utf8_prefix(text, max_bytes);
  return cut.size() < text.size() ? std::string(cut) + "..." : text;
}

// The start of a text for an error message, quoted as a JSON string; see json_excerpt.
[[nodiscard]] inline std::string text_excerpt(std::string_view text, std::size_t max_bytes = 60) {
  const std::string_view cut = utf8_prefix(text, max_bytes);
  return nlohmann::json(std::string(cut)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
         (cut.size() < text.size() ? "..." : "");
}

// The integer `value` holds, checked before any conversion: a JSON integer, or a number with no
// fractional part (3.0; not 2.9, not 1e30 beyond the range), within [lo, hi] — by default the
// range of T. Anything else is a config_error at `where` ("config.json: field 'n_layer'") that
// gives the range, so no value from a file wraps around or is truncated on its way into a T.
template <class T>
  requires std::is_integral_v<T>
[[nodiscard]] T json_integer(const nlohmann::json& value, const std::string& where,
                             std::int64_t lo = std::max<std::int64_t>(std::numeric_limits<T>::min(), std::numeric_limits<std::int64_t>::min()),
                             std::int64_t hi = std::int64_t(std::min<std::uint64_t>(std::uint64_t(std::numeric_limits<T>::max()),
                                                                                    std::uint64_t(std::numeric_limits<std::int64_t>::max())))) {
  auto bad = [&](const std::string& what) -> T {
    throw config_error(where, "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + what);
  };
  if (value.is_number_unsigned()) {
    const auto u = value.get<std::uint64_t>();
    if (hi < 0 || u > std::uint64_t(hi) || (lo > 0 && u < std::uint64_t(lo))) return bad(std::to_string(u));
    return T(u);
  }
  if (value.is_number_integer()) {
    const auto v = value.get<std::int64_t>();
    if (v < lo || v > hi) return bad(std::to_string(v));
    return T(v);
  }
  if (value.is_number_float()) {
    const double d = value.get<double>();
    if (!std::isfinite(d) || std::floor(d) != d) return bad(json_excerpt(value) + " (not a whole number)");
    if (static_cast<long double>(d) < static_cast<long double>(lo) || static_cast<long double>(d) > static_cast<long double>(hi))
      return bad(json_excerpt(value));
    return T(std::int64_t(d));
  }
  return bad(std::string(value.type_name()) + " " + json_excerpt(value));
}

// Parses `text`; `source` names it in every error ("run.json", "train.jsonl:17").
[[nodiscard]] inline nlohmann::json read_json(std::string_view text, const std::string& source, const json_limits& limits = {}) {
  std::optional<json_duplicate_key> duplicate;
  nlohmann::json j = detail::parse_json(text, source, "", limits.max_depth, limits.reject_duplicate_keys ? &duplicate : nullptr);
  if (duplicate) throw json_error(source, detail::duplicate_message(*duplicate));
  return j;
}

// Reads and parses a whole file (io_error when it cannot be read).
[[nodiscard]] inline nlohmann::json read_json_file(const std::filesystem::path& file, const json_limits& limits = {}) {
  const std::string name = file.string();
  std::ifstream in(file, std::ios::binary);
  if (!in) throw io_error(name, "cannot open for reading");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw io_error(name, "read failed");
  return read_json(buffer.view(), name, limits);
}

} // namespace prefopt
