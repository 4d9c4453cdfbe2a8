// prefopt/data/jinja/template.hpp — a compiled chat template and its rendering.
//
//   auto t = jinja::compile(text, "tokenizer_config.json: chat_template");   // template_error if it cannot parse
//   std::string s = jinja::render(t, context);                              // context: a dict value / JSON object
//
// Globals, as transformers' _compile_jinja_template: raise_exception(msg) (a render_error whose
// why() is msg), strftime_now(fmt) (local time, C strftime), namespace(...), dict(...), range(...).
// Undefined values follow jinja2's default Undefined: printing gives "", iterating gives nothing,
// `is defined` is false, and attribute access, arithmetic or calls on them are render_errors
// ("'x' is undefined", "'dict object' has no attribute 'y'").
//
// Limits, so that a hostile template fails cleanly instead of exhausting the machine (each a
// render_error when exceeded): `limits::max_output` bytes of output and of any one string value
// (default 32 MiB), `limits::max_iterations` loop iterations and range() elements in all (default
// 10 million; also the longest list a template may build), `limits::max_depth` nested macro calls
// (default 64); the parser caps block and expression nesting at 200 each, and rendering caps
// blocks, expressions and macro calls nested together at 2000 (the C++ stack stays small).
// Python's unbounded integers are not: an int64 overflow is a render_error.
#pragma once

#include <prefopt/data/jinja/filters.hpp>
#include <prefopt/data/jinja/globals.hpp>
#include <prefopt/data/jinja/operators.hpp>
#include <prefopt/data/jinja/parser.hpp>

#include <map>
#include <memory>

namespace prefopt::data::jinja {

struct program {
  std::string name;
  std::shared_ptr<const body_t> body;
};

[[nodiscard]] inline program compile(std::string_view text, std::string name = "chat template") {
  parser p(tokenize(text, name), name);
  return {name, std::make_shared<const body_t>(p.parse_template())};
}

namespace detail {

struct loop_signal {
  bool brk = false, cont = false;
};

class evaluator {
public:
  evaluator(const program& p, limits lim) : prog_(p), lim_(lim) {}

  std::string run(const value& context) {
    frames_.emplace_back();
    install_globals();
    if (context.is_dict())
      for (const auto& [k, v] : context.dict()) frames_.back()[k] = v;
    std::string out;
    loop_signal sig;
    exec(*prog_.body, out, sig);
    return out;
  }

private:
  using frame = std::map<std::string, value, std::less<>>;
  const program& prog_;
  limits lim_;
  std::vector<frame> frames_;
  std::size_t base_ = 0;  // frames below this are hidden (inside a macro only the globals and its own show)
  std::size_t iterations_ = 0;
  int depth_ = 0;

  std::string where(std::size_t line) const { return line_where(prog_.name, line); }

  void install_globals() {
    auto& g = frames_.back();
    add_globals(g);
    auto fn = [](std::string name, function_t f) { return value(callable_t{std::move(name), std::make_shared<function_t>(std::move(f))}); };
    g["range"] = fn("range", [this](call_args& a) -> value {
      std::int64_t start = 0, stop = 0, step = 1;
      for (const auto& x : a.pos)
        if (!x.is_int()) throw render_error(a.where, "range() needs integers, got " + type_name(x));
      if (a.pos.size() == 1) stop = a.pos[0].as_int();
      else if (a.pos.size() >= 2) { start = a.pos[0].as_int(); stop = a.pos[1].as_int(); }
      if (a.pos.size() >= 3) step = a.pos[2].as_int();
      if (step == 0) throw render_error(a.where, "range() arg 3 must not be zero");
      list_t out;
      for (std::int64_t i = start; step > 0 ? i < stop : i > stop;) {
        count_iteration(a.where);
        out.emplace_back(i);
        if (__builtin_add_overflow(i, step, &i)) break;
      }
      return out;
    });
  }

  void count_iteration(const std::string& w) {
    if (++iterations_ > lim_.max_iterations)
      throw render_error(w, "more than " + std::to_string(lim_.max_iterations) + " loop iterations (the limit)");
  }
  void check_size(std::size_t n, std::size_t line) const {
    if (n > lim_.max_output)
      throw render_error(where(line), "output larger than " + std::to_string(lim_.max_output) + " bytes (the limit)");
  }

  value lookup(const std::string& name) const {
    for (std::size_t i = frames_.size(); i-- > 0;) {
      if (i != 0 && i < base_) continue;
      if (auto it = frames_[i].find(name); it != frames_[i].end()) return it->second;
    }
    return value::undefined("'" + name + "' is undefined");
  }

  // Guards the C++ stack: blocks and expressions nest at most 200 deep each (the parser), macros
  // max_depth deep; this caps their product.
  struct nesting {
    evaluator& ev;
    nesting(evaluator& e, std::size_t line) : ev(e) {
      if (++ev.nesting_ > max_nesting) {
        --ev.nesting_;
        throw render_error(ev.where(line), "blocks, expressions and macro calls nested deeper than " +
                                              std::to_string(max_nesting) + " (the limit)");
      }
    }
    ~nesting() { --ev.nesting_; }
    nesting(const nesting&) = delete;
    nesting& operator=(const nesting&) = delete;
  };
  static constexpr int max_nesting = 2000;
  int nesting_ = 0;

  void exec(const body_t& body, std::string& out, loop_signal& sig) {
    if (!body.empty()) {
      nesting guard(*this, body.front()->line);
      for (const auto& s : body) {
        exec_one(*s, out, sig);
        if (sig.brk || sig.cont) return;
      }
    }
  }
  void exec_one(const stmt& s, std::string& out, loop_signal& sig) {
    switch (s.kind) {
    case stmt::text: out += s.s; check_size(out.size(), s.line); break;
    case stmt::output: out += to_str(eval(*s.exprs[0])); check_size(out.size(), s.line); break;
    case stmt::if_:
      for (std::size_t k = 0; k < s.bodies.size(); ++k) {
        if (k < s.exprs.size() && !truthy(eval(*s.exprs[k]))) continue;
        exec(s.bodies[k], out, sig);
        break;
      }
      break;
    case stmt::for_: exec_for(s, out); break;
    case stmt::set: {
      auto v = eval(*s.exprs[0]);
      if (!s.attr.empty()) {
        auto ns = lookup(s.s);
        if (!ns.is<namespace_t>()) throw render_error(where(s.line), "cannot assign attribute on non-namespace object");
        if (s.attr.starts_with("_"))
          throw render_error(where(s.line), "Chat templates cannot store underscore-prefixed attributes on a namespace, but got '" + s.attr + "'. Please rename the attribute.");
        auto& attrs = *std::get<namespace_t>(ns.v).attrs;
        if (reaches(v, &attrs))
          throw render_error(where(s.line), "cannot store a namespace inside itself (attribute '" + s.attr + "')");
        dict_set(attrs, s.attr, std::move(v));
      } else if (!s.targets.empty()) {
        unpack(s.targets, v, s.line);
      } else {
        frames_.back()[s.s] = std::move(v);
      }
      break;
    }
    case stmt::set_block: {
      std::string inner;
      loop_signal none;
      exec(s.bodies[0], inner, none);
      frames_.back()[s.s] = std::move(inner);
      break;
    }
    case stmt::macro: define_macro(s); break;
    case stmt::break_: sig.brk = true; break;
    case stmt::continue_: sig.cont = true; break;
    }
  }

  void unpack(const std::vector<std::string>& targets, const value& v, std::size_t line) {
    if (targets.size() == 1) { frames_.back()[targets[0]] = v; return; }
    const auto items = iterate(v, where(line));
    if (items.size() != targets.size())
      throw render_error(where(line), "cannot unpack " + std::to_string(items.size()) + " values into " + std::to_string(targets.size()));
    for (std::size_t k = 0; k < targets.size(); ++k) frames_.back()[targets[k]] = items[k];
  }

  void exec_for(const stmt& s, std::string& out) {
    const auto w = where(s.line);
    auto seq = eval(*s.exprs[0]);
    list_t items = iterate(seq, w);
    frames_.emplace_back();
    if (s.has_filter) {
      list_t kept;
      for (const auto& x : items) {
        count_iteration(w);
        unpack(s.targets, x, s.line);
        if (truthy(eval(*s.exprs[1]))) kept.push_back(x);
      }
      items = std::move(kept);
    }
    const auto n = static_cast<std::int64_t>(items.size());
    for (std::int64_t i = 0; i < n; ++i) {
      count_iteration(w);
      frames_.back().clear();  // what the body sets lasts one iteration, as in jinja2
      unpack(s.targets, items[static_cast<std::size_t>(i)], s.line);
      dict_t loop{{"index", i + 1}, {"index0", i}, {"first", i == 0}, {"last", i == n - 1}, {"length", n},
                  {"revindex", n - i}, {"revindex0", n - i - 1}, {"depth", 1}, {"depth0", 0}};
      loop.emplace_back("previtem", i > 0 ? items[static_cast<std::size_t>(i - 1)] : value::undefined("there is no previous item"));
      loop.emplace_back("nextitem", i + 1 < n ? items[static_cast<std::size_t>(i + 1)] : value::undefined("there is no next item"));
      loop.emplace_back("cycle", value(callable_t{"cycle", std::make_shared<function_t>([i](call_args& a) -> value {
                          if (a.pos.empty()) throw render_error(a.where, "no items for cycling given");
                          return a.pos[static_cast<std::size_t>(i) % a.pos.size()];
                        })}));
      frames_.back()["loop"] = std::move(loop);
      loop_signal sig;
      exec(s.bodies[0], out, sig);
      if (sig.brk) break;
    }
    frames_.pop_back();
    if (n == 0 && s.bodies.size() > 1) {
      loop_signal sig;
      exec(s.bodies[1], out, sig);
    }
  }

  void define_macro(const stmt& s) {
    const stmt* def = &s;
    std::vector<value> defaults;  // evaluated at call time, as jinja2 does
    auto fn = std::make_shared<function_t>([this, def](call_args& a) -> value {
      if (++depth_ > lim_.max_depth) throw render_error(a.where, "macros nested deeper than " + std::to_string(lim_.max_depth) + " (the limit)");
      frame f;
      const auto& params = def->targets;
      const std::size_t first_default = params.size() - def->exprs.size();
      if (a.pos.size() > params.size()) throw render_error(a.where, "macro '" + def->s + "' takes not more than " + std::to_string(params.size()) + " argument(s)");
      for (std::size_t k = 0; k < params.size(); ++k) {
        if (k < a.pos.size()) f[params[k]] = a.pos[k];
      }
      for (auto& [k, v] : a.kw) {
        if (std::find(params.begin(), params.end(), k) == params.end())
          throw render_error(a.where, "macro '" + def->s + "' takes no keyword argument '" + k + "'");
        f[k] = v;
      }
      const auto saved_base = base_;
      frames_.push_back(std::move(f));
      base_ = frames_.size() - 1;
      for (std::size_t k = 0; k < params.size(); ++k)
        if (!frames_.back().contains(params[k]))
          frames_.back()[params[k]] = k >= first_default ? eval(*def->exprs[k - first_default]) : value::undefined("'" + params[k] + "' is undefined");
      std::string out;
      loop_signal sig;
      try {
        exec(def->bodies[0], out, sig);
      } catch (...) {
        frames_.pop_back();
        base_ = saved_base;
        --depth_;
        throw;
      }
      frames_.pop_back();
      base_ = saved_base;
      --depth_;
      return out;
    });
    frames_.back()[s.s] = value(callable_t{s.s, std::move(fn)});
  }

  [[noreturn]] void undefined_error(const value& x, std::size_t line) const {
    const auto& h = std::get<undefined_t>(x.v).hint;
    throw render_error(where(line), h.empty() ? "undefined value" : h);
  }

  value arith(const std::string& op, const value& a, const value& b, std::size_t line) {
    return detail::arith(op, a, b, where(line), lim_);
  }
  bool contains(const value& item, const value& c, std::size_t line) { return detail::contains(item, c, where(line)); }

  call_args eval_args(const expr& e, std::size_t skip) {
    call_args a;
    a.where = where(e.line);
    a.max_size = lim_.max_output;
    for (std::size_t k = 0; k < e.positional; ++k) a.pos.push_back(eval(*e.args[skip + k]));
    for (std::size_t k = 0; k < e.keys.size(); ++k) a.kw.emplace_back(e.keys[k], eval(*e.args[skip + e.positional + k]));
    return a;
  }

  value eval(const expr& e) {
    nesting guard(*this, e.line);
    switch (e.kind) {
    case expr::literal: return e.lit;
    case expr::name: return lookup(e.s);
    case expr::list: {
      list_t l;
      for (const auto& x : e.args) l.push_back(eval(*x));
      return l;
    }
    case expr::dict: {
      dict_t d;
      for (std::size_t k = 0; k + 1 < e.args.size(); k += 2) {
        auto key = eval(*e.args[k]);
        if (!key.is_string()) throw render_error(where(e.line), "dictionary keys must be strings here, got " + type_name(key));
        dict_set(d, key.str(), eval(*e.args[k + 1]));
      }
      return d;
    }
    case expr::attr: return get_attr(eval(*e.args[0]), e.s, where(e.line));
    case expr::item: return get_item(eval(*e.args[0]), eval(*e.args[1]), where(e.line));
    case expr::slice: {
      auto x = eval(*e.args[0]);
      return get_slice(x, eval(*e.args[1]), eval(*e.args[2]), eval(*e.args[3]), where(e.line));
    }
    case expr::call: {
      auto f = eval(*e.args[0]);
      auto a = eval_args(e, 1);
      if (f.is_undefined()) undefined_error(f, e.line);
      if (!f.is<callable_t>()) throw render_error(where(e.line), object_name(f) + " is not callable");
      return (*std::get<callable_t>(f.v).fn)(a);
    }
    case expr::filter: {
      auto x = eval(*e.args[0]);
      auto a = eval_args(e, 1);
      return apply_filter(e.s, x, a, [this, &e](const std::string& t, const value& v, std::vector<value> args) {
        return apply_test(t, v, args, where(e.line));
      }, lim_.max_output);
    }
    case expr::test: {
      auto x = eval(*e.args[0]);
      auto a = eval_args(e, 1);
      return apply_test(e.s, x, a.pos, where(e.line)) != e.negated;
    }
    case expr::neg: case expr::pos: {
      auto x = eval(*e.args[0]);
      if (x.is_undefined()) undefined_error(x, e.line);
      if (!x.is_number()) throw render_error(where(e.line), "bad operand type for unary " + std::string(e.kind == expr::neg ? "-" : "+") + ": '" + type_name(x) + "'");
      if (e.kind == expr::pos) return x.is_int() ? value(x.as_int()) : x;
      if (x.is_int()) {
        if (x.as_int() == INT64_MIN) throw render_error(where(e.line), "integer too large");
        return -x.as_int();
      }
      return -x.as_double();
    }
    case expr::binary: return arith(e.s, eval(*e.args[0]), eval(*e.args[1]), e.line);
    case expr::compare: {
      auto left = eval(*e.args[0]);
      for (std::size_t k = 0; k < e.keys.size(); ++k) {
        auto right = eval(*e.args[k + 1]);
        const auto& op = e.keys[k];
        bool ok;
        if (op == "==") ok = equal(left, right);
        else if (op == "!=") ok = !equal(left, right);
        else if (op == "in") ok = contains(left, right, e.line);
        else if (op == "notin") ok = !contains(left, right, e.line);
        else {
          if (left.is_undefined()) undefined_error(left, e.line);
          if (right.is_undefined()) undefined_error(right, e.line);
          const int c = compare(left, right, where(e.line), op);
          ok = op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0;
        }
        if (!ok) return false;
        left = std::move(right);
      }
      return true;
    }
    case expr::and_: {
      auto a = eval(*e.args[0]);
      return truthy(a) ? eval(*e.args[1]) : a;
    }
    case expr::or_: {
      auto a = eval(*e.args[0]);
      return truthy(a) ? a : eval(*e.args[1]);
    }
    case expr::not_: return !truthy(eval(*e.args[0]));
    case expr::cond: return truthy(eval(*e.args[0])) ? eval(*e.args[1]) : eval(*e.args[2]);
    }
    return {};
  }
};

} // namespace detail

// Renders with `context` (a dict: messages, add_generation_prompt, bos_token, ...).
[[nodiscard]] inline std::string render(const program& p, const value& context, limits lim = {}) {
  detail::evaluator ev(p, lim);
  return ev.run(context);
}
template <class Json>
  requires requires(const Json& j) { j.is_object(); j.items(); }
[[nodiscard]] inline std::string render(const program& p, const Json& context, limits lim = {}) {
  return render(p, from_json(context), lim);
}

} // namespace prefopt::data::jinja
