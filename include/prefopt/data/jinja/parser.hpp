// prefopt/data/jinja/parser.hpp — tokens to a syntax tree, as jinja2's parser.py builds it; the
// expressions (grammar and precedence) are expressions.hpp's, this header adds the statements.
//
// Statements: if/elif/else, for (tuple targets, "if" filter, else), set (name, ns.attr, tuple,
// block), macro, break/continue (transformers enables jinja2.ext.loopcontrols), generation
// (transformers' AssistantTracker tag: its body renders as is). Anything else — include, import,
// extends, block, call, filter, with, recursive loops — is a template_error naming the construct
// and the line.
#pragma once

#include <prefopt/data/jinja/expressions.hpp>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

namespace prefopt::data::jinja {

class parser : expression_parser {
public:
  parser(std::vector<token> toks, std::string name) : expression_parser(std::move(toks), std::move(name)) {}

  body_t parse_template() {
    auto body = parse_body({});
    if (peek().kind != tok::eof) fail(peek().line, "unexpected tag");
    return body;
  }

private:
  // Statements up to a block tag whose first word is in `stops` (left unconsumed, after its {%).
  body_t parse_body(const std::vector<std::string_view>& stops) {
    body_t body;
    if (++depth_ > max_depth) fail(peek().line, "blocks nested too deeply");
    while (true) {
      const auto& k = peek();
      if (k.kind == tok::eof) {
        if (!stops.empty()) fail(k.line, "missing {% " + std::string(stops.back()) + " %}");
        break;
      }
      if (k.kind == tok::text) {
        auto s = std::make_unique<stmt>();
        s->kind = stmt::text;
        s->line = k.line;
        s->s = next().s;
        body.push_back(std::move(s));
      } else if (k.kind == tok::var_begin) {
        ++i_;
        auto s = std::make_unique<stmt>();
        s->kind = stmt::output;
        s->line = k.line;
        s->exprs.push_back(parse_tuple());
        if (peek().kind != tok::var_end) fail(peek().line, "expected '}}'" + found());
        ++i_;
        body.push_back(std::move(s));
      } else if (k.kind == tok::block_begin) {
        const auto& w = peek(1);
        if (w.kind == tok::name && std::find(stops.begin(), stops.end(), w.s) != stops.end()) break;
        ++i_;
        if (auto s = parse_statement()) body.push_back(std::move(s));
      } else {
        fail(k.line, "unexpected token");
      }
    }
    --depth_;
    return body;
  }

  std::unique_ptr<stmt> parse_statement() {
    const std::size_t line = peek().line;
    if (peek().kind != tok::name) fail(line, "expected a statement name" + found());
    const std::string w = next().s;
    auto s = std::make_unique<stmt>();
    s->line = line;
    if (w == "if") {
      s->kind = stmt::if_;
      s->exprs.push_back(parse_expression());
      expect_block_end();
      while (true) {
        s->bodies.push_back(parse_body({"elif", "else", "endif"}));
        ++i_;  // {%
        const auto word = next().s;
        if (word == "elif") { s->exprs.push_back(parse_expression()); expect_block_end(); continue; }
        if (word == "else") {
          expect_block_end();
          s->bodies.push_back(parse_body({"endif"}));
          i_ += 2;
        }
        expect_block_end();
        break;
      }
    } else if (w == "for") {
      s->kind = stmt::for_;
      do s->targets.push_back(expect_name()); while (at_op(",") && (++i_, true));
      if (!at_name("in")) fail(peek().line, "expected 'in'" + found());
      ++i_;
      s->exprs.push_back(parse_tuple(false));
      if (at_name("if")) { ++i_; s->exprs.push_back(parse_expression()); s->has_filter = true; }
      if (at_name("recursive")) fail(peek().line, "unsupported construct: recursive for loops");
      expect_block_end();
      s->bodies.push_back(parse_body({"else", "endfor"}));
      ++i_;
      if (next().s == "else") {
        expect_block_end();
        s->bodies.push_back(parse_body({"endfor"}));
        i_ += 2;
      }
      expect_block_end();
    } else if (w == "set") {
      const auto target = expect_name();
      if (at_op(".")) {
        ++i_;
        s->attr = expect_name();
      }
      s->s = target;
      if (at_op(",") && s->attr.empty()) {
        s->targets.push_back(target);
        while (at_op(",")) { ++i_; s->targets.push_back(expect_name()); }
      }
      if (peek().kind == tok::block_end && s->attr.empty() && s->targets.empty()) {
        ++i_;
        s->kind = stmt::set_block;
        s->bodies.push_back(parse_body({"endset"}));
        i_ += 2;
        expect_block_end();
        return s;
      }
      s->kind = stmt::set;
      expect_op("=");
      s->exprs.push_back(parse_tuple());
      expect_block_end();
    } else if (w == "macro") {
      s->kind = stmt::macro;
      s->s = expect_name();
      expect_op("(");
      while (!at_op(")")) {
        s->targets.push_back(expect_name());
        if (at_op("=")) { ++i_; s->exprs.push_back(parse_expression()); }
        else if (!s->exprs.empty()) fail(peek().line, "a macro parameter without a default follows one with a default");
        if (!at_op(",")) break;
        ++i_;
      }
      expect_op(")");
      expect_block_end();
      s->bodies.push_back(parse_body({"endmacro"}));
      i_ += 2;
      if (peek().kind == tok::name) ++i_;  // {% endmacro name %}
      expect_block_end();
    } else if (w == "break" || w == "continue") {
      s->kind = w == "break" ? stmt::break_ : stmt::continue_;
      expect_block_end();
    } else if (w == "generation") {
      expect_block_end();
      s->kind = stmt::if_;  // if true: the body as it is
      auto t = std::make_unique<expr>();
      t->lit = true;
      s->exprs.push_back(std::move(t));
      s->bodies.push_back(parse_body({"endgeneration"}));
      i_ += 2;
      expect_block_end();
    } else if (w == "endraw") {
      expect_block_end();
      return nullptr;
    } else {
      static const std::vector<std::string> ends{"endif", "endfor", "endset", "endmacro", "endgeneration", "elif", "else"};
      if (std::find(ends.begin(), ends.end(), w) != ends.end()) fail(line, "unexpected {% " + w + " %}");
      fail(line, "unsupported construct: {% " + w + " %}");
    }
    return s;
  }
};

} // namespace prefopt::data::jinja
