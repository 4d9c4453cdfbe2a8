// prefopt/data/chat_template_impl.hpp — definitions for chat_template.hpp: rendering, and the Jinja
// normalisation that recognises a model's template.
#pragma once

#include <prefopt/data/chat_template.hpp>  // normally included from there, at its end

#include <algorithm>
#include <array>
#include <cstdint>
#include <fstream>
#include <iterator>

namespace prefopt::data {
namespace detail {

// The code point starting at s[i] and its length in bytes (a stray byte counts as itself).
inline std::pair<std::uint32_t, std::size_t> decode_utf8(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  const std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
  if (n == 1 || i + n > s.size()) return {c, 1};
  std::uint32_t cp = c & (0x7FU >> n);
  for (std::size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3FU);
  return {cp, n};
}

// Python's str.isspace(), which str.strip() and Jinja's trim filter use.
inline bool python_space(std::uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

inline std::string python_rstrip(std::string_view s) {
  std::size_t end = 0;
  for (std::size_t i = 0; i < s.size();) {
    const auto [cp, n] = decode_utf8(s, i);
    i += n;
    if (!python_space(cp)) end = i;
  }
  return std::string(s.substr(0, end));
}

inline std::string python_strip(std::string_view s) {
  std::size_t begin = 0;
  while (begin < s.size()) {
    const auto [cp, n] = decode_utf8(s, begin);
    if (!python_space(cp)) break;
    begin += n;
  }
  return python_rstrip(s.substr(begin));
}

// Length of the longest common prefix of a and b that ends on a character boundary.
inline std::size_t common_prefix(std::string_view a, std::string_view b) {
  std::size_t k = std::mismatch(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(std::min(a.size(), b.size())),
                                b.begin())
                      .first -
                  a.begin();
  auto continuation = [](std::string_view s, std::size_t i) {
    return i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0U) == 0x80U;
  };
  while (k > 0 && (continuation(a, k) || continuation(b, k))) --k;
  return k;
}

inline void chatml_turn(std::string& out, std::string_view role, std::string_view content) {
  out.append("<|im_start|>").append(role).append("\n").append(content).append("<|im_end|>\n");
}

// The built-in template's genuine Jinja text, compiled (chat_template_select.hpp): what renders a
// conversation that carries more than roles and string contents, or tools.
inline const chat_template& genuine_jinja(const chat_template& t);

// True when the built-in renderers (which read role and content only) cannot render `ms` exactly.
inline bool needs_genuine_template(std::span<const message> ms, const nlohmann::ordered_json& tools,
                                   const nlohmann::ordered_json& kwargs) {
  if (!tools.is_null() || (kwargs.is_object() && !kwargs.empty())) return true;
  return std::any_of(ms.begin(), ms.end(), [](const message& m) { return !m.fields.is_null(); });
}

// transformers' _alias_reasoning_fields: the first non-null of reasoning_content, thinking,
// reasoning becomes {"thinking": r, **message, "reasoning_content": r}.
inline nlohmann::ordered_json alias_reasoning(nlohmann::ordered_json m) {
  const nlohmann::ordered_json* reasoning = nullptr;
  for (const char* key : {"reasoning_content", "thinking", "reasoning"})
    if (const auto it = m.find(key); reasoning == nullptr && it != m.end() && !it->is_null()) reasoning = &*it;
  if (reasoning == nullptr) return m;
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  out["thinking"] = *reasoning;
  for (const auto& [k, v] : m.items()) out[k] = v;
  out["reasoning_content"] = *reasoning;
  return out;
}

// The variables of a Jinja template's context: messages, tools, documents, add_generation_prompt,
// the special tokens, then chat_template_kwargs (a key of both replaces the special token, as
// apply_chat_template's {**special_tokens_map, **kwargs} does).
inline jinja::dict_t template_context(const chat_template& t, jinja::list_t messages, bool generation_prompt,
                                      const nlohmann::ordered_json& tools, const nlohmann::ordered_json& kwargs) {
  jinja::dict_t context{{"messages", std::move(messages)},
                        {"tools", tools.is_null() ? jinja::value(jinja::none_t{}) : jinja::from_json(tools)},
                        {"documents", jinja::none_t{}},
                        {"add_generation_prompt", generation_prompt}};
  for (const auto& [k, v] : t.variables.items()) context.emplace_back(k, jinja::from_json(v));
  if (kwargs.is_null()) return context;
  if (!kwargs.is_object()) throw config_error("chat_template_kwargs", "expected an object of template variables");
  for (const auto& item : kwargs.items()) {
    const std::string& k = item.key();
    const auto& v = item.value();
    if (std::find(clashing_template_kwargs.begin(), clashing_template_kwargs.end(), k) != clashing_template_kwargs.end() ||
        std::find(argument_template_kwargs.begin(), argument_template_kwargs.end(), k) != argument_template_kwargs.end() ||
        k == "tools")
      throw config_error("chat_template_kwargs." + k, "not a template variable (see parse_chat_template_kwargs)");
    const auto it = std::find_if(context.begin(), context.end(), [&](const auto& kv) { return kv.first == k; });
    if (it != context.end()) it->second = jinja::from_json(v);
    else context.emplace_back(k, jinja::from_json(v));
  }
  return context;
}

// What gpt2-plain reads of a message: its text; a content list's parts must all be text.
inline const std::string& plain_text(const message& m, std::size_t i) {
  const auto c = m.fields.is_object() ? m.fields.find("content") : m.fields.end();
  if (m.fields.is_object() && c != m.fields.end() && c->is_array())
    for (std::size_t k = 0; k < c->size(); ++k) {
      const auto& part = (*c)[k];
      const auto text = part.find("text");
      if (text == part.end() || !text->is_string()) {
        const auto type = part.find("type");
        throw jinja::render_error("gpt2-plain chat template",
                         "message " + std::to_string(i) + " content part " + std::to_string(k) + " (type '" +
                             (type != part.end() && type->is_string() ? type->get<std::string>() : "?") +
                             "') is not text; gpt2-plain renders text only");
      }
    }
  return m.content;
}

// The template applied to `ms`, as its Jinja text renders it.
inline std::string render_raw(const chat_template& t, std::span<const message> ms, bool generation_prompt,
                              const nlohmann::ordered_json& tools = nullptr,
                              const nlohmann::ordered_json& kwargs = nullptr) {
  std::string out;
  if (t.kind != chat_template_kind::jinja && t.kind != chat_template_kind::gpt2_plain &&
      needs_genuine_template(ms, tools, kwargs))
    return render_raw(genuine_jinja(t), ms, generation_prompt, tools, kwargs);
  switch (t.kind) {
  case chat_template_kind::chatml:
    for (std::size_t i = 0; i < ms.size(); ++i) {
      if (i == 0 && t.default_system && ms[0].role != "system") chatml_turn(out, "system", *t.default_system);
      chatml_turn(out, ms[i].role, ms[i].content);
    }
    if (generation_prompt) out += "<|im_start|>assistant\n";
    break;
  case chat_template_kind::qwen2_5:
    if (ms.empty()) throw data_error("qwen2.5 chat template", "cannot render an empty conversation");
    if (ms[0].role == "system") chatml_turn(out, "system", ms[0].content);
    else chatml_turn(out, "system", t.default_system.value_or(std::string(qwen2_5_default_system)));
    for (std::size_t i = 0; i < ms.size(); ++i) {
      if (ms[i].role == "tool") {
        if (i == 0 || ms[i - 1].role != "tool") out += "<|im_start|>user";
        out.append("\n<tool_response>\n").append(ms[i].content).append("\n</tool_response>");
        if (i + 1 == ms.size() || ms[i + 1].role != "tool") out += "<|im_end|>\n";
      } else if (i > 0 || ms[i].role != "system") {
        chatml_turn(out, ms[i].role, ms[i].content);
      }
    }
    if (generation_prompt) out += "<|im_start|>assistant\n";
    break;
  case chat_template_kind::llama3:
    for (std::size_t i = 0; i < ms.size(); ++i) {
      if (i == 0) out += t.bos_token;
      out.append("<|start_header_id|>").append(ms[i].role).append("<|end_header_id|>\n\n");
      out.append(python_strip(ms[i].content)).append("<|eot_id|>");
    }
    if (generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
    break;
  case chat_template_kind::jinja: {
    if (!t.program) throw config_error("jinja chat template", "not compiled (make it with jinja_template)");
    jinja::list_t list;
    for (const auto& m : ms) {
      if (m.fields.is_null()) list.emplace_back(jinja::dict_t{{"role", m.role}, {"content", m.content}});
      else list.push_back(jinja::from_json(alias_reasoning(m.fields)));
    }
    out = jinja::render(*t.program, jinja::value(template_context(t, std::move(list), generation_prompt, tools, kwargs)));
    break;
  }
  case chat_template_kind::gpt2_plain:
    for (std::size_t i = 0; i < ms.size(); ++i) {
      if (i > 0) out += t.separator;
      out += plain_text(ms[i], i);
    }
    if (generation_prompt && !ms.empty()) out += t.separator;
    break;
  }
  return out;
}

inline messages concat(const messages& a, const messages& b) {
  messages m(a);
  m.insert(m.end(), b.begin(), b.end());
  return m;
}

// TRL's rendering of the prompt alone: generation prompt after user/tool, continued after assistant.
inline std::string render_prompt(const chat_template& t, const messages& prompt, const std::string& where,
                                 const nlohmann::ordered_json& tools, const nlohmann::ordered_json& kwargs) {
  if (prompt.empty()) throw data_error(with_field(where, "prompt"), "empty prompt");
  const auto& role = prompt.back().role;
  if (role == "system")
    throw data_error(with_field(where, "prompt"),
                     "the prompt ends with a system message; it must end with a user, tool or assistant message");
  return render(t, prompt, role != "assistant", role == "assistant", tools, kwargs);
}

inline const nlohmann::ordered_json no_tools{};

inline std::string with_eos(std::string s, std::string_view eos) {
  if (!s.ends_with(eos)) s += eos;
  return s;
}

} // namespace detail

inline std::string render(const chat_template& t, std::span<const message> ms, bool add_generation_prompt,
                          bool continue_final_message, const nlohmann::ordered_json& tools,
                          const nlohmann::ordered_json& kwargs) {
  if (add_generation_prompt && continue_final_message)
    throw config_error("render", "add_generation_prompt and continue_final_message cannot both be set");
  if (!continue_final_message) return detail::render_raw(t, ms, add_generation_prompt, tools, kwargs);
  // As transformers does: mark the end of the final message, render, cut at the mark; if the template
  // trimmed the mark's trailing space (Llama-3's trim), strip trailing whitespace as well.
  static constexpr std::string_view tag = "CONTINUE_FINAL_MESSAGE_TAG ";
  if (ms.empty()) throw data_error("render", "continue_final_message needs a message to continue");
  std::vector<message> marked(ms.begin(), ms.end());
  if (marked.back().fields.is_object()) {
    auto& c = marked.back().fields["content"];
    if (c.is_array()) {  // transformers tags the last part that has a "text" key
      auto part = std::find_if(c.rbegin(), c.rend(), [](const auto& p) { return p.is_object() && p.contains("text"); });
      if (part == c.rend() || !(*part)["text"].is_string())
        throw data_error("render", "continue_final_message is set but the final message has no text part to continue");
      (*part)["text"] = (*part)["text"].template get<std::string>() + std::string(tag);
    } else {
      if (!c.is_string()) throw data_error("render", "continue_final_message is set but the final message has no content");
      c = c.get<std::string>() + std::string(tag);
    }
  }
  marked.back().content += tag;
  const auto out = detail::render_raw(t, marked, false, tools, kwargs);
  const auto at = out.rfind(tag.substr(0, tag.size() - 1));
  if (at == std::string::npos) throw data_error("render", "the final message does not appear in the rendered chat");
  if (out.compare(at, tag.size(), tag) == 0) return out.substr(0, at);
  return detail::python_rstrip(std::string_view(out).substr(0, at));
}

namespace detail {
// fn(), with a Jinja template's rendering error (raise_exception, an undefined value) placed at
// the record: "d.jsonl:4: the chat template fails on this record: <template>: line 3: <message>".
template <class Fn> auto at_record(const std::string& where, Fn&& fn) {
  try {
    return fn();
  } catch (const jinja::render_error& e) {
    if (where.empty()) throw;
    throw data_error(where, "the chat template fails on this record: " + std::string(e.what()));
  }
}
} // namespace detail

inline rendered_pair render_pair(const chat_template& t, const messages& prompt, const messages& chosen,
                                 const messages& rejected, const std::string& where,
                                 const nlohmann::ordered_json& given_tools, const nlohmann::ordered_json& kwargs) {
  const auto& tools = given_tools.empty() ? detail::no_tools : given_tools;  // TRL: tools = tools or None
  return detail::at_record(where, [&] {
    const auto p = detail::render_prompt(t, prompt, where, tools, kwargs);
    auto pc = render(t, detail::concat(prompt, chosen), false, false, tools, kwargs);
    auto pr = render(t, detail::concat(prompt, rejected), false, false, tools, kwargs);
    auto n = detail::common_prefix(p, pc);
    n = detail::common_prefix(std::string_view(p).substr(0, n), pr);
    return rendered_pair{p.substr(0, n), pc.substr(n), pr.substr(n)};
  });
}

inline rendered_unpaired render_unpaired(const chat_template& t, const messages& prompt, const messages& completion,
                                         const std::string& where, const nlohmann::ordered_json& given_tools,
                                         const nlohmann::ordered_json& kwargs) {
  const auto& tools = given_tools.empty() ? detail::no_tools : given_tools;  // TRL: tools = tools or None
  return detail::at_record(where, [&] {
    const auto p = detail::render_prompt(t, prompt, where, tools, kwargs);
    auto pc = render(t, detail::concat(prompt, completion), false, false, tools, kwargs);
    const auto n = detail::common_prefix(p, pc);
    return rendered_unpaired{p.substr(0, n), pc.substr(n)};
  });
}

inline rendered_pair to_text(const preference_record& r, const chat_template& t, std::string_view eos_token,
                             const std::string& where) {
  if (const auto* prompt = std::get_if<std::string>(&r.prompt)) {
    const auto* c = std::get_if<std::string>(&r.chosen);
    const auto* x = std::get_if<std::string>(&r.rejected);
    if (c == nullptr || x == nullptr) throw data_error(where, "prompt, chosen and rejected must be of one kind");
    return {*prompt, detail::with_eos(*c, eos_token), detail::with_eos(*x, eos_token)};
  }
  const auto* c = std::get_if<messages>(&r.chosen);
  const auto* x = std::get_if<messages>(&r.rejected);
  if (c == nullptr || x == nullptr) throw data_error(where, "prompt, chosen and rejected must be of one kind");
  auto out = render_pair(t, std::get<messages>(r.prompt), *c, *x, where, r.tools, r.chat_template_kwargs);
  if (t.kind == chat_template_kind::gpt2_plain) {
    out.chosen = detail::with_eos(std::move(out.chosen), eos_token);
    out.rejected = detail::with_eos(std::move(out.rejected), eos_token);
  }
  return out;
}

inline rendered_unpaired to_text(const unpaired_record& r, const chat_template& t, std::string_view eos_token,
                                 const std::string& where) {
  if (const auto* prompt = std::get_if<std::string>(&r.prompt)) {
    const auto* c = std::get_if<std::string>(&r.completion);
    if (c == nullptr) throw data_error(where, "prompt and completion must be of one kind");
    return {*prompt, detail::with_eos(*c, eos_token)};
  }
  const auto* c = std::get_if<messages>(&r.completion);
  if (c == nullptr) throw data_error(where, "prompt and completion must be of one kind");
  auto out = render_unpaired(t, std::get<messages>(r.prompt), *c, where, r.tools, r.chat_template_kwargs);
  if (t.kind == chat_template_kind::gpt2_plain) out.completion = detail::with_eos(std::move(out.completion), eos_token);
  return out;
}

inline chat_template chat_template_by_name(std::string_view name) {
  if (name == "chatml") return chatml_template();
  if (name == "qwen2") return qwen2_template();
  if (name == "qwen2.5") return qwen2_5_template();
  if (name == "llama3") return llama3_template();
  if (name == "gpt2-plain") return gpt2_plain_template();
  throw config_error("chat template '" + std::string(name) + "'",
                     "unknown; the built-in templates are chatml, qwen2, qwen2.5, llama3 and gpt2-plain");
}

} // namespace prefopt::data

#include <prefopt/data/chat_template_select.hpp>
