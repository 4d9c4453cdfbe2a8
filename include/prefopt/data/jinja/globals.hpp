// prefopt/data/jinja/globals.hpp — the global functions transformers' _compile_jinja_template
// gives chat templates that need nothing of the renderer's state: raise_exception(msg) (a
// render_error whose why() is msg), strftime_now(fmt) (local time, C strftime), namespace(...),
// dict(...). range() counts against the render's iteration limit, so template.hpp defines it.
#pragma once

#include <prefopt/data/jinja/value.hpp>

#include <ctime>
#include <memory>
#include <string>

namespace prefopt::data::jinja {

template <class Frame> void add_globals(Frame& g) {
  auto fn = [](std::string name, function_t f) { return value(callable_t{std::move(name), std::make_shared<function_t>(std::move(f))}); };
  g["raise_exception"] = fn("raise_exception", [](call_args& a) -> value {
    throw render_error(a.where, a.pos.empty() ? std::string() : to_str(a.pos[0]));
  });
  g["strftime_now"] = fn("strftime_now", [](call_args& a) -> value {
    const auto fmt = a.pos.empty() ? std::string() : to_str(a.pos[0]);
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    std::string buf(256 + fmt.size() * 8, '\0');
    buf.resize(std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm));
    return buf;
  });
  g["namespace"] = fn("namespace", [](call_args& a) -> value {
    auto attrs = std::make_shared<dict_t>();
    if (!a.pos.empty() && a.pos[0].is_dict()) *attrs = a.pos[0].dict();
    for (auto& [k, v] : a.kw) {
      if (k.starts_with("_"))
        throw render_error(a.where, "Chat templates cannot store underscore-prefixed attributes on a namespace, but got '" + k + "'. Please rename the attribute.");
      dict_set(*attrs, k, v);
    }
    return namespace_t{attrs};
  });
  g["dict"] = fn("dict", [](call_args& a) -> value {
    dict_t d;
    if (!a.pos.empty() && a.pos[0].is_dict()) d = a.pos[0].dict();
    for (auto& [k, v] : a.kw) dict_set(d, k, v);
    return d;
  });
}

} // namespace prefopt::data::jinja
