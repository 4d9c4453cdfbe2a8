// prefopt/io/detail/json_strict.hpp — JSON parsing that reports duplicate object keys.
//
// RFC 8259 leaves duplicate names in an object undefined and nlohmann::json silently keeps the
// last one, so a file that names a tensor twice would load without complaint. parse_json_strict
// parses with a callback that keeps, for every open object, the set of keys seen so far, and
// reports the first key that repeats together with the keys of the objects enclosing it.
#pragma once

#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "prefopt/core/error.hpp"

namespace prefopt::io::detail {

struct json_duplicate_key {
  std::vector<std::string> path; // keys of the enclosing objects, outermost first ({} at top level)
  std::string key;
};

// Parses `text`; a syntax error is format_error(where, subject + " is not valid JSON: ..."). If some
// object holds a key twice, `duplicate` receives the first such key (the returned value then keeps
// the last occurrence); the caller decides how to report it.
[[nodiscard]] inline nlohmann::json parse_json_strict(std::string_view text, const std::string& where,
                                                      const std::string& subject,
                                                      std::optional<json_duplicate_key>& duplicate) {
  // nlohmann's lexer takes a NUL byte for the end of the input and would ignore what follows it.
  // JSON has no raw NUL anywhere (inside strings it must be escaped), so reject it here.
  if (const auto nul = text.find('\0'); nul != std::string_view::npos)
    throw format_error(where, subject + " is not valid JSON: NUL byte at offset " + std::to_string(nul));
  duplicate.reset();
  struct frame {
    bool is_object = false;
    std::set<std::string, std::less<>> keys;
    std::string last_key;
  };
  std::vector<frame> stack;
  auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using event_t = nlohmann::json::parse_event_t;
    switch (event) {
    case event_t::object_start: stack.push_back({true, {}, {}}); break;
    case event_t::array_start: stack.push_back({false, {}, {}}); break;
    case event_t::object_end:
    case event_t::array_end:
      if (!stack.empty()) stack.pop_back();
      break;
    case event_t::key:
      if (!stack.empty() && stack.back().is_object) {
        auto& top = stack.back();
        const auto& key = parsed.get_ref<const std::string&>();
        if (!top.keys.insert(key).second && !duplicate) {
          json_duplicate_key d;
          for (std::size_t i = 0; i + 1 < stack.size(); ++i)
            if (stack[i].is_object) d.path.push_back(stack[i].last_key);
          d.key = key;
          duplicate = std::move(d);
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
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for a number like 1e400
    throw format_error(where, subject + " is not valid JSON: " + e.what());
  }
}

} // namespace prefopt::io::detail
