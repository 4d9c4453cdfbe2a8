// prefopt/data/detail/regex_syntax.hpp — parser for the Oniguruma-style patterns of tokenizer.json.
//
// Pre-tokenizer `Split` patterns in tokenizer.json are run by the tokenizers library with
// Oniguruma (Ruby syntax, UTF-8). This parser accepts the subset such patterns use and rejects
// everything else with a message naming the offset:
//   literals and escapes  \t \n \r \f \v \a \e \0 \xHH \x{H..} \uHHHH, escaped punctuation
//   classes               [...] [^...] ranges, nested [a[b]], intersection &&
//   class escapes         \d \D \s \S \w \W \h \H \p{L} \p{N} \p{Nd} (long names too) \P{..} \p{^..}
//   any                   .  (no newline unless (?m))
//   anchors               ^ $ (lines, as in Ruby) \A \z \Z \b \B
//   groups                (...) (?:...) (?<name>...) (?i:...) (?-i:...) (?m:...) (?i) (?=...)
//                         (?!...) (?>...) (?#...)
//   quantifiers           ? * + {n} {n,} {n,m} {,m}, lazy (suffix ?), possessive (?+ *+ ++);
//                         {..}+ repeats the interval again, as Ruby reads it
// Not supported (error): backreferences, lookbehind, conditionals, POSIX brackets, \R \X \K \G,
// other Unicode properties, and quantified sub-patterns that can match the empty string.
// Case-insensitive matching uses simple case folding: unlike Oniguruma, a literal "ss" does not
// match "ß", nor does a bracket class holding ß match the two characters "ss" or "ſs" (no
// multi-character folds). The (?i:'s|'t|'re|'ve|'m|'ll|'d) group of Llama-3 and Qwen2 is not
// affected: no character folds to a piece of those strings.
#pragma once

#include <prefopt/core/error.hpp>
#include <prefopt/data/detail/unicode.hpp>

#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prefopt::data::detail::rx {

enum class property : std::uint8_t { letter, number, decimal, space, word, hex_digit };

inline bool has_property(property p, char32_t c) noexcept {
  switch (p) {
  case property::letter: return unicode::is_letter(c);
  case property::number: return unicode::is_number(c);
  case property::decimal: return unicode::is_decimal(c);
  case property::space: return unicode::is_space(c);
  case property::word: return unicode::is_word_oniguruma(c);
  case property::hex_digit: return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
  }
  return false;
}

// A bracket expression: (union of items) && (union of items) && ..., then negated if `negated`.
struct char_class {
  struct item_set {
    std::vector<std::pair<char32_t, char32_t>> ranges;
    std::vector<std::pair<property, bool>> properties; // (property, negated)
    std::vector<char_class> nested;
    [[nodiscard]] bool contains(char32_t c) const {
      for (const auto& [lo, hi] : ranges)
        if (c >= lo && c <= hi) return true;
      for (const auto& [p, neg] : properties)
        if (has_property(p, c) != neg) return true;
      for (const auto& n : nested)
        if (n.contains(c)) return true;
      return false;
    }
  };
  bool negated = false;
  std::vector<item_set> operands{1};

  [[nodiscard]] bool contains_raw(char32_t c) const {
    for (const auto& op : operands)
      if (!op.contains(c)) return false;
    return true;
  }
  [[nodiscard]] bool contains(char32_t c) const { return contains_raw(c) != negated; }
  // Case-insensitive: the class before negation is closed under case folding.
  [[nodiscard]] bool contains_icase(char32_t c) const {
    bool any = false;
    for (char32_t x : unicode::case_orbit(c))
      if (contains_raw(x)) { any = true; break; }
    return any != negated;
  }
};

struct node {
  enum class kind : std::uint8_t { empty, literal, cls, any, concat, alternate, repeat, look, atomic, assertion };
  enum class anchor : std::uint8_t { line_begin, line_end, text_begin, text_end, text_end_newline, word_boundary, not_word_boundary };
  kind k = kind::empty;
  char32_t ch = 0;         // literal
  bool icase = false;      // literal, cls
  bool dotall = false;     // any
  std::size_t cls = 0;     // index into the class list
  int min = 0, max = 0;    // repeat; max < 0: unbounded
  bool greedy = true, possessive = false;
  bool negate = false;     // look
  anchor where = anchor::line_begin;
  std::vector<node> kids;
};

struct ast {
  node root;
  std::vector<char_class> classes;
};

inline bool nullable(const node& n) {
  switch (n.k) {
  case node::kind::literal: case node::kind::cls: case node::kind::any: return false;
  case node::kind::concat:
    for (const auto& k : n.kids)
      if (!nullable(k)) return false;
    return true;
  case node::kind::alternate:
    for (const auto& k : n.kids)
      if (nullable(k)) return true;
    return false;
  case node::kind::repeat: return n.min == 0 || nullable(n.kids[0]);
  case node::kind::atomic: return nullable(n.kids[0]);
  default: return true; // empty, look, assertion
  }
}

class parser {
public:
  parser(std::string_view pattern, std::string where) : where_(std::move(where)), pattern_(pattern) {
    unicode::decode_utf8(pattern, p_, nullptr);
  }

  ast parse() {
    ast out;
    classes_ = &out.classes;
    flags f{};
    out.root = alternation(f);
    if (i_ < p_.size()) fail("unmatched ')'");
    return out;
  }

private:
  struct flags { bool icase = false, dotall = false; };

  [[noreturn]] void fail(const std::string& why) const {
    throw format_error(where_, "regex '" + std::string(pattern_) + "' at character " + std::to_string(i_) + ": " + why);
  }
  bool at_end() const { return i_ >= p_.size(); }
  char32_t peek(std::size_t k = 0) const { return i_ + k < p_.size() ? p_[i_ + k] : 0; }
  bool eat(char32_t c) {
    if (!at_end() && p_[i_] == c) { ++i_; return true; }
    return false;
  }

  node alternation(flags& f) {
    std::vector<node> alts;
    alts.push_back(sequence(f));
    while (eat('|')) alts.push_back(sequence(f));
    if (alts.size() == 1) return std::move(alts[0]);
    node n;
    n.k = node::kind::alternate;
    n.kids = std::move(alts);
    return n;
  }

  node sequence(flags& f) {
    node seq;
    seq.k = node::kind::concat;
    while (!at_end() && peek() != '|' && peek() != ')') {
      if (peek() == '(' && peek(1) == '?' && inline_flags(f)) { // (?i) applies to the rest of the group
        if (!seq.kids.empty()) fail("inline flags after other items are not supported; use (?i:...)");
        continue;
      }
      node a = atom(f);
      a = quantifiers(std::move(a));
      seq.kids.push_back(std::move(a));
    }
    if (seq.kids.size() == 1) return std::move(seq.kids[0]);
    if (seq.kids.empty()) seq.k = node::kind::empty;
    return seq;
  }

  // Parses "(?flags)" (no colon) at the cursor; returns false (cursor unchanged) otherwise.
  bool inline_flags(flags& f) {
    std::size_t j = i_ + 2;
    flags g = f;
    bool on = true;
    for (; j < p_.size() && p_[j] != ')'; ++j) {
      const char32_t c = p_[j];
      if (c == '-') on = false;
      else if (c == 'i') g.icase = on;
      else if (c == 'm') g.dotall = on;
      else return false;
    }
    if (j >= p_.size() || j == i_ + 2) return false;
    i_ = j + 1;
    f = g;
    return true;
  }

  node quantifiers(node a) {
    for (;;) {
      int lo = 0, hi = 0;
      bool interval = false;
      const std::size_t start = i_;
      if (eat('?')) { lo = 0; hi = 1; }
      else if (eat('*')) { lo = 0; hi = -1; }
      else if (eat('+')) { lo = 1; hi = -1; }
      else if (peek() == '{' && interval_at(lo, hi)) interval = true;
      else return a;
      if (a.k == node::kind::empty || a.k == node::kind::assertion || a.k == node::kind::look) {
        i_ = start;
        fail("nothing to repeat");
      }
      if (nullable(a)) { i_ = start; fail("a quantified sub-pattern that can match the empty string is not supported"); }
      node r;
      r.k = node::kind::repeat;
      r.min = lo;
      r.max = hi;
      if (eat('?')) r.greedy = false;
      else if (!interval && eat('+')) r.possessive = true;
      r.kids.push_back(std::move(a));
      a = std::move(r);
    }
  }

  // {n} {n,} {n,m} {,m}; anything else is a literal '{' (Ruby syntax).
  bool interval_at(int& lo, int& hi) {
    std::size_t j = i_ + 1;
    auto number = [&](int& out) {
      const std::size_t s = j;
      long v = 0;
      while (j < p_.size() && p_[j] >= '0' && p_[j] <= '9') {
        v = v * 10 + static_cast<long>(p_[j] - '0');
        if (v > 100000) return false;
        ++j;
      }
      out = static_cast<int>(v);
      return j > s;
    };
    const bool has_lo = number(lo);
    if (!has_lo) lo = 0;
    if (j < p_.size() && p_[j] == '}') {
      if (!has_lo) return false;
      hi = lo;
    } else if (j < p_.size() && p_[j] == ',') {
      ++j;
      if (!number(hi)) {
        if (!has_lo) return false;
        hi = -1;
      }
      if (j >= p_.size() || p_[j] != '}') return false;
    } else {
      return false;
    }
    if (hi >= 0 && hi < lo) fail("interval {n,m} with m < n");
    if (lo > 1000 || hi > 1000) fail("interval bounds above 1000 are not supported");
    i_ = j + 1;
    return true;
  }

  node atom(flags& f);
  node group(flags& f);
  node escape(const flags& f);
  std::size_t bracket();
  bool class_escape(char_class::item_set& set, char32_t& single);
  property property_name(bool& negated);
  char32_t hex_escape(int max_digits);

  std::string where_;
  std::string_view pattern_;
  std::vector<char32_t> p_;
  std::size_t i_ = 0;
  std::vector<char_class>* classes_ = nullptr;
};

} // namespace prefopt::data::detail::rx

#include <prefopt/data/detail/regex_syntax_impl.hpp>
