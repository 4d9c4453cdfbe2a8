// prefopt/data/detail/record_fields.hpp — the field checks of a dataset record (formats_impl.hpp):
// where an error points, JSON type names, text and message parsing (tool calls, content lists, the
// tools and chat_template_kwargs columns, the record's own key order for chat templates).
#pragma once

#include <prefopt/data/formats.hpp>  // normally included from formats_impl.hpp

#include <optional>
#include <string>
#include <string_view>

namespace prefopt::data {
namespace detail {

// Where a record's errors point: "file:line: field 'name'".
struct record_place {
  const std::string& file;
  std::size_t line;
  [[noreturn]] void fail(const std::string& field, const std::string& why) const {
    throw data_error(where_in(file, line, field), why);
  }
};

inline std::string type_of(const nlohmann::json& v) {
  switch (v.type()) {
  case nlohmann::json::value_t::null: return "null";
  case nlohmann::json::value_t::boolean: return "a boolean";
  case nlohmann::json::value_t::string: return "a string";
  case nlohmann::json::value_t::array: return v.empty() ? "an empty list" : "a list";
  case nlohmann::json::value_t::object: return "an object";
  default: return "a number";
  }
}

inline std::string number_text(double x) {
  std::ostringstream os;
  os << x;
  return os.str();
}

// The value of `key`, or nullptr when it is absent or null.
inline const nlohmann::json* find(const nlohmann::json& obj, const std::string& key) {
  const auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

inline const nlohmann::json& require(const nlohmann::json& obj, const std::string& key, const record_place& at,
                                     dataset_format format) {
  if (const auto* v = find(obj, key)) return *v;
  at.fail(key, "missing (required by the " + std::string(to_string(format)) + " format)");
}

inline std::string parse_text(const nlohmann::json& v, const record_place& at, const std::string& field,
                              bool completion) {
  if (!v.is_string()) at.fail(field, "expected a string, got " + type_of(v));
  const auto& s = v.get_ref<const std::string&>();
  if (completion && s.empty()) at.fail(field, "empty string; a completion needs some text");
  return s;
}

// True when the message is a string role and a string content and nothing else but null keys
// (which transformers' apply_chat_template drops before rendering).
inline bool plain_message(const nlohmann::json& m) {
  if (!m.is_object()) return false;
  const auto r = m.find("role"), c = m.find("content");
  if (r == m.end() || c == m.end() || !c->is_string()) return false;
  return std::count_if(m.begin(), m.end(), [](const nlohmann::json& x) { return !x.is_null(); }) == 2;
}

// tool_calls of an assistant message: [{type, function: {name, arguments}}] or [{name, arguments}].
inline void check_tool_calls(const nlohmann::json& calls, const record_place& at, const std::string& f) {
  if (!calls.is_array()) at.fail(f, "expected a list of tool calls, got " + type_of(calls));
  for (std::size_t k = 0; k < calls.size(); ++k) {
    const auto& c = calls[k];
    const std::string fk = f + "[" + std::to_string(k) + "]";
    if (!c.is_object()) at.fail(fk, "expected a tool call {type, function: {name, arguments}}, got " + type_of(c));
    if (const auto* t = find(c, "type"); t != nullptr && !t->is_string())
      at.fail(fk + ".type", "expected a string, got " + type_of(*t));
    const bool wrapped = c.contains("function");
    const auto& fn = wrapped ? c["function"] : c;
    const std::string ff = wrapped ? fk + ".function" : fk;
    if (!fn.is_object()) at.fail(ff, "expected an object {name, arguments}, got " + type_of(fn));
    const auto* name = find(fn, "name");
    if (name == nullptr) at.fail(ff + ".name", "missing");
    if (!name->is_string() || name->get_ref<const std::string&>().empty())
      at.fail(ff + ".name", "expected a non-empty string, got " + type_of(*name));
    const auto* args = find(fn, "arguments");
    if (args == nullptr) at.fail(ff + ".arguments", "missing");
    if (args->is_string()) {
      nlohmann::json parsed;
      try {
        parsed = nlohmann::json::parse(args->get_ref<const std::string&>());
      } catch (const nlohmann::json::exception&) {
        at.fail(ff + ".arguments", "a string that is not valid JSON; expected a JSON object or its text");
      }
      if (!parsed.is_object()) at.fail(ff + ".arguments", "a string holding " + type_of(parsed) + "; expected a JSON object");
    } else if (!args->is_object()) {
      at.fail(ff + ".arguments", "expected an object or a string holding one, got " + type_of(*args));
    }
  }
}

// A message's content: a string, or a list of parts ({"type": "text", "text": ...}, {"type": "image"},
// ...) that reaches the template as it is. Returns the text (a list's "text" strings, joined): what
// prefopt itself reads of a message.
inline std::string content_text(const nlohmann::json& content, const record_place& at, const std::string& f) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array())
    at.fail(f, "expected a string or a list of content parts ({\"type\": \"text\", \"text\": ...}), got " + type_of(content));
  std::string text;
  for (std::size_t k = 0; k < content.size(); ++k) {
    const auto& part = content[k];
    const std::string fk = f + "[" + std::to_string(k) + "]";
    if (!part.is_object()) at.fail(fk, "expected a content part object ({\"type\": ..., ...}), got " + type_of(part));
    if (const auto* t = find(part, "type"); t != nullptr && !t->is_string())
      at.fail(fk + ".type", "expected a string, got " + type_of(*t));
    if (const auto* x = find(part, "text"); x != nullptr) {
      if (!x->is_string()) at.fail(fk + ".text", "expected a string, got " + type_of(*x));
      text += x->get_ref<const std::string&>();
    }
  }
  return text;
}

// `ordered`: the same list with the record's key order, or nullptr (then nlohmann::json's order).
inline messages parse_messages(const nlohmann::json& v, const record_place& at, const std::string& field,
                               const nlohmann::ordered_json* ordered = nullptr) {
  static constexpr std::array<std::string_view, 4> roles{"system", "user", "assistant", "tool"};
  if (!v.is_array()) at.fail(field, "expected a list of {role, content} messages, got " + type_of(v));
  if (v.empty()) at.fail(field, "empty message list");
  messages out;
  out.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    const auto& m = v[i];
    const std::string f = field + "[" + std::to_string(i) + "]";
    if (!m.is_object()) at.fail(f, "expected a {role, content} message, got " + type_of(m));
    const auto* role = find(m, "role");
    if (role == nullptr) at.fail(f + ".role", "missing");
    if (!role->is_string()) at.fail(f + ".role", "expected a string, got " + type_of(*role));
    const auto& r = role->get_ref<const std::string&>();
    if (std::find(roles.begin(), roles.end(), r) == roles.end())
      at.fail(f + ".role", "unknown role '" + r + "'; expected system, user, assistant or tool");
    const auto* calls = find(m, "tool_calls");
    if (calls != nullptr) {
      if (r != "assistant") at.fail(f + ".tool_calls", "on a " + r + " message; only assistant messages call tools");
      check_tool_calls(*calls, at, f + ".tool_calls");
    }
    for (const char* key : {"name", "tool_call_id", "reasoning_content", "thinking", "reasoning"})
      if (const auto* x = find(m, key); x != nullptr && !x->is_string())
        at.fail(f + "." + key, "expected a string, got " + type_of(*x));
    const bool calling = calls != nullptr && !calls->empty();
    const auto* content = find(m, "content");
    if (content == nullptr && !calling) at.fail(f + ".content", "missing");
    std::string text = content == nullptr ? std::string() : content_text(*content, at, f + ".content");
    const bool empty = content != nullptr && (content->is_string() ? content->get_ref<const std::string&>().empty()
                                                                   : content->empty());
    if (empty && !calling)
      at.fail(f + ".content", std::string(content->is_string() ? "empty string" : "an empty list of parts") +
                                  "; a message needs content (or tool_calls)");
    message msg{r, std::move(text)};
    if (!plain_message(m)) {
      // What the template sees: transformers' apply_chat_template drops a message's null keys.
      msg.fields = ordered != nullptr ? (*ordered)[i] : nlohmann::ordered_json(m);
      for (auto it = msg.fields.begin(); it != msg.fields.end();) it = it->is_null() ? msg.fields.erase(it) : std::next(it);
    }
    out.push_back(std::move(msg));
  }
  return out;
}

// The tools column of a conversational record: a list of objects (JSON schemas), or a string holding
// one (TRL's DPOTrainer json.loads it); null when absent or null.
inline nlohmann::ordered_json parse_tools(const nlohmann::json& r, const record_place& at,
                                          const nlohmann::ordered_json* ordered, const std::string& field = "tools") {
  const auto* v = find(r, "tools");
  if (v == nullptr) return nullptr;
  nlohmann::ordered_json tools;
  if (v->is_string()) {
    try {
      tools = nlohmann::ordered_json::parse(v->get_ref<const std::string&>());
    } catch (const nlohmann::json::exception&) {
      at.fail(field, "a string that is not valid JSON; expected a list of tool schemas or its JSON text");
    }
  } else {
    tools = ordered != nullptr ? *ordered : nlohmann::ordered_json(*v);
  }
  if (tools.is_null()) return nullptr;
  if (!tools.is_array()) at.fail(field, "expected a list of tool schemas, got " + type_of(nlohmann::json(tools)));
  for (std::size_t k = 0; k < tools.size(); ++k)
    if (!tools[k].is_object())
      at.fail(field + "[" + std::to_string(k) + "]", "expected a tool schema object, got " + type_of(nlohmann::json(tools[k])));
  return tools;
}

// Keys of a chat_template_kwargs column that are no template variable. TRL 1.16's tokenization calls
// apply_chat_template(messages, tokenize=True, return_dict=True, add_generation_prompt=True (the
// prompt), tools=..., **kwargs), which renders Template.render(messages=..., **kwargs): these keys
// raise a TypeError there (a second value for one argument).
inline constexpr std::array<std::string_view, 6> clashing_template_kwargs{
    "messages", "add_generation_prompt", "tokenize", "return_dict", "conversation", "conversations"};
// These are apply_chat_template's own arguments, which it takes as such instead of passing them to the
// template (a second template, padding, ...); prefopt does not act on them.
inline constexpr std::array<std::string_view, 10> argument_template_kwargs{
    "documents", "chat_template", "continue_final_message", "sanitize_control_tokens", "padding", "truncation",
    "max_length", "return_tensors", "return_assistant_tokens_mask", "tokenizer_kwargs"};

// The chat_template_kwargs column of a conversational record: an object whose keys become template
// variables (overriding a special token of the same name), as TRL's {"tools": tools,
// **example["chat_template_kwargs"]} passes them; null when absent, null or {}. A "tools" key
// replaces the record's tools column, as that merge does: it is moved to `tools`.
inline nlohmann::ordered_json parse_chat_template_kwargs(const nlohmann::json& r, const record_place& at,
                                                         const nlohmann::ordered_json* ordered,
                                                         nlohmann::ordered_json& tools) {
  const auto* v = find(r, "chat_template_kwargs");
  if (v == nullptr) return nullptr;
  if (!v->is_object())
    at.fail("chat_template_kwargs", "expected an object of template variables ({\"enable_thinking\": false}), got " +
                                        type_of(*v));
  nlohmann::ordered_json kwargs = ordered != nullptr ? *ordered : nlohmann::ordered_json(*v);
  for (const auto& [key, value] : kwargs.items()) {
    const std::string f = "chat_template_kwargs." + key;
    if (std::find(clashing_template_kwargs.begin(), clashing_template_kwargs.end(), key) != clashing_template_kwargs.end())
      at.fail(f, "not a template variable: TRL passes '" + key + "' to apply_chat_template itself, and a second "
                 "value for it fails there");
    if (std::find(argument_template_kwargs.begin(), argument_template_kwargs.end(), key) != argument_template_kwargs.end())
      at.fail(f, "not a template variable but an argument of apply_chat_template, which prefopt does not take from "
                 "a record");
  }
  if (const auto it = kwargs.find("tools"); it != kwargs.end()) {
    if (it->is_string())  // TRL json.loads the tools column, not this key: apply_chat_template then fails
      at.fail("chat_template_kwargs.tools", "a string; expected a list of tool schemas");
    nlohmann::json holder = nlohmann::json::object();
    holder["tools"] = nlohmann::json(*it);
    tools = parse_tools(holder, at, &*it, "chat_template_kwargs.tools");
    kwargs.erase(it);
  }
  if (kwargs.empty()) return nullptr;
  return kwargs;
}

// The record with its text's key order, parsed only when a message or the tools column needs it.
struct ordered_record {
  const nlohmann::json& r;
  std::string_view text;
  std::optional<nlohmann::ordered_json> value{};
  bool needed = false;

  ordered_record(const nlohmann::json& record, std::string_view t) : r(record), text(t) {
    if (find(r, "tools") != nullptr && !find(r, "tools")->is_string()) needed = true;
    if (find(r, "chat_template_kwargs") != nullptr) needed = true;
    for (const char* key : {"prompt", "chosen", "rejected", "completion"})
      if (const auto* v = find(r, key); v != nullptr && v->is_array())
        for (const auto& m : *v)
          if (m.is_object() && !plain_message(m)) needed = true;
  }
  const nlohmann::ordered_json* get(const std::string& key) {
    if (!needed) return nullptr;
    if (!value) {
      value.emplace(nlohmann::ordered_json(r));
      if (!text.empty()) {
        try {
          value.emplace(nlohmann::ordered_json::parse(text));
        } catch (const nlohmann::json::exception&) {  // not the record's text: keep nlohmann::json's order
        }
      }
    }
    const auto it = value->find(key);
    return it == value->end() ? nullptr : &*it;
  }
};

// A conversational record's tools and chat_template_kwargs columns, into rec.tools and
// rec.chat_template_kwargs (a kwargs "tools" key replacing the column).
template <class Record> void parse_template_inputs(const nlohmann::json& r, const record_place& at,
                                                   ordered_record& ordered, Record& rec) {
  rec.tools = parse_tools(r, at, ordered.get("tools"));
  rec.chat_template_kwargs = parse_chat_template_kwargs(r, at, ordered.get("chat_template_kwargs"), rec.tools);
}

// A prompt-only record's tools and chat_template_kwargs (prefopt generate and iterate read them as
// the dataset reader does); `text` is the record's JSON text, for its key order.
struct template_inputs {
  nlohmann::ordered_json tools{}, chat_template_kwargs{};
};
inline template_inputs parse_template_inputs(const nlohmann::json& r, const record_place& at, std::string_view text = {}) {
  template_inputs in;
  ordered_record ordered(r, text);
  parse_template_inputs(r, at, ordered, in);
  return in;
}

enum class text_kind { text, messages };

// String or message list, as TRL tells them apart (is_conversational).
inline text_kind kind_of(const nlohmann::json& v, const record_place& at, const std::string& field) {
  if (v.is_string()) return text_kind::text;
  if (is_message_list(v)) return text_kind::messages;
  at.fail(field, "expected a string or a list of {role, content} messages, got " +
                     (v.is_array() && !v.empty() ? std::string("a list whose first element is not a message")
                                                 : type_of(v)));
}

inline text_or_messages parse_text_or_messages(const nlohmann::json& v, text_kind kind, const record_place& at,
                                               const std::string& field, bool completion,
                                               ordered_record* ordered = nullptr) {
  if (kind == text_kind::text) return parse_text(v, at, field, completion);
  return parse_messages(v, at, field, ordered != nullptr ? ordered->get(field) : nullptr);
}

// TRL's apply_chat_template needs the prompt to end with a user, tool or assistant message.
inline void check_prompt_end(const messages& prompt, const record_place& at, const std::string& field) {
  if (prompt.back().role == "system")
    at.fail(field, "the prompt ends with a system message; it must end with a user, tool or assistant message");
}

} // namespace detail
} // namespace prefopt::data
