// prefopt/io/detail/json_strict.hpp — JSON parsing for the safetensors header and index, which
// report a duplicate key in their own words (a tensor named twice names the tensor).
//
// A thin layer over prefopt's one JSON reader (core/json.hpp): the same depth limit, NUL check and
// error types; the first repeated key is handed back instead of thrown.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "prefopt/core/json.hpp"

namespace prefopt::io::detail {

using prefopt::json_duplicate_key;

// Parses `text`; a syntax error, a number beyond a double or nesting deeper than max_depth is a
// json_error (a format_error) at `where` whose message starts with `subject`. If some object holds a
// key twice, `duplicate` receives the first such key (the returned value then keeps the last
// occurrence); the caller decides how to report it.
[[nodiscard]] inline nlohmann::json parse_json_strict(std::string_view text, const std::string& where,
                                                      const std::string& subject,
                                                      std::optional<json_duplicate_key>& duplicate,
                                                      std::size_t max_depth = json_default_max_depth) {
  return prefopt::detail::parse_json(text, where, subject, max_depth, &duplicate);
}

} // namespace prefopt::io::detail
