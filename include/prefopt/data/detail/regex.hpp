// prefopt/data/detail/regex.hpp — a small backtracking regex engine over code points.
//
// Semantics are Oniguruma's (as used by the tokenizers library for `Split` pre-tokenizers):
// leftmost match start, alternatives tried in order (leftmost-first, not longest), greedy
// quantifiers that give back one repetition at a time, lookahead that does not consume.
// find_all returns the non-overlapping matches the library's onig iterator yields: after an
// empty match that ends where the previous match ended, the search moves one code point on.
// The pattern is compiled (regex_syntax.hpp) into a program of a few instruction kinds run by a
// depth-first backtracking machine with an explicit stack; lookahead and atomic groups run as
// sub-programs. Quantified sub-patterns must not match the empty string (checked at compile
// time), so every loop makes progress. A match attempt that backtracks more than ten million
// times throws data_error, as Oniguruma gives up at the same default limit.
#pragma once

#include <prefopt/core/error.hpp>
#include <prefopt/data/detail/regex_syntax.hpp>

#include <bitset>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prefopt::data::detail {

class regex {
public:
  using match = std::pair<std::size_t, std::size_t>; // [begin, end) in code points

  // Throws format_error(where, ...) for a pattern outside the supported subset.
  static regex compile(std::string_view pattern, const std::string& where) {
    rx::ast tree = rx::parser(pattern, where).parse();
    regex r;
    r.where_ = where;
    for (auto& c : tree.classes) {
      compiled_class cc{std::move(c), {}, {}};
      for (char32_t x = 0; x < 256; ++x) {
        cc.low[x] = cc.cls.contains(x);
        cc.low_icase[x] = cc.cls.contains_icase(x);
      }
      r.classes_.push_back(std::move(cc));
    }
    r.progs_.emplace_back();
    r.emit(tree.root, 0);
    r.progs_[0].push_back({op::match, 0, 0, 0});
    r.compute_start_sets();
    return r;
  }

  // The leftmost match starting at or after `from`, if any.
  [[nodiscard]] std::optional<match> search(std::span<const char32_t> text, std::size_t from) const {
    std::vector<frame> stack;
    return search(text, from, stack);
  }

  // Every match, as the tokenizers library's regex iterator yields them.
  void find_all(std::span<const char32_t> text, std::vector<match>& out) const {
    out.clear();
    std::vector<frame> stack;
    std::size_t last_end = 0;
    std::optional<std::size_t> last_match_end;
    while (last_end <= text.size()) {
      const auto m = search(text, last_end, stack);
      if (!m) break;
      if (m->first == m->second && last_match_end && *last_match_end == m->second) {
        ++last_end;
        continue;
      }
      last_end = m->second;
      last_match_end = m->second;
      out.push_back(*m);
    }
  }

private:
  enum class op : std::uint8_t { literal, literal_icase, cls, cls_icase, any, any_nl, split, jump, match, anchor, look, look_neg, atomic };
  struct inst {
    op code;
    std::uint8_t anchor;
    std::uint32_t a, b;
  };
  struct compiled_class {
    rx::char_class cls;
    std::bitset<256> low, low_icase;
  };
  struct frame {
    std::uint32_t pc;
    std::uint32_t pos;
  };
  static constexpr std::size_t max_program = std::size_t{1} << 20;
  static constexpr std::size_t retry_limit = 10'000'000; // Oniguruma's default retry-limit-in-match

  // What a branch can start with: for each instruction of each program, the characters below
  // 256 that the first consuming step may accept, whether it may accept any character from 256
  // up, and whether it can succeed without consuming (then nothing is ruled out).
  struct start_set {
    std::bitset<256> low;
    bool wide = false;
    bool nullable = false;
  };

  std::string where_; // for errors
  std::vector<std::vector<inst>> progs_;
  std::vector<compiled_class> classes_;
  std::vector<std::vector<start_set>> starts_;

  // Compilation (regex_compile.hpp).
  void compute_start_sets();
  const start_set& start_of(std::size_t prog, std::uint32_t pc, std::vector<std::uint8_t>& state);
  std::uint32_t push(std::size_t prog, inst in);
  std::uint32_t here(std::size_t prog) const { return static_cast<std::uint32_t>(progs_[prog].size()); }
  std::uint32_t sub_program(const rx::node& body);
  void emit(const rx::node& n, std::size_t prog);
  void set_split(std::size_t prog, std::uint32_t s, bool greedy, std::uint32_t body, std::uint32_t skip);
  void emit_repeat(const rx::node& n, std::size_t prog);

  [[nodiscard]] bool may_start(std::size_t prog, std::uint32_t pc, std::span<const char32_t> t, std::size_t p) const {
    const start_set& s = starts_[prog][pc];
    if (s.nullable) return true;
    if (p >= t.size()) return false;
    return t[p] < 256 ? s.low.test(t[p]) : s.wide;
  }

  [[nodiscard]] bool class_has(std::uint32_t idx, bool icase, char32_t c) const {
    const auto& cc = classes_[idx];
    if (c < 256) return icase ? cc.low_icase[c] : cc.low[c];
    return icase ? cc.cls.contains_icase(c) : cc.cls.contains(c);
  }

  [[nodiscard]] static bool anchor_holds(rx::node::anchor a, std::span<const char32_t> t, std::size_t p) {
    using an = rx::node::anchor;
    const std::size_t n = t.size();
    switch (a) {
    case an::line_begin: return p == 0 || (t[p - 1] == '\n' && p < n); // not after a final newline
    case an::line_end: return p == n || t[p] == '\n';
    case an::text_begin: return p == 0;
    case an::text_end: return p == n;
    case an::text_end_newline: return p == n || (p + 1 == n && t[p] == '\n');
    case an::word_boundary:
    case an::not_word_boundary: {
      const bool before = p > 0 && unicode::is_word_oniguruma(t[p - 1]);
      const bool after = p < n && unicode::is_word_oniguruma(t[p]);
      return (before != after) == (a == an::word_boundary);
    }
    }
    return false;
  }

  // Runs program `prog` anchored at `pos`; on success stores the end of the first match found.
  // `retries` counts backtracking steps of the current match attempt (sub-programs included).
  bool run(std::size_t prog, std::span<const char32_t> t, std::size_t pos, std::size_t& end, std::vector<frame>& stack,
           std::size_t& retries) const {
    const std::vector<inst>& code = progs_[prog];
    const std::size_t base = stack.size();
    const std::size_t n = t.size();
    stack.push_back({0, static_cast<std::uint32_t>(pos)});
    while (stack.size() > base) {
      std::uint32_t pc = stack.back().pc;
      std::size_t p = stack.back().pos;
      stack.pop_back();
      if (++retries > retry_limit)
        throw data_error("regex", "backtracking limit exceeded (" + std::to_string(retry_limit) +
                                      " steps at one position, as Oniguruma's retry-limit-in-match)");
      for (bool alive = true; alive;) {
        const inst& in = code[pc];
        switch (in.code) {
        case op::literal: alive = p < n && t[p] == in.a; ++p; ++pc; break;
        case op::literal_icase: alive = p < n && unicode::fold_case(t[p]) == in.a; ++p; ++pc; break;
        case op::cls: alive = p < n && class_has(in.a, false, t[p]); ++p; ++pc; break;
        case op::cls_icase: alive = p < n && class_has(in.a, true, t[p]); ++p; ++pc; break;
        case op::any: alive = p < n; ++p; ++pc; break;
        case op::any_nl: alive = p < n && t[p] != '\n'; ++p; ++pc; break;
        case op::split: {
          // Only branches that can start with the next character are tried.
          const bool a = may_start(prog, in.a, t, p), b = may_start(prog, in.b, t, p);
          if (a && b) stack.push_back({in.b, static_cast<std::uint32_t>(p)});
          alive = a || b;
          pc = a ? in.a : in.b;
          break;
        }
        case op::jump: pc = in.a; break;
        case op::match:
          end = p;
          stack.resize(base);
          return true;
        case op::anchor: alive = anchor_holds(static_cast<rx::node::anchor>(in.anchor), t, p); ++pc; break;
        case op::look:
        case op::look_neg: {
          std::size_t e = 0;
          alive = run(in.a, t, p, e, stack, retries) == (in.code == op::look);
          ++pc;
          break;
        }
        case op::atomic: {
          std::size_t e = 0;
          alive = run(in.a, t, p, e, stack, retries);
          p = e;
          ++pc;
          break;
        }
        }
      }
    }
    return false;
  }

  std::optional<match> search(std::span<const char32_t> t, std::size_t from, std::vector<frame>& stack) const {
    for (std::size_t s = from; s <= t.size(); ++s) {
      std::size_t e = 0;
      std::size_t retries = 0;
      if (may_start(0, 0, t, s) && run(0, t, s, e, stack, retries)) return match{s, e};
    }
    return std::nullopt;
  }
};

} // namespace prefopt::data::detail

#include <prefopt/data/detail/regex_compile.hpp>
