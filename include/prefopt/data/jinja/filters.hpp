// prefopt/data/jinja/filters.hpp — jinja2's filters (filters.py) and tests (tests.py) that chat
// templates use. Filters that take a test or an attribute (select, selectattr, map) get a callback
// into the evaluator. An unknown filter or test is a render_error naming it.
#pragma once

#include <prefopt/data/jinja/methods.hpp>

#include <charconv>
#include <functional>
#include <optional>

namespace prefopt::data::jinja {
namespace detail {

using test_fn = std::function<bool(const std::string& test, const value& x, std::vector<value> args)>;

inline list_t iterate(const value& x, const std::string& where) {
  if (x.is_list()) return x.list();
  if (x.is_undefined()) return {};
  if (x.is_dict()) {
    list_t out;
    for (const auto& [k, v] : x.dict()) out.emplace_back(k);
    return out;
  }
  if (x.is_string()) {
    list_t out;
    for (char32_t c : to_u32(x.str())) out.emplace_back(from_u32(std::u32string(1, c)));
    return out;
  }
  throw render_error(where, object_name(x) + " is not iterable");
}

inline value attribute_path(const value& x, const value& attr, const std::string& where) {
  if (attr.is_int()) return get_item(x, attr, where);
  value cur = x;
  const auto path = to_str(attr);
  std::size_t pos = 0;
  while (true) {
    const auto dot = path.find('.', pos);
    const auto part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    std::int64_t index = 0;
    const bool numeric = digits && std::from_chars(part.data(), part.data() + part.size(), index).ec == std::errc();
    cur = cur.is_undefined() ? cur : numeric ? get_item(cur, value(index), where) : get_item(cur, value(part), where);
    if (dot == std::string::npos) return cur;
    pos = dot + 1;
  }
}

// n spaces (an indent width), n within the output limit.
inline std::string spaces(std::int64_t n, std::size_t max_size, const std::string& where) {
  if (n > static_cast<std::int64_t>(std::min<std::size_t>(max_size, 1 << 20))) throw render_error(where, "indent too wide");
  return std::string(static_cast<std::size_t>(std::max<std::int64_t>(0, n)), ' ');
}

inline bool apply_test(const std::string& t, const value& x, const std::vector<value>& a, const std::string& where) {
  auto arg = [&](std::size_t i) -> const value& {
    if (i >= a.size()) throw render_error(where, "test '" + t + "' needs an argument");
    return a[i];
  };
  if (t == "defined") return !x.is_undefined();
  if (t == "undefined") return x.is_undefined();
  if (t == "none") return x.is_none();
  if (t == "string") return x.is_string();
  if (t == "mapping") return x.is_dict();
  if (t == "sequence") return x.is_list() || x.is_string() || x.is_dict();
  if (t == "iterable") return x.is_list() || x.is_string() || x.is_dict();
  if (t == "number") return x.is_number();
  if (t == "integer") return x.is<std::int64_t>();
  if (t == "float") return x.is<double>();
  if (t == "boolean") return x.is<bool>();
  if (t == "true") return x.is<bool>() && std::get<bool>(x.v);
  if (t == "false") return x.is<bool>() && !std::get<bool>(x.v);
  if (t == "callable") return x.is<callable_t>();
  if (t == "eq" || t == "equalto" || t == "==") return equal(x, arg(0));
  if (t == "ne" || t == "!=") return !equal(x, arg(0));
  if (t == "lt" || t == "lessthan" || t == "<") return compare(x, arg(0), where, "<") < 0;
  if (t == "le" || t == "<=") return compare(x, arg(0), where, "<=") <= 0;
  if (t == "gt" || t == "greaterthan" || t == ">") return compare(x, arg(0), where, ">") > 0;
  if (t == "ge" || t == ">=") return compare(x, arg(0), where, ">=") >= 0;
  if (t == "sameas") return equal(x, arg(0)) && x.v.index() == arg(0).v.index();
  if (t == "lower") return x.is_string() && py_case(x.str(), 1) == x.str();
  if (t == "upper") return x.is_string() && py_case(x.str(), 0) == x.str();
  if (t == "odd" || t == "even" || t == "divisibleby") {
    if (!x.is_int()) throw render_error(where, "test '" + t + "' needs an integer, got " + type_name(x));
    if (t == "divisibleby") {
      if (!arg(0).is_int() || arg(0).as_int() == 0) throw render_error(where, "divisibleby needs a non-zero integer");
      return arg(0).as_int() == -1 || x.as_int() % arg(0).as_int() == 0;
    }
    return (x.as_int() % 2 != 0) == (t == "odd");
  }
  if (t == "in") {
    const auto& c = arg(0);
    if (c.is_string()) return x.is_string() && c.str().find(x.str()) != std::string::npos;
    if (c.is_dict()) return x.is_string() && dict_find(c.dict(), x.str()) != nullptr;
    for (const auto& y : iterate(c, where))
      if (equal(x, y)) return true;
    return false;
  }
  throw render_error(where, "unsupported construct: test '" + t + "'");
}

inline value apply_filter(const std::string& f, const value& x, call_args& a, const test_fn& test, std::size_t max_size) {
  const auto& w = a.where;
  auto need_str = [&]() -> std::string {
    if (x.is_undefined() && f != "string") return {};
    return to_str(x);
  };
  if (f == "trim") return py_strip(need_str(), a.get(0, "chars"), true, true);
  if (f == "upper") return py_case(need_str(), 0);
  if (f == "lower") return py_case(need_str(), 1);
  if (f == "capitalize") return py_case(need_str(), 3);
  if (f == "title") return py_case(need_str(), 2);
  if (f == "string") return to_str(x);
  if (f == "safe" || f == "e" || f == "escape" || f == "forceescape") {
    if (f == "safe") return x;
    std::string out;
    for (char c : to_str(x)) {
      switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
      }
    }
    return out;
  }
  if (f == "length" || f == "count") {
    if (x.is_string()) return static_cast<std::int64_t>(code_points(x.str()));
    if (x.is_list()) return static_cast<std::int64_t>(x.list().size());
    if (x.is_dict()) return static_cast<std::int64_t>(x.dict().size());
    if (x.is_undefined()) return 0;
    throw render_error(w, "object of type '" + type_name(x) + "' has no len()");
  }
  if (f == "tojson") {
    std::string indent;
    const auto* ind = a.get(0, "indent");
    const bool has_indent = ind != nullptr && !ind->is_none();
    if (has_indent && !ind->is_int() && !ind->is_string())
      throw render_error(w, "tojson indent must be an integer or a string, got " + type_name(*ind));
    if (has_indent) indent = ind->is_int() ? spaces(ind->as_int(), max_size, w) : ind->str();
    const auto* sk = a.get(99, "sort_keys");
    std::string out;
    to_json(out, x, has_indent ? &indent : nullptr, sk != nullptr && truthy(*sk), 0, w);
    return out;
  }
  if (f == "default" || f == "d") {
    const auto* b = a.get(1, "boolean");
    const bool use = x.is_undefined() || (b != nullptr && truthy(*b) && !truthy(x));
    if (!use) return x;
    const auto* d = a.get(0, "default_value");
    return d ? *d : value(std::string());
  }
  if (f == "join") {
    const auto* sep = a.get(0, "d");
    const auto* attr = a.get(1, "attribute");
    std::string out, s = sep ? to_str(*sep) : "";
    bool first = true;
    for (const auto& y : iterate(x, w)) {
      if (!first) out += s;
      first = false;
      out += to_str(attr ? attribute_path(y, *attr, w) : y);
      if (out.size() > max_size) throw render_error(w, "output larger than the limit");
    }
    return out;
  }
  if (f == "first" || f == "last") {
    auto l = iterate(x, w);
    if (l.empty()) return value::undefined("No " + f + " item, sequence was empty.");
    return f == "first" ? l.front() : l.back();
  }
  if (f == "list") return iterate(x, w);
  if (f == "reverse") {
    if (x.is_string()) { auto u = to_u32(x.str()); std::reverse(u.begin(), u.end()); return from_u32(u); }
    auto l = iterate(x, w);
    std::reverse(l.begin(), l.end());
    return l;
  }
  if (f == "int") {
    const auto* dflt = a.get(0, "default");
    const value fallback = dflt ? *dflt : value(0);
    if (x.is_int()) return x.as_int();
    if (x.is<double>()) return std::fabs(x.as_double()) < 9.2e18 ? value(static_cast<std::int64_t>(x.as_double())) : fallback;
    if (x.is_string()) {
      try {
        std::size_t n = 0;
        const auto s = py_strip(x.str(), nullptr, true, true);
        const auto i = std::stoll(s, &n);
        if (n == s.size()) return static_cast<std::int64_t>(i);
        const auto d = std::stod(s, &n);
        if (n == s.size() && std::fabs(d) < 9.2e18) return static_cast<std::int64_t>(d);
      } catch (const std::exception&) {}
    }
    return fallback;
  }
  if (f == "float") {
    const auto* dflt = a.get(0, "default");
    if (x.is_number()) return x.as_double();
    if (x.is_string()) {
      try {
        std::size_t n = 0;
        const auto s = py_strip(x.str(), nullptr, true, true);
        const auto d = std::stod(s, &n);
        if (n == s.size()) return d;
      } catch (const std::exception&) {}
    }
    return dflt ? *dflt : value(0.0);
  }
  if (f == "abs") {
    if (x.is_int()) {
      if (x.as_int() == INT64_MIN) throw render_error(w, "integer too large");
      return x.as_int() < 0 ? -x.as_int() : x.as_int();
    }
    if (x.is<double>()) return std::fabs(x.as_double());
    throw render_error(w, "bad operand type for abs(): '" + type_name(x) + "'");
  }
  if (f == "round") {
    if (!x.is_number()) throw render_error(w, "round needs a number, got " + type_name(x));
    const auto prec = int_arg(a, 0, "precision", 0);
    const auto* m = a.get(1, "method");
    const std::string method = m ? to_str(*m) : "common";
    const double p = std::pow(10.0, static_cast<double>(prec)), v = x.as_double() * p;
    double r = method == "ceil" ? std::ceil(v) : method == "floor" ? std::floor(v) : std::nearbyint(v);  // Python rounds halves to even
    return r / p;
  }
  if (f == "items" || f == "dictsort") {
    if (x.is_undefined()) return list_t{};
    if (!x.is_dict()) throw render_error(w, "can only use " + f + " on a mapping, got " + type_name(x));
    dict_t d = x.dict();
    if (f == "dictsort") {
      const auto* cs = a.get(0, "case_sensitive");
      const auto* by = a.get(1, "by");
      const auto* rev = a.get(2, "reverse");
      const bool sensitive = cs && truthy(*cs), by_value = by && to_str(*by) == "value";
      auto key = [&](const std::pair<std::string, value>& e) -> value {
        value k = by_value ? e.second : value(e.first);
        return !sensitive && k.is_string() ? value(py_case(k.str(), 1)) : k;
      };
      std::stable_sort(d.begin(), d.end(), [&](const auto& p, const auto& q) { return compare(key(p), key(q), w, "<") < 0; });
      if (rev && truthy(*rev)) std::reverse(d.begin(), d.end());
    }
    list_t out;
    for (auto& [k, v] : d) out.push_back(value::make_tuple(list_t{value(k), v}));
    return out;
  }
  if (f == "unique") {
    list_t out;
    for (const auto& y : iterate(x, w)) {
      const auto* attr = a.get(1, "attribute");
      auto key = [&](const value& v) {
        value k = attr ? attribute_path(v, *attr, w) : v;
        return k.is_string() ? value(py_case(k.str(), 1)) : k;
      };
      if (std::none_of(out.begin(), out.end(), [&](const value& z) { return equal(key(z), key(y)); })) out.push_back(y);
    }
    return out;
  }
  if (f == "sort") {
    auto l = iterate(x, w);
    const auto* rev = a.get(0, "reverse");
    const auto* attr = a.get(2, "attribute");
    auto key = [&](const value& v) {
      value k = attr ? attribute_path(v, *attr, w) : v;
      return k.is_string() ? value(py_case(k.str(), 1)) : k;
    };
    std::stable_sort(l.begin(), l.end(), [&](const value& p, const value& q) { return compare(key(p), key(q), w, "<") < 0; });
    if (rev && truthy(*rev)) std::reverse(l.begin(), l.end());
    return l;
  }
  if (f == "replace") {
    const auto* from = a.get(0, "old");
    const auto* to = a.get(1, "new");
    if (!from || !to) throw render_error(w, "replace needs two arguments");
    return py_replace(need_str(), to_str(*from), to_str(*to), int_arg(a, 2, "count", -1), max_size, w);
  }
  if (f == "indent") {
    const auto* width = a.get(0, "width");
    const auto* first = a.get(1, "first");
    const auto* blank = a.get(2, "blank");
    if (width != nullptr && !width->is_string() && !width->is_int())
      throw render_error(w, "indent width must be an integer or a string, got " + type_name(*width));
    const std::string pad = width == nullptr ? "    " : width->is_string() ? width->str()
                                                                             : spaces(width->as_int(), max_size, w);
    auto s = need_str();
    std::string out;
    std::size_t pos = 0, line = 0;
    while (true) {
      const auto nl = s.find('\n', pos);
      const auto part = s.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      const bool blank_line = py_strip(part, nullptr, true, true).empty();
      if ((line > 0 || (first && truthy(*first))) && (!blank_line || (blank && truthy(*blank)))) out += pad;
      out += part;
      if (nl == std::string::npos) break;
      out += '\n';
      pos = nl + 1;
      ++line;
    }
    return out;
  }
  if (f == "map" || f == "selectattr" || f == "rejectattr" || f == "select" || f == "reject") {
    list_t out;
    for (const auto& y : iterate(x, w)) {
      if (f == "map") {
        if (const auto* attr = a.get(99, "attribute")) {
          auto v = attribute_path(y, *attr, w);
          if (v.is_undefined())
            if (const auto* d = a.get(99, "default")) v = *d;
          out.push_back(v);
        } else if (!a.pos.empty()) {
          call_args inner{{a.pos.begin() + 1, a.pos.end()}, {}, w};
          out.push_back(apply_filter(to_str(a.pos[0]), y, inner, test, max_size));
        } else {
          throw render_error(w, "map needs a filter name or attribute=");
        }
        continue;
      }
      const bool by_attr = f.ends_with("attr");
      const std::size_t first = by_attr ? 1 : 0;
      if (by_attr && a.pos.empty()) throw render_error(w, f + " needs an attribute");
      const value subject = by_attr ? attribute_path(y, a.pos[0], w) : y;
      bool keep;
      if (a.pos.size() > first) keep = test(to_str(a.pos[first]), subject, {a.pos.begin() + static_cast<std::ptrdiff_t>(first) + 1, a.pos.end()});
      else keep = truthy(subject);
      if (keep == (f == "select" || f == "selectattr")) out.push_back(y);
    }
    return out;
  }
  if (f == "sum" || f == "min" || f == "max") {
    auto l = iterate(x, w);
    if (f == "sum") {
      value acc = a.get(1, "start") ? *a.get(1, "start") : value(0);
      for (const auto& y : l) {
        if (!acc.is_number() || !y.is_number()) throw render_error(w, "sum needs numbers");
        std::int64_t r = 0;
        if (acc.is_int() && y.is_int() && __builtin_add_overflow(acc.as_int(), y.as_int(), &r))
          throw render_error(w, "integer too large");
        acc = acc.is_int() && y.is_int() ? value(r) : value(acc.as_double() + y.as_double());
      }
      return acc;
    }
    if (l.empty()) return value::undefined("No aggregated item, sequence was empty.");
    value best = l[0];
    for (const auto& y : l)
      if (compare(y, best, w, "<") * (f == "min" ? 1 : -1) < 0) best = y;
    return best;
  }
  if (f == "wordcount") return static_cast<std::int64_t>(py_split(need_str(), nullptr, -1, w).size());
  if (f == "center" || f == "truncate" || f == "wordwrap" || f == "batch" || f == "slice" || f == "groupby" ||
      f == "format" || f == "urlencode" || f == "urlize" || f == "xmlattr" || f == "filesizeformat" || f == "striptags" ||
      f == "pprint" || f == "random" || f == "attr")
    throw render_error(w, "unsupported construct: filter '" + f + "'");
  throw render_error(w, "no filter named '" + f + "'");
}

} // namespace detail
} // namespace prefopt::data::jinja
