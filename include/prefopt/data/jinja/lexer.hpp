// prefopt/data/jinja/lexer.hpp — a chat template as a stream of tokens, with Jinja's whitespace
// control as transformers configures it (ImmutableSandboxedEnvironment(trim_blocks=True,
// lstrip_blocks=True), keep_trailing_newline left False):
//  - one trailing newline of the template source is dropped;
//  - trim_blocks: the first newline after a block tag (%}) or a comment (#}) is dropped;
//  - lstrip_blocks: spaces and tabs from the start of a line up to a block tag or comment are
//    dropped ({%+ keeps them);
//  - "-" inside a delimiter ({%- -%} {{- -}} {#- -#}) strips all whitespace on that side.
// {% raw %}...{% endraw %} is copied as text.
#pragma once

#include <prefopt/data/jinja/value.hpp>

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace prefopt::data::jinja {

enum class tok { text, var_begin, var_end, block_begin, block_end, name, string, integer, real, op, eof };

struct token {
  tok kind = tok::eof;
  std::string s;  // text, name, decoded string literal, number spelling, operator
  std::size_t line = 1;
};

inline std::string line_where(const std::string& name, std::size_t line) {
  return (name.empty() ? std::string("template") : name) + " line " + std::to_string(line);
}

namespace detail {

inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
inline bool is_ident_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_'; }
inline bool is_ident(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; }

inline std::string rstrip_ws(std::string s) {
  while (!s.empty() && is_space(s.back())) s.pop_back();
  return s;
}

// The expression tokens of one tag's inside, from src[i] up to its closing delimiter; i is left
// after the delimiter. Returns whether the closing delimiter had "-".
inline bool lex_tag(std::string_view src, std::size_t& i, std::size_t& line, std::string_view close,
                    std::vector<token>& out, const std::string& name) {
  static constexpr std::string_view ops3[] = {"**", "//", "==", "!=", "<=", ">="};
  while (true) {
    if (i >= src.size()) throw template_error(line_where(name, line), "unclosed tag: expected '" + std::string(close) + "'");
    const char c = src[i];
    if (c == '\n') { ++line; ++i; continue; }
    if (is_space(c)) { ++i; continue; }
    if ((c == '-' || c == '+') && src.substr(i + 1, close.size()) == close) { i += 1 + close.size(); return c == '-'; }
    if (src.substr(i, close.size()) == close) { i += close.size(); return false; }
    if (is_ident_start(c)) {
      std::size_t j = i;
      while (j < src.size() && is_ident(src[j])) ++j;
      out.push_back({tok::name, std::string(src.substr(i, j - i)), line});
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c)) != 0) {
      std::size_t j = i;
      bool real = false;
      while (j < src.size() && (std::isdigit(static_cast<unsigned char>(src[j])) != 0 || src[j] == '_')) ++j;
      if (j + 1 < src.size() && src[j] == '.' && std::isdigit(static_cast<unsigned char>(src[j + 1])) != 0) {
        real = true;
        for (++j; j < src.size() && std::isdigit(static_cast<unsigned char>(src[j])) != 0;) ++j;
      }
      if (j < src.size() && (src[j] == 'e' || src[j] == 'E')) {
        std::size_t k = j + 1;
        if (k < src.size() && (src[k] == '+' || src[k] == '-')) ++k;
        if (k < src.size() && std::isdigit(static_cast<unsigned char>(src[k])) != 0) {
          real = true;
          for (j = k; j < src.size() && std::isdigit(static_cast<unsigned char>(src[j])) != 0;) ++j;
        }
      }
      std::string num;
      for (char d : src.substr(i, j - i)) if (d != '_') num += d;
      out.push_back({real ? tok::real : tok::integer, num, line});
      i = j;
    } else if (c == '\'' || c == '"') {
      std::string lit;
      const std::size_t start = line;
      std::size_t j = i + 1;
      for (;; ++j) {
        if (j >= src.size()) throw template_error(line_where(name, start), "unterminated string literal");
        if (src[j] == c) break;
        if (src[j] == '\n') ++line;
        if (src[j] != '\\' || j + 1 >= src.size()) { lit += src[j]; continue; }
        const char e = src[++j];
        switch (e) {
        case 'n': lit += '\n'; break;
        case 't': lit += '\t'; break;
        case 'r': lit += '\r'; break;
        case '0': lit += '\0'; break;
        case '\\': case '\'': case '"': lit += e; break;
        case '\n': ++line; break;
        case 'u': case 'U': case 'x': {
          const std::size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (j + n >= src.size()) throw template_error(line_where(name, line), "bad \\" + std::string(1, e) + " escape");
          std::uint32_t cp = 0;
          const auto hex = src.substr(j + 1, n);
          if (std::from_chars(hex.data(), hex.data() + n, cp, 16).ptr != hex.data() + n || cp > 0x10FFFF)
            throw template_error(line_where(name, line), "bad \\" + std::string(1, e) + " escape");
          append_utf8(lit, static_cast<char32_t>(cp));
          j += n;
          break;
        }
        default: lit += '\\'; lit += e;
        }
      }
      out.push_back({tok::string, lit, start});
      i = j + 1;
    } else {
      std::string op(1, c);
      for (auto o : ops3)
        if (src.substr(i, 2) == o) op = o;
      if (std::string_view("+-*/%~()[]{}.,:|=<>!").find(c) == std::string_view::npos) {
        std::size_t n = 1;  // the whole UTF-8 sequence, so that the message stays valid UTF-8
        while (i + n < src.size() && n < 4 && (static_cast<unsigned char>(src[i + n]) & 0xC0U) == 0x80U) ++n;
        const auto u = to_u32(src.substr(i, n));
        const std::string shown = u.size() == 1 && u[0] >= 0x80 && n > 1 ? std::string(src.substr(i, n)) : std::string();
        throw template_error(line_where(name, line),
                             shown.empty() && static_cast<unsigned char>(c) >= 0x80
                                 ? "unexpected byte 0x" + std::string(1, "0123456789abcdef"[static_cast<unsigned char>(c) >> 4]) +
                                       "0123456789abcdef"[c & 15] + " in a tag"
                                 : "unexpected character '" + (shown.empty() ? op : shown) + "' in a tag");
      }
      out.push_back({tok::op, op, line});
      i += op.size();
    }
  }
}

} // namespace detail

inline std::vector<token> tokenize(std::string_view src, const std::string& name) {
  using namespace detail;
  if (src.ends_with('\n')) src.remove_suffix(src.ends_with("\r\n") ? 2 : 1);  // keep_trailing_newline=False
  std::vector<token> out;
  std::size_t i = 0, line = 1;
  bool strip_next = false, line_starting = true;
  std::string text;
  std::size_t text_line = 1;
  auto flush = [&](bool strip_right, bool lstrip) {
    if (strip_right) text = rstrip_ws(std::move(text));
    else if (lstrip) {
      const auto nl = text.rfind('\n');
      const std::size_t from = nl == std::string::npos ? 0 : nl + 1;
      if ((nl != std::string::npos || line_starting) && text.find_first_not_of(" \t", from) == std::string::npos)
        text.erase(from);
    }
    if (!text.empty()) out.push_back({tok::text, text, text_line});
    text.clear();
  };
  while (i < src.size()) {
    const bool tag = src[i] == '{' && i + 1 < src.size() && (src[i + 1] == '{' || src[i + 1] == '%' || src[i + 1] == '#');
    if (!tag) {
      if (text.empty()) text_line = line;
      if (strip_next && text.empty() && is_space(src[i])) {
        if (src[i] == '\n') ++line;
        ++i;
        continue;
      }
      strip_next = false;
      if (src[i] == '\n') ++line;
      text += src[i++];
      continue;
    }
    strip_next = false;
    const char kind = src[i + 1];
    const std::size_t tag_line = line;
    std::size_t j = i + 2;
    const bool minus = j < src.size() && src[j] == '-';
    const bool plus = j < src.size() && src[j] == '+';
    if (minus || plus) ++j;
    flush(minus, kind != '{' && !plus);
    bool strip_after = false;
    if (kind == '#') {
      const auto end = src.find("#}", j);
      if (end == std::string_view::npos) throw template_error(line_where(name, tag_line), "unclosed comment");
      for (std::size_t k = j; k < end; ++k) line += src[k] == '\n';
      strip_after = end > j && src[end - 1] == '-';
      i = end + 2;
    } else {
      const std::size_t first = out.size();
      out.push_back({kind == '{' ? tok::var_begin : tok::block_begin, {}, tag_line});
      strip_after = lex_tag(src, j, line, kind == '{' ? "}}" : "%}", out, name);
      out.push_back({kind == '{' ? tok::var_end : tok::block_end, {}, line});
      i = j;
      if (kind == '%' && out.size() == first + 3 && out[first + 1].kind == tok::name && out[first + 1].s == "raw") {
        out.resize(first);  // {% raw %}: copy up to {% endraw %}
        if (strip_after) while (i < src.size() && is_space(src[i])) line += src[i++] == '\n';
        else if (i < src.size() && src[i] == '\n') { ++line; ++i; }
        std::size_t k = i;
        for (;; ++k) {
          k = src.find("{%", k);
          if (k == std::string_view::npos) throw template_error(line_where(name, tag_line), "{% raw %} without {% endraw %}");
          std::size_t m = k + 2;
          if (m < src.size() && (src[m] == '-' || src[m] == '+')) ++m;
          while (m < src.size() && is_space(src[m])) ++m;
          if (src.substr(m, 6) == "endraw") break;
        }
        text_line = line;
        text = std::string(src.substr(i, k - i));
        for (char c : text) line += c == '\n';
        i = k;
        continue;
      }
    }
    if (strip_after) strip_next = true;
    else if (kind != '{' && i < src.size() && src[i] == '\n') { ++line; ++i; }  // trim_blocks
    line_starting = i == 0 || src[i - 1] == '\n';
  }
  flush(false, false);
  out.push_back({tok::eof, {}, line});
  return out;
}

} // namespace prefopt::data::jinja
