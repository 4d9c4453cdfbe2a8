// prefopt/data/jinja/operators.hpp — the binary operators of a chat template's expressions, with
// Python's semantics: + - * / // % ** on numbers (int64 with overflow as an error; floor division
// and modulo with the sign of the divisor), ~ (concatenation as strings), + and * on strings and
// lists, `in`; and the limits that keep a hostile template from exhausting the machine.
#pragma once

#include <prefopt/data/jinja/filters.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

namespace prefopt::data::jinja {

struct limits {
  std::size_t max_output = std::size_t{32} << 20;
  std::size_t max_iterations = 10'000'000;
  int max_depth = 64;
};

namespace detail {

// a op b, op one of + - * / // % ** ~; errors name `w` (the template and line).
inline value arith(const std::string& op, const value& a, const value& b, const std::string& w, const limits& lim) {
  auto check_size = [&](std::size_t n) {
    if (n > lim.max_output)
      throw render_error(w, "output larger than " + std::to_string(lim.max_output) + " bytes (the limit)");
  };
  auto undefined_error = [&](const value& x) {
    const auto& h = std::get<undefined_t>(x.v).hint;
    throw render_error(w, h.empty() ? "undefined value" : h);
  };
  if (op == "~") {
    auto s = to_str(a) + to_str(b);
    check_size(s.size());
    return s;
  }
  if (a.is_undefined()) undefined_error(a);
  if (b.is_undefined()) undefined_error(b);
  auto type_error = [&]() -> value {
    throw render_error(w, "unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
  };
  if (op == "+") {
    if (a.is_string() && b.is_string()) { check_size(a.str().size() + b.str().size()); return a.str() + b.str(); }
    if (a.is_list() && b.is_list()) {
      if (a.list().size() + b.list().size() > lim.max_iterations)
        throw render_error(w, "a list longer than " + std::to_string(lim.max_iterations) + " items (the limit)");
      list_t l = a.list();
      l.insert(l.end(), b.list().begin(), b.list().end());
      return l;
    }
  }
  if (op == "*" && (((a.is_string() || a.is_list()) && b.is_int()) || (a.is_int() && (b.is_string() || b.is_list())))) {
    const value& seq = a.is_int() ? b : a;
    const auto n = std::max<std::int64_t>(0, (a.is_int() ? a : b).as_int());
    const std::size_t unit = seq.is_string() ? seq.str().size() : seq.list().size();
    const std::size_t cap = seq.is_string() ? lim.max_output : lim.max_iterations;
    if (unit == 0) return seq;  // empty × n is empty, at once (found by fuzzing: () * 1e14 looped)
    if (static_cast<std::size_t>(n) > cap / unit) {
      if (seq.is_string()) check_size(lim.max_output + 1);
      throw render_error(w, "a list longer than " + std::to_string(lim.max_iterations) + " items (the limit)");
    }
    if (seq.is_string()) {
      std::string s;
      for (std::int64_t k = 0; k < n; ++k) s += seq.str();
      return s;
    }
    list_t l;
    for (std::int64_t k = 0; k < n; ++k) l.insert(l.end(), seq.list().begin(), seq.list().end());
    return l;
  }
  if (!a.is_number() || !b.is_number()) return type_error();
  const bool ints = a.is_int() && b.is_int();
  if (op == "/") {
    if (b.as_double() == 0) throw render_error(w, "division by zero");
    return a.as_double() / b.as_double();
  }
  if (op == "//" || op == "%") {
    if (ints) {
      const auto x = a.as_int(), y = b.as_int();
      if (y == 0) throw render_error(w, "integer division or modulo by zero");
      if (x == INT64_MIN && y == -1) return op == "%" ? value(0) : value(static_cast<double>(x) * -1.0);
      auto q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) { --q; r += y; }
      return op == "//" ? value(q) : value(r);
    }
    const double x = a.as_double(), y = b.as_double();
    if (y == 0) throw render_error(w, "float division by zero");
    const double q = std::floor(x / y);
    return op == "//" ? value(q) : value(x - q * y);
  }
  if (op == "**") {
    if (ints && b.as_int() >= 0) {
      std::int64_t r = 1, base = a.as_int();
      for (std::int64_t e = b.as_int(); e > 0; e /= 2) {  // by squaring
        if ((e & 1) != 0 && __builtin_mul_overflow(r, base, &r)) throw render_error(w, "integer too large");
        if (e > 1 && __builtin_mul_overflow(base, base, &base)) throw render_error(w, "integer too large");
      }
      return r;
    }
    return std::pow(a.as_double(), b.as_double());
  }
  if (ints) {
    std::int64_t r = 0;
    const bool over = op == "+" ? __builtin_add_overflow(a.as_int(), b.as_int(), &r)
                      : op == "-" ? __builtin_sub_overflow(a.as_int(), b.as_int(), &r)
                                  : __builtin_mul_overflow(a.as_int(), b.as_int(), &r);
    if (over) throw render_error(w, "integer too large");
    return r;
  }
  const double x = a.as_double(), y = b.as_double();
  return op == "+" ? x + y : op == "-" ? x - y : x * y;
}


// item in c (strings: substring; dicts: keys; otherwise iteration and ==).
inline bool contains(const value& item, const value& c, const std::string& w) {
  if (c.is_string()) {
    if (!item.is_string()) throw render_error(w, "'in <string>' requires string as left operand, not " + type_name(item));
    return c.str().find(item.str()) != std::string::npos;
  }
  if (c.is_dict()) return item.is_string() && dict_find(c.dict(), item.str()) != nullptr;
  if (c.is<namespace_t>()) throw render_error(w, "argument of type 'Namespace' is not iterable");
  for (const auto& y : iterate(c, w))
    if (equal(item, y)) return true;
  return false;
}

} // namespace detail
} // namespace prefopt::data::jinja
