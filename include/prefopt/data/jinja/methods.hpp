// prefopt/data/jinja/methods.hpp — attribute and item access, and the Python methods of str and
// dict that chat templates call (x.strip(), m.get('k'), d.items(), ...), with jinja2's rules:
// x.name looks for an attribute first, then an item; x['name'] an item first, then an attribute.
// What is missing is undefined (an error only when used, as jinja2's default Undefined).
#pragma once

#include <prefopt/data/jinja/builtins.hpp>

#include <optional>

namespace prefopt::data::jinja {
namespace detail {

inline bool is_str_method(std::string_view n) {
  static constexpr std::string_view names[] = {"strip", "lstrip", "rstrip", "split", "startswith", "endswith", "upper",
                                               "lower", "title", "capitalize", "replace", "find", "rfind", "count",
                                               "join", "isdigit", "isspace", "isalpha", "isalnum", "islower", "isupper",
                                               "splitlines", "removeprefix", "removesuffix", "index"};
  return std::find(std::begin(names), std::end(names), n) != std::end(names);
}
inline bool is_dict_method(std::string_view n) { return n == "items" || n == "keys" || n == "values" || n == "get"; }

inline std::int64_t int_arg(const call_args& a, std::size_t i, std::string_view name, std::int64_t fallback) {
  const auto* x = a.get(i, name);
  if (x == nullptr || x->is_none()) return fallback;
  if (!x->is_int()) throw render_error(a.where, "expected an integer argument, got " + type_name(*x));
  return x->as_int();
}

inline value str_method(const std::string& s, std::string_view m, call_args& a) {
  const auto& w = a.where;
  auto str_arg = [&](std::size_t i) -> std::string {
    const auto* x = a.get(i, "");
    if (x == nullptr || !x->is_string())
      throw render_error(w, "str." + std::string(m) + "() expects a string argument");
    return x->str();
  };
  if (m == "strip") return py_strip(s, a.get(0, "chars"), true, true);
  if (m == "lstrip") return py_strip(s, a.get(0, "chars"), true, false);
  if (m == "rstrip") return py_strip(s, a.get(0, "chars"), false, true);
  if (m == "upper") return py_case(s, 0);
  if (m == "lower") return py_case(s, 1);
  if (m == "title") return py_case(s, 2);
  if (m == "capitalize") return py_case(s, 3);
  if (m == "split") return py_split(s, a.get(0, "sep"), int_arg(a, 1, "maxsplit", -1), w);
  if (m == "splitlines") {
    list_t out;
    std::size_t pos = 0;
    while (pos < s.size()) {
      auto nl = s.find_first_of("\r\n", pos);
      if (nl == std::string::npos) { out.emplace_back(s.substr(pos)); break; }
      out.emplace_back(s.substr(pos, nl - pos));
      pos = nl + (s.compare(nl, 2, "\r\n") == 0 ? 2 : 1);
    }
    return out;
  }
  if (m == "startswith" || m == "endswith") {
    const auto* x = a.get(0, "");
    if (x == nullptr) throw render_error(w, "str." + std::string(m) + "() takes at least 1 argument");
    list_t cands = x->is_list() ? x->list() : list_t{*x};
    for (const auto& c : cands) {
      if (!c.is_string()) throw render_error(w, "str." + std::string(m) + "() expects a string or a tuple of strings");
      if (m == "startswith" ? s.starts_with(c.str()) : s.ends_with(c.str())) return true;
    }
    return false;
  }
  if (m == "replace") return py_replace(s, str_arg(0), str_arg(1), int_arg(a, 2, "count", -1), a.max_size, w);
  if (m == "removeprefix") { auto p = str_arg(0); return s.starts_with(p) ? s.substr(p.size()) : s; }
  if (m == "removesuffix") { auto p = str_arg(0); return !p.empty() && s.ends_with(p) ? s.substr(0, s.size() - p.size()) : s; }
  if (m == "find" || m == "rfind" || m == "index") {
    const auto sub = str_arg(0);
    const auto at = m == "rfind" ? s.rfind(sub) : s.find(sub);
    if (at == std::string::npos) {
      if (m == "index") throw render_error(w, "substring not found");
      return -1;
    }
    return static_cast<std::int64_t>(code_points(std::string_view(s).substr(0, at)));
  }
  if (m == "count") {
    const auto sub = str_arg(0);
    if (sub.empty()) return static_cast<std::int64_t>(code_points(s) + 1);
    std::int64_t n = 0;
    for (auto at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
    return n;
  }
  if (m == "join") {
    const auto* x = a.get(0, "");
    if (x == nullptr || !x->is_list()) throw render_error(w, "str.join() expects a list");
    std::string out;
    for (std::size_t i = 0; i < x->list().size(); ++i) {
      if (!x->list()[i].is_string()) throw render_error(w, "sequence item " + std::to_string(i) + ": expected str instance");
      if (i) out += s;
      out += x->list()[i].str();
      if (out.size() > a.max_size) throw render_error(w, "output larger than " + std::to_string(a.max_size) + " bytes (the limit)");
    }
    return out;
  }
  const auto u = to_u32(s);
  auto all = [&](auto pred) { return !u.empty() && std::all_of(u.begin(), u.end(), pred); };
  if (m == "isspace") return all(py_space);
  if (m == "isdigit") return all([](char32_t c) { return c >= '0' && c <= '9'; });
  if (m == "isalpha") return all([](char32_t c) { return is_cased(c) || c > 0x2E80; });
  if (m == "isalnum") return all([](char32_t c) { return is_cased(c) || c > 0x2E80 || (c >= '0' && c <= '9'); });
  if (m == "islower") return py_case(s, 1) == s && py_case(s, 0) != s;
  if (m == "isupper") return py_case(s, 0) == s && py_case(s, 1) != s;
  throw render_error(w, "'str object' has no attribute '" + std::string(m) + "'");
}

inline value dict_method(const value& d, std::string_view m, call_args& a) {
  if (m == "get") {
    const auto* k = a.get(0, "key");
    if (k == nullptr) throw render_error(a.where, "dict.get() takes at least 1 argument");
    const auto* x = k->is_string() ? dict_find(d.dict(), k->str()) : nullptr;
    if (x != nullptr) return *x;
    const auto* fallback = a.get(1, "default");
    return fallback ? *fallback : value(none_t{});
  }
  list_t out;
  for (const auto& [k, x] : d.dict()) {
    if (m == "keys") out.emplace_back(k);
    else if (m == "values") out.push_back(x);
    else out.push_back(value::make_tuple(list_t{value(k), x}));
  }
  return out;
}

inline value bound_method(const value& self, const std::string& m) {
  auto fn = std::make_shared<function_t>([self, m](call_args& a) -> value {
    if (self.is_string()) return str_method(self.str(), m, a);
    return dict_method(self, m, a);
  });
  return callable_t{m, std::move(fn), std::make_shared<const value>(self)};
}

// jinja2's object_type_repr: "None", "dict object", "list object", ...
inline std::string object_name(const value& x) { return x.is_none() ? "None" : type_name(x) + " object"; }

// Python index into a sequence of n, or npos when out of range.
inline std::size_t py_index(std::int64_t i, std::size_t n) {
  if (i < 0) i += static_cast<std::int64_t>(n);
  return i < 0 || static_cast<std::size_t>(i) >= n ? std::string::npos : static_cast<std::size_t>(i);
}

inline value get_item(const value& x, const value& key, const std::string& where);

// x.name
inline value get_attr(const value& x, const std::string& name, const std::string& where) {
  if (x.is_undefined()) throw render_error(where, std::get<undefined_t>(x.v).hint.empty() ? "undefined value has no attribute '" + name + "'" : std::get<undefined_t>(x.v).hint);
  if (x.is_string() && is_str_method(name)) return bound_method(x, name);
  if (x.is_dict()) {
    if (is_dict_method(name)) return bound_method(x, name);
    if (const auto* v = dict_find(x.dict(), name)) return *v;
  }
  if (x.is<namespace_t>())
    if (const auto* v = dict_find(*std::get<namespace_t>(x.v).attrs, name)) return *v;
  if (x.is_list() && (name == "append" || name == "extend" || name == "pop" || name == "insert" || name == "remove" ||
                      name == "clear" || name == "sort" || name == "reverse"))
    throw render_error(where, "access to attribute '" + name + "' of 'list' object is unsafe.");
  return value::undefined("'" + object_name(x) + "' has no attribute '" + name + "'");
}

// x[key]
inline value get_item(const value& x, const value& key, const std::string& where) {
  if (x.is_undefined()) throw render_error(where, std::get<undefined_t>(x.v).hint.empty() ? "undefined value has no item" : std::get<undefined_t>(x.v).hint);
  if (x.is_dict()) {
    if (key.is_string())
      if (const auto* v = dict_find(x.dict(), key.str())) return *v;
    if (key.is_string()) return get_attr(x, key.str(), where);
    return value::undefined(object_name(x) + " has no element " + repr(key));
  }
  if ((x.is_list() || x.is_string()) && key.is_int()) {
    if (x.is_list()) {
      const auto at = py_index(key.as_int(), x.list().size());
      if (at != std::string::npos) return x.list()[at];
    } else {
      const auto u = to_u32(x.str());
      const auto at = py_index(key.as_int(), u.size());
      if (at != std::string::npos) return from_u32(std::u32string_view(u).substr(at, 1));
    }
    return value::undefined(object_name(x) + " has no element " + repr(key));
  }
  if (key.is_string()) return get_attr(x, key.str(), where);
  return value::undefined(object_name(x) + " has no element " + repr(key));
}

// x[a:b:c]
inline value get_slice(const value& x, const value& a, const value& b, const value& c, const std::string& where) {
  auto opt = [&](const value& v) -> std::optional<std::int64_t> {
    if (v.is_undefined() || v.is_none()) return std::nullopt;
    if (!v.is_int()) throw render_error(where, "slice indices must be integers or None");
    return v.as_int();
  };
  const auto step = opt(c).value_or(1);
  if (step == 0) throw render_error(where, "slice step cannot be zero");
  auto pick = [&](std::size_t n, auto&& at) {
    const auto len = static_cast<std::int64_t>(n);
    auto clamp = [&](std::optional<std::int64_t> v, std::int64_t dflt) {
      if (!v) return dflt;
      std::int64_t i = *v < 0 ? *v + len : *v;
      if (step > 0) return std::clamp<std::int64_t>(i, 0, len);
      return std::clamp<std::int64_t>(i, -1, len - 1);
    };
    const auto start = clamp(opt(a), step > 0 ? 0 : len - 1);
    const auto stop = clamp(opt(b), step > 0 ? len : -1);
    for (std::int64_t i = start; step > 0 ? i < stop : i > stop;) {
      at(static_cast<std::size_t>(i));
      if (__builtin_add_overflow(i, step, &i)) break;
    }
  };
  if (x.is_list()) {
    list_t out;
    pick(x.list().size(), [&](std::size_t i) { out.push_back(x.list()[i]); });
    return out;
  }
  if (x.is_string()) {
    const auto u = to_u32(x.str());
    std::u32string out;
    pick(u.size(), [&](std::size_t i) { out += u[i]; });
    return from_u32(out);
  }
  if (x.is_undefined()) throw render_error(where, std::get<undefined_t>(x.v).hint);
  throw render_error(where, "'" + object_name(x) + "' is not subscriptable");
}

} // namespace detail
} // namespace prefopt::data::jinja
