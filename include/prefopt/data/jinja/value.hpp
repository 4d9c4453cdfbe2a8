// prefopt/data/jinja/value.hpp — the values a chat template computes with, with Python's semantics.
//
// A value is undefined, none, bool, int (64-bit), float, string (UTF-8; lengths, indices and slices
// count code points as Python's str does), list, dict (string keys in insertion order, as the JSON
// transformers passes), a namespace() object, or a callable (macro or built-in). Lists and dicts are
// shared, as Python objects are. Printing follows Python's str(): True, None, 1.0, ['a', 1].
//
// The interpreter is written by hand because no Debian package provides a Jinja2 implementation
// for C++, and the subset chat templates use is small enough to follow jinja2's semantics exactly.
#pragma once

#include <prefopt/core/error.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace prefopt::data::jinja {

// A template that cannot be compiled (syntax, an unsupported construct): names the template line.
class template_error : public config_error {
  using config_error::config_error;
};
// A template that fails while rendering: raise_exception(msg) (why() is msg, as transformers'
// TemplateError message), an undefined value used, a type error, a limit exceeded.
class render_error : public data_error {
  using data_error::data_error;
};

struct value;
struct call_args;
using list_t = std::vector<value>;
using dict_t = std::vector<std::pair<std::string, value>>;
using function_t = std::function<value(call_args&)>;

struct undefined_t {
  std::string hint;  // "'x' is undefined" or "'dict object' has no attribute 'x'"
};
struct none_t {};
struct namespace_t {
  std::shared_ptr<dict_t> attrs;
};
struct value;
struct callable_t {
  std::string name;
  std::shared_ptr<function_t> fn;
  std::shared_ptr<const value> self{};  // the object a bound method (d.items) belongs to, for reaches()
};

struct value {
  std::variant<undefined_t, none_t, bool, std::int64_t, double, std::string, std::shared_ptr<list_t>,
               std::shared_ptr<dict_t>, namespace_t, callable_t>
      v;
  value() : v(undefined_t{}) {}
  value(none_t n) : v(n) {}
  value(bool b) : v(b) {}
  value(std::int64_t i) : v(i) {}
  value(int i) : v(static_cast<std::int64_t>(i)) {}
  value(double d) : v(d) {}
  value(std::string s) : v(std::move(s)) {}
  value(const char* s) : v(std::string(s)) {}
  value(list_t l) : v(std::make_shared<list_t>(std::move(l))) {}
  value(dict_t d) : v(std::make_shared<dict_t>(std::move(d))) {}
  value(namespace_t n) : v(std::move(n)) {}
  value(callable_t c) : v(std::move(c)) {}
  bool tuple = false;  // a list that prints as a Python tuple: (a, b)
  static value undefined(std::string hint) { value x; x.v = undefined_t{std::move(hint)}; return x; }
  static value make_tuple(list_t l) { value x(std::move(l)); x.tuple = true; return x; }

  template <class T> [[nodiscard]] bool is() const { return std::holds_alternative<T>(v); }
  [[nodiscard]] bool is_undefined() const { return is<undefined_t>(); }
  [[nodiscard]] bool is_none() const { return is<none_t>(); }
  [[nodiscard]] bool is_string() const { return is<std::string>(); }
  [[nodiscard]] bool is_int() const { return is<std::int64_t>() || is<bool>(); }
  [[nodiscard]] bool is_number() const { return is_int() || is<double>(); }
  [[nodiscard]] bool is_list() const { return is<std::shared_ptr<list_t>>(); }
  [[nodiscard]] bool is_dict() const { return is<std::shared_ptr<dict_t>>(); }
  [[nodiscard]] const std::string& str() const { return std::get<std::string>(v); }
  [[nodiscard]] list_t& list() const { return *std::get<std::shared_ptr<list_t>>(v); }
  [[nodiscard]] dict_t& dict() const { return *std::get<std::shared_ptr<dict_t>>(v); }
  [[nodiscard]] std::int64_t as_int() const { return is<bool>() ? std::int64_t{std::get<bool>(v)} : std::get<std::int64_t>(v); }
  [[nodiscard]] double as_double() const { return is<double>() ? std::get<double>(v) : static_cast<double>(as_int()); }
};

// Positional and keyword arguments of a call.
struct call_args {
  std::vector<value> pos;
  std::vector<std::pair<std::string, value>> kw;
  std::string where;  // "template line N", for errors
  std::size_t max_size = std::size_t{32} << 20;  // the output limit, for what a call builds
  [[nodiscard]] const value* get(std::size_t i, std::string_view name) const {
    for (const auto& [k, x] : kw)
      if (k == name) return &x;
    return i < pos.size() ? &pos[i] : nullptr;
  }
};

inline const value* dict_find(const dict_t& d, std::string_view key) {
  for (const auto& [k, x] : d)
    if (k == key) return &x;
  return nullptr;
}
inline void dict_set(dict_t& d, const std::string& key, value x) {
  for (auto& [k, y] : d)
    if (k == key) { y = std::move(x); return; }
  d.emplace_back(key, std::move(x));
}

// --- UTF-8 as Python code points -------------------------------------------------------------------
inline std::u32string to_u32(std::string_view s) {
  std::u32string out;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (n == 1 || i + n > s.size()) { out += c; ++i; continue; }
    char32_t cp = c & (0x7FU >> n);
    for (std::size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3FU);
    out += cp;
    i += n;
  }
  return out;
}
inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) out += static_cast<char>(cp);
  else if (cp < 0x800) { out += static_cast<char>(0xC0 | (cp >> 6)); out += static_cast<char>(0x80 | (cp & 0x3F)); }
  else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}
inline std::string from_u32(std::u32string_view s) {
  std::string out;
  for (char32_t c : s) append_utf8(out, c);
  return out;
}
inline std::size_t code_points(std::string_view s) {
  std::size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0U) != 0x80U;
  return n;
}

// Python's repr(float): the shortest digits that read back, in fixed notation for exponents -4..15.
inline std::string python_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, r.ptr);
  const auto e = sci.find('e');
  const int exp = std::stoi(sci.substr(e + 1));
  std::string mant = sci.substr(0, e);
  const bool neg = mant[0] == '-';
  if (neg) mant.erase(0, 1);
  std::string digits;
  for (char c : mant) if (c != '.') digits += c;
  std::string out;
  if (exp >= -4 && exp < 16) {
    if (exp < 0) out = "0." + std::string(static_cast<std::size_t>(-exp - 1), '0') + digits;
    else if (static_cast<std::size_t>(exp) + 1 >= digits.size())
      out = digits + std::string(static_cast<std::size_t>(exp) + 1 - digits.size(), '0') + ".0";
    else out = digits.substr(0, static_cast<std::size_t>(exp) + 1) + "." + digits.substr(static_cast<std::size_t>(exp) + 1);
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    out += (exp < 0 ? "e-" : "e+");
    const auto a = std::to_string(exp < 0 ? -exp : exp);
    out += (a.size() < 2 ? "0" : "") + a;
  }
  return neg ? "-" + out : out;
}

inline std::string repr(const value& x);

// Python's str() of a value, as {{ x }} prints it; undefined prints as nothing.
inline std::string to_str(const value& x) {
  if (x.is_undefined()) return {};
  if (x.is_string()) return x.str();
  return repr(x);
}

inline std::string repr_string(std::string_view s) {
  const bool dq = s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos;
  const char q = dq ? '"' : '\'';
  std::string out(1, q);
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == q) { out += '\\'; out += c; }
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else out += c;
  }
  return out + q;
}

inline std::string repr(const value& x) {
  if (x.tuple && x.is_list()) {
    std::string out = "(";
    for (std::size_t i = 0; i < x.list().size(); ++i) out += (i ? ", " : "") + repr(x.list()[i]);
    return out + (x.list().size() == 1 ? ",)" : ")");
  }
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, undefined_t>) return "";
        else if constexpr (std::is_same_v<T, none_t>) return "None";
        else if constexpr (std::is_same_v<T, bool>) return v ? "True" : "False";
        else if constexpr (std::is_same_v<T, std::int64_t>) return std::to_string(v);
        else if constexpr (std::is_same_v<T, double>) return python_float(v);
        else if constexpr (std::is_same_v<T, std::string>) return repr_string(v);
        else if constexpr (std::is_same_v<T, std::shared_ptr<list_t>>) {
          std::string out = "[";
          for (std::size_t i = 0; i < v->size(); ++i) out += (i ? ", " : "") + repr((*v)[i]);
          return out + "]";
        } else if constexpr (std::is_same_v<T, std::shared_ptr<dict_t>>) {
          std::string out = "{";
          for (std::size_t i = 0; i < v->size(); ++i)
            out += (i ? ", " : "") + repr_string((*v)[i].first) + ": " + repr((*v)[i].second);
          return out + "}";
        } else if constexpr (std::is_same_v<T, namespace_t>) return "<Namespace>";
        else return "<function " + v.name + ">";
      },
      x.v);
}

inline std::string type_name(const value& x) {
  constexpr const char* names[] = {"Undefined", "NoneType", "bool", "int", "float", "str", "list", "dict", "Namespace",
                                   "function"};
  return names[x.v.index()];
}

inline bool truthy(const value& x) {
  return std::visit(
      [](const auto& v) -> bool {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, undefined_t> || std::is_same_v<T, none_t>) return false;
        else if constexpr (std::is_same_v<T, bool>) return v;
        else if constexpr (std::is_same_v<T, std::int64_t>) return v != 0;
        else if constexpr (std::is_same_v<T, double>) return v != 0.0;
        else if constexpr (std::is_same_v<T, std::string>) return !v.empty();
        else if constexpr (std::is_same_v<T, std::shared_ptr<list_t>> || std::is_same_v<T, std::shared_ptr<dict_t>>)
          return !v->empty();
        else return true;
      },
      x.v);
}

// Whether v holds, at any depth, the namespace whose attributes are `target`. A namespace is the
// only value a template can change after creating it (list methods are unsafe, dicts have no
// mutating methods), so refusing `ns.x = v` when v reaches ns keeps every value acyclic, which
// shared ownership needs to free it (jinja2 leaves such cycles to Python's collector). Shared
// parts are visited once.
inline bool reaches(const value& v, const dict_t* target) {
  std::vector<const void*> seen;
  std::vector<const value*> todo{&v};
  auto visit = [&](const void* p) {
    if (std::find(seen.begin(), seen.end(), p) != seen.end()) return false;
    seen.push_back(p);
    return true;
  };
  while (!todo.empty()) {
    const value* x = todo.back();
    todo.pop_back();
    if (const auto* l = std::get_if<std::shared_ptr<list_t>>(&x->v)) {
      if (visit(l->get()))
        for (const auto& e : **l) todo.push_back(&e);
    } else if (const auto* d = std::get_if<std::shared_ptr<dict_t>>(&x->v)) {
      if (visit(d->get()))
        for (const auto& e : **d) todo.push_back(&e.second);
    } else if (const auto* n = std::get_if<namespace_t>(&x->v)) {
      if (n->attrs.get() == target) return true;
      if (visit(n->attrs.get()))
        for (const auto& e : *n->attrs) todo.push_back(&e.second);
    } else if (const auto* c = std::get_if<callable_t>(&x->v)) {
      if (c->self && visit(c->self.get())) todo.push_back(c->self.get());
    }
  }
  return false;
}

// Python's ==.
inline bool equal(const value& a, const value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_int() && b.is_int()) return a.as_int() == b.as_int();
    return a.as_double() == b.as_double();
  }
  if (a.v.index() != b.v.index()) return false;
  if (a.is_undefined() || a.is_none()) return true;
  if (a.is_string()) return a.str() == b.str();
  if (a.is_list()) {
    if (a.list().size() != b.list().size()) return false;
    for (std::size_t i = 0; i < a.list().size(); ++i)
      if (!equal(a.list()[i], b.list()[i])) return false;
    return true;
  }
  if (a.is_dict()) {
    if (a.dict().size() != b.dict().size()) return false;
    for (const auto& [k, x] : a.dict()) {
      const auto* y = dict_find(b.dict(), k);
      if (y == nullptr || !equal(x, *y)) return false;
    }
    return true;
  }
  if (a.is<namespace_t>()) return std::get<namespace_t>(a.v).attrs == std::get<namespace_t>(b.v).attrs;
  return std::get<callable_t>(a.v).fn == std::get<callable_t>(b.v).fn;
}

// Python's <, -1/0/1; a TypeError (render_error at `where`) for values Python cannot order.
inline int compare(const value& a, const value& b, const std::string& where, std::string_view op) {
  if (a.is_number() && b.is_number()) {
    if (a.is_int() && b.is_int()) return a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int();
    return a.as_double() < b.as_double() ? -1 : a.as_double() > b.as_double();
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.str().compare(b.str());  // byte order of UTF-8 is code point order
    return c < 0 ? -1 : c > 0;
  }
  if (a.is_list() && b.is_list()) {
    const auto& x = a.list();
    const auto& y = b.list();
    for (std::size_t i = 0; i < x.size() && i < y.size(); ++i)
      if (!equal(x[i], y[i])) return compare(x[i], y[i], where, op);
    return x.size() < y.size() ? -1 : x.size() > y.size();
  }
  throw render_error(where, "'" + std::string(op) + "' not supported between instances of '" + type_name(a) +
                                "' and '" + type_name(b) + "'");
}

// A JSON value (nlohmann::json or ordered_json: objects keep the order they iterate in).
template <class Json> value from_json(const Json& j) {
  switch (j.type()) {
  case nlohmann::json::value_t::null: return none_t{};
  case nlohmann::json::value_t::boolean: return j.template get<bool>();
  case nlohmann::json::value_t::number_integer: return j.template get<std::int64_t>();
  case nlohmann::json::value_t::number_unsigned:
    return j.template get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX) ? value(j.template get<double>())
                                                                          : value(j.template get<std::int64_t>());
  case nlohmann::json::value_t::number_float: return j.template get<double>();
  case nlohmann::json::value_t::string: return j.template get<std::string>();
  case nlohmann::json::value_t::array: {
    list_t l;
    for (const auto& x : j) l.push_back(from_json(x));
    return l;
  }
  case nlohmann::json::value_t::object: {
    dict_t d;
    for (const auto& [k, x] : j.items()) d.emplace_back(k, from_json(x));
    return d;
  }
  default: return none_t{};
  }
}

} // namespace prefopt::data::jinja
