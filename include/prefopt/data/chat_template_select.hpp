// prefopt/data/chat_template_select.hpp — recognising a model's chat template from its Jinja text.
//
// Two templates count as the same when they normalise to the same string. The normalisation keeps
// everything that changes the output and drops what does not:
//  - text outside tags is kept, after Jinja's whitespace control as transformers configures it
//    (trim_blocks: the newline after a block tag goes; lstrip_blocks: spaces and tabs before a block
//    tag at the start of a line go; "-" inside a delimiter strips all whitespace on that side);
//  - inside tags, whitespace goes except one space between two word characters, string literals are
//    decoded (\n, \t, \r, \\, \', \") whatever their quotes, x['name'] reads as x.name, and comments
//    vanish.
// A template that is none of these is rendered by the Jinja interpreter (jinja_template).
// A template with a hole (the default system text of ChatML templates shaped like Qwen2's) matches
// when the normalised text starts and ends like the pattern and the hole stays inside one literal.
#pragma once

#include <prefopt/data/chat_template.hpp>  // normally included from there, at its end
#include <prefopt/core/json.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace prefopt::data {
namespace detail {

// The genuine templates (Qwen2-Instruct and plain ChatML from the model repositories and TRL's
// setup_chat_format; Meta-Llama-3-Instruct and Qwen2.5-Instruct as TRL ships them in
// trl/chat_templates/). The hole of the Qwen2 shape is the marker \x7f.
inline constexpr std::string_view chatml_system_jinja =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\n\x7f<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
inline constexpr std::string_view chatml_jinja =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
inline constexpr std::string_view llama3_jinja =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 "
    "%}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
inline constexpr std::string_view qwen2_5_jinja = R"jinja({%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
)jinja";

struct jinja_piece {
  char kind = 0;  // 0 text, '{' expression, '%' statement, '#' comment
  std::string body;
  bool strip_before = false, strip_after = false, keep_before = false;
};

inline bool word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; }

// Text and tags, alternating, starting and ending with text (possibly empty); false if a tag is
// not closed.
inline bool jinja_split(std::string_view t, std::vector<jinja_piece>& out) {
  jinja_piece text;
  std::size_t i = 0;
  while (i < t.size()) {
    if (t[i] != '{' || i + 1 == t.size() || (t[i + 1] != '{' && t[i + 1] != '%' && t[i + 1] != '#')) {
      text.body += t[i++];
      continue;
    }
    out.push_back(std::move(text));
    text = {};
    jinja_piece tag;
    tag.kind = t[i + 1];
    const std::string close = tag.kind == '{' ? "}}" : tag.kind == '%' ? "%}" : "#}";
    std::size_t j = i + 2;
    if (j < t.size() && (t[j] == '-' || t[j] == '+')) (t[j++] == '-' ? tag.strip_before : tag.keep_before) = true;
    bool closed = false;
    for (char quote = 0; j < t.size();) {
      const char c = t[j];
      if (quote != 0) {
        tag.body += c;
        if (c == '\\' && j + 1 < t.size()) tag.body += t[++j];
        else if (c == quote) quote = 0;
        ++j;
      } else if (tag.kind != '#' && (c == '\'' || c == '"')) {
        quote = c;
        tag.body += c;
        ++j;
      } else if ((c == '-' || c == '+') && t.compare(j + 1, 2, close) == 0) {
        tag.strip_after = c == '-';
        j += 3;
        closed = true;
        break;
      } else if (t.compare(j, 2, close) == 0) {
        j += 2;
        closed = true;
        break;
      } else {
        tag.body += c;
        ++j;
      }
    }
    if (!closed) return false;
    out.push_back(std::move(tag));
    i = j;
  }
  out.push_back(std::move(text));
  return true;
}

// A tag's inside, normalised (see the top of this file).
inline std::string jinja_tag_body(std::string_view b) {
  std::string out;
  for (std::size_t i = 0; i < b.size();) {
    const char c = b[i];
    if (c == '\'' || c == '"') {
      std::string lit;
      for (++i; i < b.size() && b[i] != c; ++i) {
        if (b[i] != '\\' || i + 1 == b.size()) { lit += b[i]; continue; }
        const char e = b[++i];
        lit += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : (e == '\\' || e == '\'' || e == '"') ? e : '\0';
        if (lit.back() == '\0') { lit.back() = '\\'; lit += e; }
      }
      ++i;
      auto after = i;
      while (after < b.size() && std::isspace(static_cast<unsigned char>(b[after])) != 0) ++after;
      if (out.ends_with('[') && after < b.size() && b[after] == ']' && !lit.empty() &&
          std::isdigit(static_cast<unsigned char>(lit[0])) == 0 && std::all_of(lit.begin(), lit.end(), word_char)) {
        out.back() = '.';  // x['name'] -> x.name
        out += lit;
        i = after + 1;
      } else {
        out += '\x02' + lit + '\x03';
      }
    } else if (std::isspace(static_cast<unsigned char>(c)) != 0) {
      while (i < b.size() && std::isspace(static_cast<unsigned char>(b[i])) != 0) ++i;
      if (!out.empty() && word_char(out.back()) && i < b.size() && word_char(b[i])) out += ' ';
    } else {
      out += c;
      ++i;
    }
  }
  return out;
}

inline std::string jinja_normal_form(std::string_view t) {
  std::vector<jinja_piece> p;
  if (!jinja_split(t, p)) return "\x01unparsed\x01" + std::string(t);
  std::string out;
  for (std::size_t k = 0; k < p.size(); ++k) {
    if (p[k].kind != 0) {
      if (p[k].kind != '#') out += p[k].kind + jinja_tag_body(p[k].body) + '\x06';
      continue;
    }
    const std::string& s = p[k].body;
    const jinja_piece* left = k > 0 ? &p[k - 1] : nullptr;
    const jinja_piece* right = k + 1 < p.size() ? &p[k + 1] : nullptr;
    std::size_t begin = 0, end = s.size();
    if (right != nullptr && right->strip_before) {
      end = s.find_last_not_of(" \t\r\n\f\v") + 1;  // npos + 1 == 0
    } else if (right != nullptr && right->kind != '{' && !right->keep_before) {  // lstrip_blocks
      const auto nl = s.find_last_of('\n');
      const std::size_t line = nl == std::string::npos ? (k == 0 ? 0 : std::string::npos) : nl + 1;
      if (line != std::string::npos && s.find_first_not_of(" \t", line) == std::string::npos) end = line;
    }
    if (left != nullptr && left->strip_after) {
      begin = std::min(s.find_first_not_of(" \t\r\n\f\v"), s.size());
    } else if (left != nullptr && left->kind != '{') {  // trim_blocks
      begin = s.starts_with("\r\n") ? 2 : s.starts_with('\n') ? 1 : 0;
    }
    if (begin < end) out += '\x04' + s.substr(begin, end - begin) + '\x05';
  }
  return out;
}

inline std::string tokenizer_config_template(const nlohmann::json& cfg, const std::string& where) {
  const auto& v = cfg["chat_template"];
  if (v.is_string()) return v.get<std::string>();
  std::string names;
  if (v.is_array()) {
    for (const auto& entry : v) {
      if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") || !entry["name"].is_string() ||
          !entry["template"].is_string())
        throw config_error(where_in(where, 0, "chat_template"), "expected a string or a list of {name, template}");
      if (entry["name"] == "default") return entry["template"].get<std::string>();
      names += (names.empty() ? "" : ", ") + entry["name"].get<std::string>();
    }
    throw config_error(where_in(where, 0, "chat_template"),
                       "has named templates (" + names + ") but none called 'default'; choose a built-in template "
                       "by name (chatml, qwen2, qwen2.5, llama3, gpt2-plain)");
  }
  throw config_error(where_in(where, 0, "chat_template"), "expected a string or a list of {name, template}");
}

inline chat_template match_template(const std::string& text, const nlohmann::json& cfg, const std::string& where) {
  const auto t = jinja_normal_form(text);
  if (t == jinja_normal_form(chatml_jinja)) return chatml_template();
  if (t == jinja_normal_form(qwen2_5_jinja)) return qwen2_5_template();
  if (t == jinja_normal_form(llama3_jinja)) {
    auto bos = config_special_token(cfg, "bos_token");
    if (!bos)
      throw config_error(where_in(where, 0, "bos_token"),
                         "missing; the Llama-3 template starts with it (choose llama3 by name for <|begin_of_text|>)");
    return llama3_template(*bos);
  }
  const auto pattern = jinja_normal_form(chatml_system_jinja);
  const auto hole = pattern.find('\x7f');
  const auto head = pattern.substr(0, hole), tail = pattern.substr(hole + 1);
  if (t.size() >= head.size() + tail.size() && t.starts_with(head) && t.ends_with(tail)) {
    auto system = t.substr(head.size(), t.size() - head.size() - tail.size());
    if (system.find_first_of("\x02\x03") == std::string::npos) return chatml_template(std::move(system));
  }
  return jinja_template(text, cfg, where.ends_with(".jinja") ? where : where_in(where, 0, "chat_template"));
}

inline std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw io_error(path.string(), "cannot open");
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

} // namespace detail

inline std::optional<std::string> config_special_token(const nlohmann::json& cfg, const std::string& key) {
  if (!cfg.is_object() || !cfg.contains(key) || cfg[key].is_null()) return std::nullopt;
  const auto& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  throw config_error(where_in("tokenizer_config.json", 0, key), "expected a string or {\"content\": ...}");
}

inline chat_template select_chat_template(const nlohmann::json& cfg, const std::string& where, if_no_template missing) {
  if (!cfg.is_object()) throw config_error(where, "expected a JSON object");
  if (cfg.contains("chat_template") && !cfg["chat_template"].is_null())
    return detail::match_template(detail::tokenizer_config_template(cfg, where), cfg, where);
  if (missing == if_no_template::gpt2_plain) return gpt2_plain_template();
  throw config_error(where, "has no chat_template; choose a template by name: chatml, qwen2, qwen2.5, llama3, or "
                            "gpt2-plain for a base model that has none");
}

inline chat_template select_chat_template(const std::filesystem::path& path, if_no_template missing) {
  const auto where = path.string();
  const auto cfg = read_json_file(path);
  if (!cfg.is_object()) throw format_error(where, "not a JSON object");
  const auto jinja = path.parent_path() / "chat_template.jinja";
  if ((!cfg.contains("chat_template") || cfg["chat_template"].is_null()) && std::filesystem::exists(jinja)) {
    return detail::match_template(detail::read_text_file(jinja), cfg, jinja.string());
  }
  return select_chat_template(cfg, where, missing);
}

inline chat_template jinja_template(std::string_view text, const nlohmann::json& cfg, std::string name) {
  chat_template t{.kind = chat_template_kind::jinja};
  t.program = std::make_shared<const jinja::program>(jinja::compile(text, std::move(name)));
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"})
    if (cfg.is_object())
      if (auto v = config_special_token(cfg, key)) t.variables[key] = *v;
  return t;
}

inline chat_template chat_template_from_setting(const std::string& setting, const nlohmann::json& cfg,
                                                const std::string& where, if_no_template missing) {
  if (setting == "auto") return select_chat_template(cfg, where, missing);
  for (std::string_view builtin : {"chatml", "qwen2", "qwen2.5", "llama3", "gpt2-plain"})
    if (setting == builtin) return chat_template_by_name(setting);
  if (setting == "qwen2_5") return qwen2_5_template();  // the spellings run configs use
  if (setting == "gpt2_plain") return gpt2_plain_template();
  if (cfg.is_object() && cfg.contains("chat_template") && cfg["chat_template"].is_array())
    for (const auto& entry : cfg["chat_template"])
      if (entry.is_object() && entry.value("name", nlohmann::json()) == setting && entry.contains("template") &&
          entry["template"].is_string())
        return jinja_template(entry["template"].get<std::string>(), cfg,
                              where_in(where, 0, "chat_template") + " '" + setting + "'");
  const std::filesystem::path path(setting);
  if (setting.ends_with(".jinja") || std::filesystem::is_regular_file(path))
    return jinja_template(detail::read_text_file(path), cfg, setting);
  throw config_error("chat template '" + setting + "'",
                     "unknown; give a built-in template (chatml, qwen2, qwen2.5, llama3, gpt2-plain), auto (the "
                     "model's own), the name of one of its tokenizer_config.json's named templates, or a .jinja file");
}

namespace detail {

// s as the inside of a single-quoted Jinja string literal.
inline std::string jinja_quoted(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == '\\' || c == '\'') out += '\\';
    if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

inline const chat_template& genuine_jinja(const chat_template& t) {
  // Compiled once per thread and template: the key is the kind and the text the template fills in.
  thread_local std::map<std::pair<int, std::string>, chat_template> cache;
  std::string fill = t.kind == chat_template_kind::llama3 ? t.bos_token : t.default_system.value_or("\x7f");
  const auto key = std::make_pair(static_cast<int>(t.kind), fill);
  if (const auto it = cache.find(key); it != cache.end()) return it->second;
  std::string text;
  nlohmann::json cfg = nlohmann::json::object();
  switch (t.kind) {
  case chat_template_kind::chatml:
    text = std::string(t.default_system ? chatml_system_jinja : chatml_jinja);
    if (t.default_system) text.replace(text.find('\x7f'), 1, jinja_quoted(*t.default_system));
    break;
  case chat_template_kind::qwen2_5: {
    text = std::string(qwen2_5_jinja);
    const auto system = jinja_quoted(t.default_system.value_or(std::string(qwen2_5_default_system)));
    for (auto at = text.find(qwen2_5_default_system); at != std::string::npos;
         at = text.find(qwen2_5_default_system, at + system.size()))
      text.replace(at, qwen2_5_default_system.size(), system);
    break;
  }
  case chat_template_kind::llama3:
    text = std::string(llama3_jinja);
    cfg["bos_token"] = t.bos_token;
    break;
  default:
    throw config_error("chat template '" + std::string(t.name()) + "'", "has no Jinja text");
  }
  return cache.emplace(key, jinja_template(text, cfg, std::string(t.name()) + " chat template")).first->second;
}

} // namespace detail

} // namespace prefopt::data
