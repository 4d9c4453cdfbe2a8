// prefopt/data/jinja/builtins.hpp — the filters, tests and methods chat templates call, following
// jinja2's filters.py/tests.py and Python's str/dict methods, and transformers' tojson
// (json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)).
#pragma once

#include <prefopt/data/jinja/value.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <string_view>

namespace prefopt::data::jinja {
namespace detail {

inline bool py_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// str.strip / lstrip / rstrip, with optional characters to strip (None: whitespace).
inline std::string py_strip(const std::string& s, const value* chars, bool left, bool right) {
  const auto u = to_u32(s);
  std::u32string set;
  const bool ws = chars == nullptr || chars->is_none() || chars->is_undefined();
  if (!ws) set = to_u32(to_str(*chars));
  auto strip = [&](char32_t c) { return ws ? py_space(c) : set.find(c) != std::u32string::npos; };
  std::size_t b = 0, e = u.size();
  if (left) while (b < e && strip(u[b])) ++b;
  if (right) while (e > b && strip(u[e - 1])) --e;
  return from_u32(std::u32string_view(u).substr(b, e - b));
}

inline char32_t simple_upper(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
  if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}
inline char32_t simple_lower(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if ((c >= 0xC0 && c <= 0xDE && c != 0xD7)) return c + 32;
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}
inline bool is_cased(char32_t c) { return simple_upper(c) != c || simple_lower(c) != c; }

// Case mapping for ASCII, Latin-1, Greek and Cyrillic (other scripts are left as they are).
inline std::string py_case(const std::string& s, int mode) {  // 0 upper, 1 lower, 2 title, 3 capitalize
  auto u = to_u32(s);
  bool prev_cased = false;
  for (std::size_t i = 0; i < u.size(); ++i) {
    const char32_t c = u[i];
    if (mode == 0) u[i] = simple_upper(c);
    else if (mode == 1) u[i] = simple_lower(c);
    else if (mode == 2) { u[i] = prev_cased ? simple_lower(c) : simple_upper(c); prev_cased = is_cased(c); }
    else u[i] = i == 0 ? simple_upper(c) : simple_lower(c);
  }
  return from_u32(u);
}

inline std::string py_replace(const std::string& s, const std::string& from, const std::string& to, std::int64_t count,
                              std::size_t max_size, const std::string& where) {
  std::string out;
  auto check = [&] {
    if (out.size() > max_size) throw render_error(where, "output larger than " + std::to_string(max_size) + " bytes (the limit)");
  };
  if (from.empty()) {  // Python inserts `to` between code points
    const auto u = to_u32(s);
    std::int64_t n = 0;
    for (std::size_t i = 0; i <= u.size(); ++i) {
      if (count < 0 || n < count) { out += to; ++n; check(); }
      if (i < u.size()) append_utf8(out, u[i]);
    }
    return out;
  }
  std::size_t pos = 0;
  std::int64_t n = 0;
  while (count < 0 || n < count) {
    const auto at = s.find(from, pos);
    if (at == std::string::npos) break;
    out.append(s, pos, at - pos).append(to);
    check();
    pos = at + from.size();
    ++n;
  }
  return out.append(s, pos);
}

inline list_t py_split(const std::string& s, const value* sep, std::int64_t maxsplit, const std::string& where) {
  list_t out;
  if (sep == nullptr || sep->is_none() || sep->is_undefined()) {
    const auto u = to_u32(s);
    std::size_t i = 0;
    std::int64_t n = 0;
    while (true) {
      while (i < u.size() && py_space(u[i])) ++i;
      if (i == u.size()) break;
      if (maxsplit >= 0 && n == maxsplit) {
        std::size_t e = u.size();
        while (e > i && py_space(u[e - 1])) --e;
        out.emplace_back(from_u32(std::u32string_view(u).substr(i, e - i)));
        break;
      }
      std::size_t j = i;
      while (j < u.size() && !py_space(u[j])) ++j;
      out.emplace_back(from_u32(std::u32string_view(u).substr(i, j - i)));
      ++n;
      i = j;
    }
    return out;
  }
  const auto d = to_str(*sep);
  if (d.empty()) throw render_error(where, "empty separator");
  std::size_t pos = 0;
  std::int64_t n = 0;
  while (maxsplit < 0 || n < maxsplit) {
    const auto at = s.find(d, pos);
    if (at == std::string::npos) break;
    out.emplace_back(s.substr(pos, at - pos));
    pos = at + d.size();
    ++n;
  }
  out.emplace_back(s.substr(pos));
  return out;
}

inline void json_string(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    case '\b': out += "\\b"; break;
    case '\f': out += "\\f"; break;
    default:
      if (c < 0x20) {
        static constexpr char hex[] = "0123456789abcdef";
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 15];
      } else {
        out += static_cast<char>(c);
      }
    }
  }
  out += '"';
}

// json.dumps(x, ensure_ascii=False, indent, separators=None, sort_keys).
inline void to_json(std::string& out, const value& x, const std::string* indent, bool sort_keys, std::size_t level,
                    const std::string& where) {
  const std::string item_sep = indent ? "," : ", ";
  auto newline = [&](std::size_t l) {
    if (!indent) return;
    out += '\n';
    for (std::size_t k = 0; k < l; ++k) out += *indent;
  };
  if (level > 200) throw render_error(where, "tojson: value nested too deeply");
  if (x.is_none() || x.is_undefined()) {
    if (x.is_undefined()) throw render_error(where, "Object of type Undefined is not JSON serializable");
    out += "null";
  } else if (x.is<bool>()) out += std::get<bool>(x.v) ? "true" : "false";
  else if (x.is<std::int64_t>()) out += std::to_string(x.as_int());
  else if (x.is<double>()) {
    const double d = x.as_double();
    out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d < 0 ? "-Infinity" : "Infinity") : python_float(d);
  } else if (x.is_string()) json_string(out, x.str());
  else if (x.is_list()) {
    if (x.list().empty()) { out += "[]"; return; }
    out += '[';
    for (std::size_t i = 0; i < x.list().size(); ++i) {
      if (i) out += item_sep;
      newline(level + 1);
      to_json(out, x.list()[i], indent, sort_keys, level + 1, where);
    }
    newline(level);
    out += ']';
  } else if (x.is_dict() || x.is<namespace_t>()) {
    const auto& d0 = x.is_dict() ? x.dict() : *std::get<namespace_t>(x.v).attrs;
    if (!x.is_dict()) throw render_error(where, "Object of type Namespace is not JSON serializable");
    dict_t d = d0;
    if (sort_keys) std::stable_sort(d.begin(), d.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    if (d.empty()) { out += "{}"; return; }
    out += '{';
    for (std::size_t i = 0; i < d.size(); ++i) {
      if (i) out += item_sep;
      newline(level + 1);
      json_string(out, d[i].first);
      out += ": ";
      to_json(out, d[i].second, indent, sort_keys, level + 1, where);
    }
    newline(level);
    out += '}';
  } else {
    throw render_error(where, "Object of type " + type_name(x) + " is not JSON serializable");
  }
}

} // namespace detail
} // namespace prefopt::data::jinja
