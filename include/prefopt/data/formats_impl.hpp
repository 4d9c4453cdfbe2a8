// prefopt/data/formats_impl.hpp — definitions for formats.hpp: field checks, detection, reading.
#pragma once

#include <prefopt/data/formats.hpp>  // normally included from there, at its end

#include <algorithm>
#include <array>
#include <cmath>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <type_traits>
#include <utility>

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
    if (content != nullptr && !content->is_string())
      at.fail(f + ".content", "expected a string, got " + type_of(*content) + " (content lists are not supported)");
    if (content != nullptr && content->get_ref<const std::string&>().empty() && !calling)
      at.fail(f + ".content", "empty string; a message needs content (or tool_calls)");
    message msg{r, content != nullptr ? content->get<std::string>() : std::string()};
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
                                          const nlohmann::ordered_json* ordered) {
  const auto* v = find(r, "tools");
  if (v == nullptr) return nullptr;
  nlohmann::ordered_json tools;
  if (v->is_string()) {
    try {
      tools = nlohmann::ordered_json::parse(v->get_ref<const std::string&>());
    } catch (const nlohmann::json::exception&) {
      at.fail("tools", "a string that is not valid JSON; expected a list of tool schemas or its JSON text");
    }
  } else {
    tools = ordered != nullptr ? *ordered : nlohmann::ordered_json(*v);
  }
  if (tools.is_null()) return nullptr;
  if (!tools.is_array()) at.fail("tools", "expected a list of tool schemas, got " + type_of(nlohmann::json(tools)));
  for (std::size_t k = 0; k < tools.size(); ++k)
    if (!tools[k].is_object())
      at.fail("tools[" + std::to_string(k) + "]", "expected a tool schema object, got " + type_of(nlohmann::json(tools[k])));
  return tools;
}

// The record with its text's key order, parsed only when a message or the tools column needs it.
struct ordered_record {
  const nlohmann::json& r;
  std::string_view text;
  std::optional<nlohmann::ordered_json> value{};
  bool needed = false;

  ordered_record(const nlohmann::json& record, std::string_view t) : r(record), text(t) {
    if (find(r, "tools") != nullptr && !find(r, "tools")->is_string()) needed = true;
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

inline std::optional<double> parse_number(const nlohmann::json& obj, const std::string& key, const record_place& at,
                                          double lo, double hi, const char* range) {
  const auto* v = find(obj, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) at.fail(key, "expected a number, got " + type_of(*v));
  const auto x = v->get<double>();
  if (!std::isfinite(x)) at.fail(key, number_text(x) + " is not a finite number");
  if (x < lo || x > hi) at.fail(key, number_text(x) + " is out of range (" + range + ")");
  return x;
}

// chosen_scores / rejected_scores: lists of finite numbers.
inline std::optional<std::vector<double>> parse_scores(const nlohmann::json& obj, const std::string& key,
                                                       const record_place& at) {
  const auto* v = find(obj, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_array()) at.fail(key, "expected a list of numbers (one score per annotator), got " + type_of(*v));
  std::vector<double> out;
  for (std::size_t a = 0; a < v->size(); ++a) {
    const auto& x = (*v)[a];
    const std::string f = key + "[" + std::to_string(a) + "]";
    if (!x.is_number()) at.fail(f, "expected a number, got " + type_of(x));
    if (!std::isfinite(x.get<double>())) at.fail(f, number_text(x.get<double>()) + " is not a finite number");
    out.push_back(x.get<double>());
  }
  return out;
}

// Annotators' votes or scores → preference_prob with no smoothing (data/annotators.hpp).
template <class Record> void parse_annotators(Record& rec, const nlohmann::json& obj, const record_place& at) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  const auto vc = parse_number(obj, "chosen_votes", at, 0.0, inf, "must be >= 0");
  const auto vr = parse_number(obj, "rejected_votes", at, 0.0, inf, "must be >= 0");
  const auto sc = parse_scores(obj, "chosen_scores", at), sr = parse_scores(obj, "rejected_scores", at);
  if (!vc && !vr && !sc && !sr) return;
  if (vc.has_value() != vr.has_value()) at.fail(vc ? "rejected_votes" : "chosen_votes", "missing (chosen_votes needs rejected_votes)");
  if (sc.has_value() != sr.has_value())
    at.fail(sc ? "rejected_scores" : "chosen_scores", "missing (chosen_scores needs rejected_scores)");
  if (vc && sc) at.fail("chosen_scores", "given together with chosen_votes; keep one way of stating the annotators");
  if (rec.preference_prob) at.fail("preference_prob", "given together with annotators' votes or scores; keep one");
  if (vc) {
    rec.votes = annotator_votes{*vc, *vr};
    if (!(*vc + *vr > 0.0)) at.fail("chosen_votes", "no votes on either side: no label");
  } else {
    if (sc->size() != sr->size())
      at.fail("rejected_scores", std::to_string(sr->size()) + " scores but " + std::to_string(sc->size()) +
                                     " in chosen_scores: one per annotator on each side");
    if (sc->empty()) at.fail("chosen_scores", "empty: no annotator's score");
    rec.votes = votes_of_scores(*sc, *sr);
  }
  rec.preference_prob = soft_label(*rec.votes, 0.0);
}

template <class Record>
void parse_pair_columns(Record& rec, const nlohmann::json& obj, const record_place& at) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  rec.preference_prob = parse_number(obj, "preference_prob", at, 0.0, 1.0, "must be in [0, 1]");
  rec.score_chosen = parse_number(obj, "score_chosen", at, -inf, inf, "");
  rec.score_rejected = parse_number(obj, "score_rejected", at, -inf, inf, "");
  rec.cost = parse_number(obj, "cost", at, -inf, inf, "");
  rec.weight = parse_number(obj, "weight", at, 0.0, inf, "must be >= 0");
  parse_annotators(rec, obj, at);
}

inline bool parse_label(const nlohmann::json& obj, const record_place& at, dataset_format format) {
  const auto& v = require(obj, "label", at, format);
  if (!v.is_boolean()) at.fail("label", "expected true or false, got " + type_of(v));
  return v.get<bool>();
}

// The key holding `name`'s token ids: name_input_ids or name_ids (TRL >= 1.0); "" when neither.
inline std::string ids_key(const nlohmann::json& obj, const std::string& name, const record_place& at) {
  const bool a = find(obj, name + "_input_ids") != nullptr, b = find(obj, name + "_ids") != nullptr;
  if (a && b) at.fail(name + "_ids", "both '" + name + "_input_ids' and '" + name + "_ids' are present; keep one");
  return a ? name + "_input_ids" : b ? name + "_ids" : std::string();
}

inline std::vector<std::int32_t> parse_ids(const nlohmann::json& obj, const std::string& name, const record_place& at,
                                           bool completion) {
  const auto key = ids_key(obj, name, at);
  if (key.empty()) at.fail(name + "_input_ids", "missing (required by the tokenized formats)");
  const auto& v = obj[key];
  if (!v.is_array()) at.fail(key, "expected a list of token ids, got " + type_of(v));
  if (completion && v.empty()) at.fail(key, "empty list; a completion needs at least one token");
  constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max());
  std::vector<std::int32_t> ids;
  ids.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    const auto& t = v[i];
    const std::string f = key + "[" + std::to_string(i) + "]";
    if (t.is_number_unsigned()) {
      const auto u = t.get<std::uint64_t>();
      if (u > max) at.fail(f, "token id " + std::to_string(u) + " is too large (at most 2147483647)");
      ids.push_back(static_cast<std::int32_t>(u));
    } else if (t.is_number_integer()) {
      at.fail(f, "negative token id " + std::to_string(t.get<std::int64_t>()));
    } else if (t.is_number_float()) {
      at.fail(f, "token id " + number_text(t.get<double>()) + " is not an integer");
    } else {
      at.fail(f, "expected a token id (a non-negative integer), got " + type_of(t));
    }
  }
  return ids;
}

// The field that tells a record in format `now` from the file's format `first`.
inline std::string format_difference_field(const nlohmann::json& obj, dataset_format first, dataset_format now) {
  const std::string completion = is_unpaired(now) ? "completion" : "chosen";
  if (is_tokenized(now) != is_tokenized(first) || (is_tokenized(now) && is_unpaired(now) != is_unpaired(first))) {
    if (!is_tokenized(now)) return completion;
    return find(obj, completion + "_input_ids") != nullptr ? completion + "_input_ids" : completion + "_ids";
  }
  if (is_unpaired(now) != is_unpaired(first) || is_conversational(now) != is_conversational(first)) return completion;
  return "prompt";
}

} // namespace detail

inline dataset_format detect_format(const nlohmann::json& r, const std::string& file, std::size_t line) {
  using detail::text_kind;
  const detail::record_place at{file, line};
  if (!r.is_object())
    throw data_error(where_in(file, line), "a record must be a JSON object, got " + detail::type_of(r));
  const bool chosen_ids = !detail::ids_key(r, "chosen", at).empty();
  const bool rejected_ids = !detail::ids_key(r, "rejected", at).empty();
  const bool completion_ids = !detail::ids_key(r, "completion", at).empty();
  if (chosen_ids || rejected_ids) {
    if (completion_ids)
      at.fail(detail::ids_key(r, "completion", at),
              "token ids of a pair (chosen/rejected) and of an unpaired completion; keep one kind");
    return dataset_format::tokenized;
  }
  if (completion_ids) return dataset_format::tokenized_unpaired;
  if (const auto key = detail::ids_key(r, "prompt", at); !key.empty())
    at.fail(key, "prompt token ids without chosen/rejected or completion token ids");

  const auto* prompt = detail::find(r, "prompt");
  const auto* chosen = detail::find(r, "chosen");
  const auto* rejected = detail::find(r, "rejected");
  if (chosen != nullptr || rejected != nullptr) {
    if (chosen == nullptr) at.fail("chosen", "missing (the record has 'rejected')");
    if (rejected == nullptr) at.fail("rejected", "missing (the record has 'chosen')");
    const auto kc = detail::kind_of(*chosen, at, "chosen");
    if (detail::kind_of(*rejected, at, "rejected") != kc)
      at.fail("rejected", kc == text_kind::text ? "is a message list but 'chosen' is a string"
                                                : "is a string but 'chosen' is a message list");
    const bool conv = kc == text_kind::messages;
    if (prompt != nullptr && detail::kind_of(*prompt, at, "prompt") == kc)
      return conv ? dataset_format::conversational : dataset_format::standard;
    return conv ? dataset_format::implicit_conversational : dataset_format::implicit_standard;
  }
  if (const auto* completion = detail::find(r, "completion")) {
    const auto kc = detail::kind_of(*completion, at, "completion");
    if (prompt == nullptr) at.fail("prompt", "missing (required with 'completion')");
    if (detail::kind_of(*prompt, at, "prompt") != kc)
      at.fail("prompt", kc == text_kind::text ? "is a message list but 'completion' is a string"
                                              : "is a string but 'completion' is a message list");
    return kc == text_kind::messages ? dataset_format::unpaired_conversational : dataset_format::unpaired_standard;
  }
  std::string keys;
  for (const auto& [key, value] : r.items()) keys += (keys.empty() ? "" : ", ") + key;
  throw data_error(where_in(file, line),
                   "not a preference record: expected prompt/chosen/rejected, chosen/rejected, "
                   "prompt/completion/label, or token ids (prompt_input_ids with chosen_input_ids and "
                   "rejected_input_ids, or with completion_input_ids); found: " + (keys.empty() ? "no fields" : keys));
}

inline preference_record parse_preference_record(const nlohmann::json& r, dataset_format format,
                                                 const std::string& file, std::size_t line, std::string_view text) {
  const detail::record_place at{file, line};
  if (is_unpaired(format) || is_tokenized(format))
    throw config_error("parse_preference_record", "the " + std::string(to_string(format)) +
                                                      " format does not hold text preference pairs");
  const auto kind = is_conversational(format) ? detail::text_kind::messages : detail::text_kind::text;
  preference_record rec;
  rec.line = line;
  detail::ordered_record ordered(r, text);
  rec.chosen =
      detail::parse_text_or_messages(detail::require(r, "chosen", at, format), kind, at, "chosen", true, &ordered);
  rec.rejected =
      detail::parse_text_or_messages(detail::require(r, "rejected", at, format), kind, at, "rejected", true, &ordered);
  if (kind == detail::text_kind::messages) rec.tools = detail::parse_tools(r, at, ordered.get("tools"));
  if (format == dataset_format::standard || format == dataset_format::conversational) {
    rec.prompt =
        detail::parse_text_or_messages(detail::require(r, "prompt", at, format), kind, at, "prompt", false, &ordered);
    if (kind == detail::text_kind::messages) detail::check_prompt_end(std::get<messages>(rec.prompt), at, "prompt");
  } else {
    auto e = extract_prompt(rec.chosen, rec.rejected, where_in(file, line));
    rec.prompt = std::move(e.prompt);
    rec.chosen = std::move(e.chosen);
    rec.rejected = std::move(e.rejected);
    if (kind == detail::text_kind::messages) detail::check_prompt_end(std::get<messages>(rec.prompt), at, "chosen");
  }
  detail::parse_pair_columns(rec, r, at);
  return rec;
}

inline unpaired_record parse_unpaired_record(const nlohmann::json& r, dataset_format format, const std::string& file,
                                             std::size_t line, std::string_view text) {
  const detail::record_place at{file, line};
  if (format != dataset_format::unpaired_standard && format != dataset_format::unpaired_conversational)
    throw config_error("parse_unpaired_record", "the " + std::string(to_string(format)) +
                                                    " format does not hold unpaired text records");
  const auto kind = is_conversational(format) ? detail::text_kind::messages : detail::text_kind::text;
  unpaired_record rec;
  rec.line = line;
  detail::ordered_record ordered(r, text);
  rec.prompt =
      detail::parse_text_or_messages(detail::require(r, "prompt", at, format), kind, at, "prompt", false, &ordered);
  if (kind == detail::text_kind::messages) detail::check_prompt_end(std::get<messages>(rec.prompt), at, "prompt");
  rec.completion = detail::parse_text_or_messages(detail::require(r, "completion", at, format), kind, at, "completion",
                                                  true, &ordered);
  if (kind == detail::text_kind::messages) rec.tools = detail::parse_tools(r, at, ordered.get("tools"));
  rec.label = detail::parse_label(r, at, format);
  rec.weight = detail::parse_number(r, "weight", at, 0.0, std::numeric_limits<double>::infinity(), "must be >= 0");
  return rec;
}

inline tokenized_pair_record parse_tokenized_pair_record(const nlohmann::json& r, const std::string& file,
                                                         std::size_t line) {
  const detail::record_place at{file, line};
  tokenized_pair_record rec;
  rec.line = line;
  rec.prompt = detail::parse_ids(r, "prompt", at, false);
  rec.chosen = detail::parse_ids(r, "chosen", at, true);
  rec.rejected = detail::parse_ids(r, "rejected", at, true);
  detail::parse_pair_columns(rec, r, at);
  return rec;
}

inline tokenized_unpaired_record parse_tokenized_unpaired_record(const nlohmann::json& r, const std::string& file,
                                                                 std::size_t line) {
  const detail::record_place at{file, line};
  tokenized_unpaired_record rec;
  rec.line = line;
  rec.prompt = detail::parse_ids(r, "prompt", at, false);
  rec.completion = detail::parse_ids(r, "completion", at, true);
  rec.label = detail::parse_label(r, at, dataset_format::tokenized_unpaired);
  rec.weight = detail::parse_number(r, "weight", at, 0.0, std::numeric_limits<double>::infinity(), "must be >= 0");
  return rec;
}

inline preference_file read_preference_file(const std::filesystem::path& path, read_options options) {
  jsonl_reader in(path, options);
  preference_file out;
  out.file = in.file();
  std::optional<dataset_format> format;
  std::size_t first_line = 0;
  for (jsonl_line l; in.next(l);) {
    try {
      const auto f = detect_format(l.value, out.file, l.line);
      if (!format) {
        format = f;
        first_line = l.line;
        if (f == dataset_format::tokenized) out.records.emplace<2>();
        else if (f == dataset_format::tokenized_unpaired) out.records.emplace<3>();
        else if (is_unpaired(f)) out.records.emplace<1>();
      } else if (f != *format) {
        throw data_error(where_in(out.file, l.line, detail::format_difference_field(l.value, *format, f)),
                         "this record is in the " + std::string(to_string(f)) + " format but the first record (line " +
                             std::to_string(first_line) + ") is in the " + std::string(to_string(*format)) +
                             " format; all records of a file must share one format");
      }
      switch (out.records.index()) {
      case 0: std::get<0>(out.records).push_back(parse_preference_record(l.value, f, out.file, l.line, l.text)); break;
      case 1: std::get<1>(out.records).push_back(parse_unpaired_record(l.value, f, out.file, l.line, l.text)); break;
      case 2: std::get<2>(out.records).push_back(parse_tokenized_pair_record(l.value, out.file, l.line)); break;
      default: std::get<3>(out.records).push_back(parse_tokenized_unpaired_record(l.value, out.file, l.line)); break;
      }
    } catch (const data_error& e) {
      in.reject(e);
    }
  }
  out.report = in.report();
  if (!format || out.size() == 0) throw data_error(out.file, "no usable records (" + out.report.summary() + ")");
  out.format = *format;
  return out;
}

} // namespace prefopt::data
