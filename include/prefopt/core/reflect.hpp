// prefopt/core/reflect.hpp — configuration structs ↔ JSON through Boost.Hana reflection.
//
// A config struct declares its members once with BOOST_HANA_DEFINE_STRUCT; from that single
// source of truth prefopt reads JSON (unknown keys and wrong types are errors that name the key
// path), writes JSON (every option with its current value — `--print-config`), and applies
// `key.path=value` overrides (`--set`). Members may be bool, integers, floating point,
// std::string, std::optional<T>, std::vector<T>, or another reflected struct.
#pragma once

#include <boost/hana/accessors.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/define_struct.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/second.hpp>
#include <boost/hana/string.hpp>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/core/json.hpp"

namespace prefopt::reflect {

template <class T> struct is_optional : std::false_type {};
template <class T> struct is_optional<std::optional<T>> : std::true_type {};
template <class T> struct is_vector : std::false_type {};
template <class T> struct is_vector<std::vector<T>> : std::true_type {};
template <class T> inline constexpr bool is_struct_v = boost::hana::Struct<T>::value;

// The value a member of type T starts from when JSON creates it (an optional being set, a list
// element): `default_for(std::type_identity<T>)` found by argument-dependent lookup, else T{}.
template <class T> T default_of() {
  if constexpr (requires { default_for(std::type_identity<T>{}); }) return default_for(std::type_identity<T>{});
  else return T{};
}

using ordered_json = nlohmann::ordered_json;

template <class T> ordered_json to_json(const T& v);

template <class T> ordered_json value_to_json(const T& v) {
  if constexpr (is_struct_v<T>) return to_json(v);
  else if constexpr (is_optional<T>::value) return v ? value_to_json(*v) : ordered_json();
  else if constexpr (is_vector<T>::value) {
    ordered_json a = ordered_json::array();
    for (const auto& x : v) a.push_back(value_to_json(x));
    return a;
  } else return ordered_json(v);
}

// Every member, in declaration order.
template <class T> ordered_json to_json(const T& v) {
  ordered_json j = ordered_json::object();
  boost::hana::for_each(boost::hana::accessors<T>(), [&](auto pair) {
    j[boost::hana::to<const char*>(boost::hana::first(pair))] = value_to_json(boost::hana::second(pair)(v));
  });
  return j;
}

namespace detail {
inline const char* kind(const nlohmann::json& j) { return j.type_name(); }

template <class T> void value_from_json(const nlohmann::json& j, T& out, const std::string& path);

template <class T> void struct_from_json(const nlohmann::json& j, T& out, const std::string& path) {
  if (!j.is_object()) throw config_error(path.empty() ? "config" : path, std::string("expected an object, got ") + kind(j));
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    boost::hana::for_each(boost::hana::accessors<T>(), [&](auto pair) {
      if (it.key() == boost::hana::to<const char*>(boost::hana::first(pair))) {
        known = true;
        value_from_json(it.value(), boost::hana::second(pair)(out), path.empty() ? it.key() : path + "." + it.key());
      }
    });
    if (!known) {
      std::string names;
      boost::hana::for_each(boost::hana::accessors<T>(), [&](auto pair) {
        names += (names.empty() ? "" : ", ") + std::string(boost::hana::to<const char*>(boost::hana::first(pair)));
      });
      throw config_error(path.empty() ? it.key() : path + "." + it.key(), "unknown option (known here: " + names + ")");
    }
  }
}

template <class T> void value_from_json(const nlohmann::json& j, T& out, const std::string& path) {
  auto wrong = [&](const char* want) {
    throw config_error(path, std::string("expected ") + want + ", got " + kind(j) + " " +
                                 j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  };
  if constexpr (is_struct_v<T>) {
    struct_from_json(j, out, path);
  } else if constexpr (is_optional<T>::value) {
    if (j.is_null()) out.reset();
    else {
      typename T::value_type v = out ? *out : default_of<typename T::value_type>();
      value_from_json(j, v, path);
      out = std::move(v);
    }
  } else if constexpr (is_vector<T>::value) {
    if (!j.is_array()) wrong("a list");
    out.clear();
    for (std::size_t i = 0; i < j.size(); ++i) {
      typename T::value_type v = default_of<typename T::value_type>();
      value_from_json(j[i], v, path + "[" + std::to_string(i) + "]");
      out.push_back(std::move(v));
    }
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!j.is_boolean()) wrong("true or false");
    out = j.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!j.is_number()) wrong("an integer");
    out = json_integer<T>(j, path);  // range-checked: 2^32+1 into an int or 2.9 is an error, never a wrap
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!j.is_number()) wrong("a number");
    out = j.get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!j.is_string()) wrong("a string");
    out = j.get<std::string>();
  } else {
    static_assert(!sizeof(T*), "prefopt::reflect: unsupported member type");
  }
}
} // namespace detail

// Reads `j` into `out` (members absent from `j` keep their values). config_error names the path.
template <class T> void from_json(const nlohmann::json& j, T& out, const std::string& root = "") {
  detail::struct_from_json(j, out, root);
}

// "training.batch_size=16", "loss.types=[\"sigmoid\",\"sft\"]", "lora=null": the value is parsed
// as JSON when it is JSON, else taken as a string. Applied through from_json, so the same checks.
template <class T> void apply_override(T& cfg, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) throw config_error("--set " + assignment, "expected key.path=value");
  const std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  nlohmann::json value;
  try {
    value = read_json(text, "--set " + key);
  } catch (const json_error& e) {
    if (e.parser_message().empty()) throw config_error(e.where(), e.why());  // too deep, duplicate key, NUL
    value = text;                                                            // not JSON: a string
  }
  nlohmann::json patch = value;
  std::string rest = key;
  std::vector<std::string> parts;
  for (std::size_t p; (p = rest.find('.')) != std::string::npos; rest = rest.substr(p + 1)) parts.push_back(rest.substr(0, p));
  parts.push_back(rest);
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) patch = nlohmann::json{{*it, patch}};
  from_json(patch, cfg);
}

} // namespace prefopt::reflect
