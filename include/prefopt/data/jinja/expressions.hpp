// prefopt/data/jinja/expressions.hpp — the syntax tree (expressions and statements) and the
// expression half of the parser, with jinja2's grammar and precedence (parser.py):
// ternary < or < and < not < comparisons (== != < > <= >= in, not in) < + - < ~ <
// * / // % < ** < unary -/+ < filters and tests (| and is) < postfix (.x [i] [a:b:c] (args)).
// parser.hpp adds the statements on top of it.
#pragma once

#include <prefopt/data/jinja/lexer.hpp>

#include <algorithm>
#include <charconv>
#include <memory>
#include <string>
#include <vector>

namespace prefopt::data::jinja {

struct expr;
using expr_ptr = std::unique_ptr<expr>;

struct expr {
  enum kind_t { literal, name, list, dict, attr, item, slice, call, filter, test, neg, pos, binary, compare, and_, or_,
                not_, cond } kind = literal;
  std::size_t line = 1;
  value lit;                       // literal
  std::string s;                   // name, attr, filter/test name, binary operator
  std::vector<expr_ptr> args;      // operands; for call/filter/test: [callee or subject, positional...]
  std::vector<std::string> keys;   // call/filter/test keyword names (their values follow the positionals in args),
                                   // compare operators, dict: unused (keys are args[2k], values args[2k+1])
  std::size_t positional = 0;      // call/filter/test: positional count (after the subject)
  bool negated = false;            // test: "is not"
};

struct stmt;
using body_t = std::vector<std::unique_ptr<stmt>>;

struct stmt {
  enum kind_t { text, output, if_, for_, set, set_block, macro, break_, continue_ } kind = text;
  std::size_t line = 1;
  std::string s;                     // text; set: the name; set attr: the namespace name
  std::string attr;                  // set ns.attr
  std::vector<std::string> targets;  // for / set tuple targets; macro parameters
  std::vector<expr_ptr> exprs;       // output: [x]; if: conditions; for: [iterable, filter?]; set: [x]; macro: defaults
  std::vector<body_t> bodies;        // if: one per condition (+ else); for: [body, else]; set_block/macro: [body]
  bool has_filter = false;
};

// The token cursor and the expression grammar; parser (parser.hpp) derives from it.
class expression_parser {
protected:
  expression_parser(std::vector<token> toks, std::string name) : t_(std::move(toks)), name_(std::move(name)) {}

  std::vector<token> t_;
  std::size_t i_ = 0;
  std::string name_;
  int depth_ = 0;
  static constexpr int max_depth = 200;

  [[noreturn]] void fail(std::size_t line, const std::string& why) const { throw template_error(line_where(name_, line), why); }
  const token& peek(std::size_t k = 0) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  token next() { return t_[std::min(i_++, t_.size() - 1)]; }
  bool at_op(std::string_view o) const { return peek().kind == tok::op && peek().s == o; }
  bool at_name(std::string_view n) const { return peek().kind == tok::name && peek().s == n; }
  void expect_op(std::string_view o) {
    if (!at_op(o)) fail(peek().line, "expected '" + std::string(o) + "'" + found());
    ++i_;
  }
  std::string found() const {
    const auto& k = peek();
    if (k.kind == tok::block_end || k.kind == tok::var_end) return ", found the end of the tag";
    if (k.kind == tok::eof) return ", found the end of the template";
    return ", found '" + k.s + "'";
  }
  std::string expect_name() {
    if (peek().kind != tok::name) fail(peek().line, "expected a name" + found());
    return next().s;
  }
  void expect_block_end() {
    if (peek().kind != tok::block_end) fail(peek().line, "expected the end of the tag" + found());
    ++i_;
  }

  expr_ptr make(expr::kind_t k, std::size_t line) {
    auto e = std::make_unique<expr>();
    e->kind = k;
    e->line = line;
    return e;
  }

  // A bare tuple "a, b" (a list here) or one expression.
  expr_ptr parse_tuple(bool condexpr = true) {
    const auto line = peek().line;
    auto first = condexpr ? parse_expression() : parse_or();
    if (!at_op(",")) return first;
    auto l = make(expr::list, line);
    l->args.push_back(std::move(first));
    while (at_op(",")) {
      ++i_;
      if (peek().kind == tok::block_end || peek().kind == tok::var_end || at_op(")")) break;
      l->args.push_back(condexpr ? parse_expression() : parse_or());
    }
    return l;
  }

  expr_ptr parse_expression() {
    if (++depth_ > max_depth) fail(peek().line, "expression nested too deeply");
    auto e = parse_or();
    while (at_name("if")) {
      const auto line = next().line;
      auto c = make(expr::cond, line);
      auto test = parse_or();
      expr_ptr otherwise;
      if (at_name("else")) { ++i_; otherwise = parse_expression(); }
      else otherwise = make(expr::literal, line);  // undefined, as jinja2
      c->args.push_back(std::move(test));
      c->args.push_back(std::move(e));
      c->args.push_back(std::move(otherwise));
      e = std::move(c);
    }
    --depth_;
    return e;
  }
  expr_ptr parse_or() {
    auto e = parse_and();
    while (at_name("or")) {
      auto o = make(expr::or_, next().line);
      o->args.push_back(std::move(e));
      o->args.push_back(parse_and());
      e = std::move(o);
    }
    return e;
  }
  expr_ptr parse_and() {
    auto e = parse_not();
    while (at_name("and")) {
      auto o = make(expr::and_, next().line);
      o->args.push_back(std::move(e));
      o->args.push_back(parse_not());
      e = std::move(o);
    }
    return e;
  }
  expr_ptr parse_not() {
    if (at_name("not")) {
      auto o = make(expr::not_, next().line);
      o->args.push_back(parse_not());
      return o;
    }
    return parse_compare();
  }
  expr_ptr parse_compare() {
    const auto line = peek().line;
    auto e = parse_math1();
    expr_ptr c;
    while (true) {
      std::string op;
      if (peek().kind == tok::op && (peek().s == "==" || peek().s == "!=" || peek().s == "<" || peek().s == ">" ||
                                     peek().s == "<=" || peek().s == ">="))
        op = next().s;
      else if (at_name("in")) { ++i_; op = "in"; }
      else if (at_name("not") && peek(1).kind == tok::name && peek(1).s == "in") { i_ += 2; op = "notin"; }
      else break;
      if (!c) { c = make(expr::compare, line); c->args.push_back(std::move(e)); }
      c->keys.push_back(op);
      c->args.push_back(parse_math1());
    }
    return c ? std::move(c) : std::move(e);
  }
  expr_ptr binary(std::string op, expr_ptr a, expr_ptr b, std::size_t line) {
    auto o = make(expr::binary, line);
    o->s = std::move(op);
    o->args.push_back(std::move(a));
    o->args.push_back(std::move(b));
    return o;
  }
  expr_ptr parse_math1() {
    auto e = parse_concat();
    while (at_op("+") || at_op("-")) {
      const auto t = next();
      e = binary(t.s, std::move(e), parse_concat(), t.line);
    }
    return e;
  }
  expr_ptr parse_concat() {
    auto e = parse_math2();
    while (at_op("~")) {
      const auto t = next();
      e = binary("~", std::move(e), parse_math2(), t.line);
    }
    return e;
  }
  expr_ptr parse_math2() {
    auto e = parse_pow();
    while (at_op("*") || at_op("/") || at_op("//") || at_op("%")) {
      const auto t = next();
      e = binary(t.s, std::move(e), parse_pow(), t.line);
    }
    return e;
  }
  expr_ptr parse_pow() {
    auto e = parse_unary();
    while (at_op("**")) {
      const auto t = next();
      e = binary("**", std::move(e), parse_unary(), t.line);
    }
    return e;
  }
  expr_ptr parse_unary(bool with_filter = true) {
    if (++depth_ > max_depth) fail(peek().line, "expression nested too deeply");
    expr_ptr e;
    if (at_op("-") || at_op("+")) {
      const auto t = next();
      e = make(t.s == "-" ? expr::neg : expr::pos, t.line);
      e->args.push_back(parse_unary(false));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    --depth_;
    return e;
  }
  expr_ptr parse_primary() {
    const auto t = peek();
    if (t.kind == tok::name) {
      ++i_;
      auto e = make(expr::literal, t.line);
      if (t.s == "true" || t.s == "True") e->lit = true;
      else if (t.s == "false" || t.s == "False") e->lit = false;
      else if (t.s == "none" || t.s == "None") e->lit = none_t{};
      else { e->kind = expr::name; e->s = t.s; }
      return e;
    }
    if (t.kind == tok::string) {
      std::string s;
      while (peek().kind == tok::string) s += next().s;
      auto e = make(expr::literal, t.line);
      e->lit = std::move(s);
      return e;
    }
    if (t.kind == tok::integer || t.kind == tok::real) {
      ++i_;
      auto e = make(expr::literal, t.line);
      try {
        if (t.kind == tok::integer) e->lit = static_cast<std::int64_t>(std::stoll(t.s));
        else e->lit = std::stod(t.s);
      } catch (const std::exception&) {
        fail(t.line, "number out of range: " + t.s);
      }
      return e;
    }
    if (at_op("(")) {
      ++i_;
      if (at_op(")")) { ++i_; return make(expr::list, t.line); }
      auto e = parse_tuple();
      expect_op(")");
      return e;
    }
    if (at_op("[")) {
      ++i_;
      auto e = make(expr::list, t.line);
      while (!at_op("]")) {
        e->args.push_back(parse_expression());
        if (!at_op(",")) break;
        ++i_;
      }
      expect_op("]");
      return e;
    }
    if (at_op("{")) {
      ++i_;
      auto e = make(expr::dict, t.line);
      while (!at_op("}")) {
        e->args.push_back(parse_expression());
        expect_op(":");
        e->args.push_back(parse_expression());
        if (!at_op(",")) break;
        ++i_;
      }
      expect_op("}");
      return e;
    }
    fail(t.line, "expected an expression" + found());
  }
  // (args) after the callee, already in e->args[0].
  void parse_call_args(expr& e) {
    expect_op("(");
    std::vector<expr_ptr> kwvals;
    while (!at_op(")")) {
      if (peek().kind == tok::name && peek(1).kind == tok::op && peek(1).s == "=") {
        e.keys.push_back(next().s);
        ++i_;
        kwvals.push_back(parse_expression());
      } else {
        if (!kwvals.empty()) fail(peek().line, "a positional argument follows a keyword argument");
        e.args.push_back(parse_expression());
        ++e.positional;
      }
      if (!at_op(",")) break;
      ++i_;
    }
    expect_op(")");
    for (auto& k : kwvals) e.args.push_back(std::move(k));
  }
  expr_ptr parse_postfix(expr_ptr e) {
    while (true) {
      if (at_op(".")) {
        const auto line = next().line;
        auto a = make(expr::attr, line);
        if (peek().kind == tok::integer) {
          a->kind = expr::item;
          a->args.push_back(std::move(e));
          auto idx = make(expr::literal, line);
          std::int64_t index = 0;
          const auto digits = next().s;
          if (std::from_chars(digits.data(), digits.data() + digits.size(), index).ec != std::errc())
            fail(line, "number out of range: " + digits);
          idx->lit = index;
          a->args.push_back(std::move(idx));
        } else {
          a->s = expect_name();
          a->args.push_back(std::move(e));
        }
        e = std::move(a);
      } else if (at_op("[")) {
        const auto line = next().line;
        expr_ptr parts[3];
        int colons = 0;
        while (!at_op("]")) {
          if (at_op(":")) {
            if (++colons > 2) fail(peek().line, "too many ':' in a subscript");
            ++i_;
          } else {
            if (parts[colons]) fail(peek().line, "expected ']'" + found());
            parts[colons] = parse_expression();
          }
        }
        ++i_;
        if (colons == 0) {
          if (!parts[0]) fail(line, "empty subscript");
          auto a = make(expr::item, line);
          a->args.push_back(std::move(e));
          a->args.push_back(std::move(parts[0]));
          e = std::move(a);
        } else {
          auto a = make(expr::slice, line);
          a->args.push_back(std::move(e));
          for (auto& p : parts) a->args.push_back(p ? std::move(p) : make(expr::literal, line));
          e = std::move(a);
        }
      } else if (at_op("(")) {
        auto c = make(expr::call, peek().line);
        c->args.push_back(std::move(e));
        parse_call_args(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }
  expr_ptr parse_filter_expr(expr_ptr e) {
    while (true) {
      if (at_op("|")) {
        const auto line = next().line;
        auto f = make(expr::filter, line);
        f->s = expect_name();
        while (at_op(".")) { ++i_; f->s += '.'; f->s += expect_name(); }
        f->args.push_back(std::move(e));
        if (at_op("(")) parse_call_args(*f);
        e = std::move(f);
      } else if (at_name("is")) {
        const auto line = next().line;
        auto t = make(expr::test, line);
        if (at_name("not")) { ++i_; t->negated = true; }
        t->s = expect_name();
        t->args.push_back(std::move(e));
        if (at_op("(")) {
          parse_call_args(*t);
        } else if ((peek().kind == tok::name || peek().kind == tok::string || peek().kind == tok::integer ||
                    peek().kind == tok::real || at_op("(") || at_op("[") || at_op("{")) &&
                   !at_name("else") && !at_name("or") && !at_name("and")) {
          if (at_name("is")) fail(peek().line, "You cannot chain multiple tests with is");
          t->args.push_back(parse_postfix(parse_primary()));
          t->positional = 1;
        }
        e = std::move(t);
      } else if (at_op("(")) {
        auto c = make(expr::call, peek().line);
        c->args.push_back(std::move(e));
        parse_call_args(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }
};

} // namespace prefopt::data::jinja
