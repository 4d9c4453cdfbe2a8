// prefopt/data/detail/regex_syntax_impl.hpp — the parser's atoms, groups, escapes and brackets.
#pragma once

#include <prefopt/data/detail/regex_syntax.hpp>

namespace prefopt::data::detail::rx {

inline node parser::atom(flags& f) {
  const char32_t c = p_[i_];
  node n;
  switch (c) {
  case '(': ++i_; return group(f);
  case '[':
    ++i_;
    n.k = node::kind::cls;
    n.icase = f.icase;
    n.cls = bracket();
    return n;
  case '.': ++i_; n.k = node::kind::any; n.dotall = f.dotall; return n;
  case '^': ++i_; n.k = node::kind::assertion; n.where = node::anchor::line_begin; return n;
  case '$': ++i_; n.k = node::kind::assertion; n.where = node::anchor::line_end; return n;
  case '\\': ++i_; return escape(f);
  case '*': case '+': case '?': fail("nothing to repeat");
  default: break;
  }
  ++i_;
  n.k = node::kind::literal;
  n.icase = f.icase && unicode::case_orbit(c).size() > 1;
  n.ch = n.icase ? unicode::fold_case(c) : c;
  return n;
}

inline node parser::group(flags& outer) {
  flags f = outer; // flags set inside a group end with it
  node n;
  bool wrap = false; // look or atomic: the body becomes kids[0]
  if (eat('?')) {
    const char32_t c = peek();
    if (c == ':') { ++i_; }
    else if (c == '=' || c == '!') { ++i_; n.k = node::kind::look; n.negate = c == '!'; wrap = true; }
    else if (c == '>') { ++i_; n.k = node::kind::atomic; wrap = true; }
    else if (c == '<' && (peek(1) == '=' || peek(1) == '!')) { fail("lookbehind is not supported"); }
    else if (c == '<' || c == '\'') {
      const char32_t close = c == '<' ? '>' : '\'';
      ++i_;
      while (!at_end() && peek() != close) ++i_;
      if (!eat(close)) fail("unterminated group name");
    } else if (c == '#') {
      while (!at_end() && peek() != ')') ++i_;
      if (!eat(')')) fail("unterminated comment");
      return node{};
    } else {
      bool on = true;
      for (;;) {
        const char32_t g = peek();
        if (g == '-') on = false;
        else if (g == 'i') f.icase = on;
        else if (g == 'm') f.dotall = on;
        else if (g == ':') { ++i_; break; }
        else fail("unsupported group syntax (?" + std::string(1, static_cast<char>(g < 0x80 ? g : '?')) + "...");
        ++i_;
      }
    }
  }
  node body = alternation(f);
  if (!eat(')')) fail("missing ')'");
  if (!wrap) return body;
  n.kids.push_back(std::move(body));
  return n;
}

inline char32_t parser::hex_escape(int max_digits) {
  auto digit = [](char32_t c) -> int {
    if (c >= '0' && c <= '9') return static_cast<int>(c - '0');
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return static_cast<int>((c | 0x20) - 'a' + 10);
    return -1;
  };
  const bool braced = max_digits == 2 && eat('{');
  const int limit = braced ? 8 : max_digits;
  char32_t v = 0;
  int n = 0;
  while (n < limit && !at_end() && digit(peek()) >= 0) {
    v = v * 16 + static_cast<char32_t>(digit(peek()));
    ++i_;
    ++n;
  }
  if (n == 0 || (max_digits == 4 && n != 4)) fail("bad hexadecimal escape");
  if (braced && !eat('}')) fail("bad \\x{...} escape");
  if (v > 0x10FFFF || (v >= 0xD800 && v < 0xE000)) fail("escape is not a Unicode scalar value");
  return v;
}

inline property parser::property_name(bool& negated) {
  if (!eat('{')) fail("\\p and \\P need a braced property name");
  if (eat('^')) negated = !negated;
  std::string name;
  while (!at_end() && peek() != '}') name += static_cast<char>(p_[i_++] & 0x7F);
  if (!eat('}')) fail("unterminated property name");
  if (name == "L" || name == "Letter") return property::letter;
  if (name == "N" || name == "Number") return property::number;
  if (name == "Nd" || name == "Decimal_Number") return property::decimal;
  fail("unsupported Unicode property '" + name + "' (supported: L, N, Nd)");
}

// After a backslash inside or outside a bracket: adds a property to `set` and returns true, or
// stores a single character in `single` and returns false.
inline bool parser::class_escape(char_class::item_set& set, char32_t& single) {
  if (at_end()) fail("trailing backslash");
  const char32_t c = p_[i_++];
  switch (c) {
  case 'd': case 'D': set.properties.emplace_back(property::decimal, c == 'D'); return true;
  case 's': case 'S': set.properties.emplace_back(property::space, c == 'S'); return true;
  case 'w': case 'W': set.properties.emplace_back(property::word, c == 'W'); return true;
  case 'h': case 'H': set.properties.emplace_back(property::hex_digit, c == 'H'); return true;
  case 'p': case 'P': {
    bool negated = c == 'P';
    const property p = property_name(negated);
    set.properties.emplace_back(p, negated);
    return true;
  }
  case 't': single = '\t'; return false;
  case 'n': single = '\n'; return false;
  case 'r': single = '\r'; return false;
  case 'f': single = '\f'; return false;
  case 'v': single = '\v'; return false;
  case 'a': single = 0x07; return false;
  case 'e': single = 0x1B; return false;
  case '0': single = 0; return false;
  case 'x': single = hex_escape(2); return false;
  case 'u': single = hex_escape(4); return false;
  default: break;
  }
  if (c < 0x80 && ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))) {
    --i_;
    fail(std::string("unsupported escape \\") + static_cast<char>(c));
  }
  single = c;
  return false;
}

inline node parser::escape(const flags& f) {
  node n;
  const char32_t c = peek();
  auto anchor = [&](node::anchor a) {
    ++i_;
    n.k = node::kind::assertion;
    n.where = a;
    return n;
  };
  switch (c) {
  case 'A': return anchor(node::anchor::text_begin);
  case 'z': return anchor(node::anchor::text_end);
  case 'Z': return anchor(node::anchor::text_end_newline);
  case 'b': return anchor(node::anchor::word_boundary);
  case 'B': return anchor(node::anchor::not_word_boundary);
  default: break;
  }
  if (c >= '1' && c <= '9') fail("backreferences are not supported");
  char_class cc;
  char32_t single = 0;
  if (class_escape(cc.operands[0], single)) {
    n.k = node::kind::cls;
    n.cls = classes_->size();
    classes_->push_back(std::move(cc));
    return n;
  }
  n.k = node::kind::literal;
  n.icase = f.icase && unicode::case_orbit(single).size() > 1;
  n.ch = n.icase ? unicode::fold_case(single) : single;
  return n;
}

inline std::size_t parser::bracket() {
  // Parses up to and including the closing ']' into a class; nested brackets recurse.
  struct impl {
    parser& ps;
    char_class run() {
      char_class cc;
      if (ps.eat('^')) cc.negated = true;
      bool first = true;
      for (;;) {
        if (ps.at_end()) ps.fail("unterminated bracket expression");
        auto& set = cc.operands.back();
        const char32_t c = ps.peek();
        if (c == ']' && !first) { ++ps.i_; return cc; }
        first = false;
        if (c == '&' && ps.peek(1) == '&') {
          ps.i_ += 2;
          cc.operands.emplace_back();
          continue;
        }
        if (c == '[') {
          if (ps.peek(1) == ':') ps.fail("POSIX bracket expressions are not supported");
          ++ps.i_;
          set.nested.push_back(run());
          continue;
        }
        char32_t lo = 0;
        ++ps.i_;
        if (c == '\\') {
          if (ps.class_escape(set, lo)) continue;
        } else {
          lo = c;
        }
        char32_t hi = lo;
        if (ps.peek() == '-' && ps.i_ + 1 < ps.p_.size() && ps.peek(1) != ']') {
          ++ps.i_;
          const char32_t d = ps.p_[ps.i_++];
          if (d == '[') ps.fail("a range cannot end in a bracket expression");
          if (d == '\\') {
            char_class::item_set scratch;
            if (ps.class_escape(scratch, hi)) ps.fail("a range cannot end in a class escape");
          } else {
            hi = d;
          }
          if (hi < lo) ps.fail("empty range in bracket expression");
        }
        set.ranges.emplace_back(lo, hi);
      }
    }
  };
  char_class cc = impl{*this}.run();
  classes_->push_back(std::move(cc));
  return classes_->size() - 1;
}

} // namespace prefopt::data::detail::rx
