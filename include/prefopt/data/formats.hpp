// prefopt/data/formats.hpp — TRL's preference dataset formats: record types, detection, reading.
//
// A JSONL file holds one record per line, all in the same format (the first record decides):
//
//   format                   fields                                          record type
//   standard                 prompt, chosen, rejected: strings               preference_record
//   conversational           prompt, chosen, rejected: message lists         preference_record
//   implicit_standard        chosen, rejected: strings                       preference_record
//   implicit_conversational  chosen, rejected: message lists                 preference_record
//   unpaired_standard        prompt, completion: strings; label: bool        unpaired_record
//   unpaired_conversational  prompt, completion: message lists; label: bool  unpaired_record
//   tokenized                prompt_input_ids, chosen_input_ids,             tokenized_pair_record
//                            rejected_input_ids: arrays of token ids
//   tokenized_unpaired       prompt_input_ids, completion_input_ids; label   tokenized_unpaired_record
//
// A message is {"role": "system"|"user"|"assistant"|"tool", "content": <non-empty string, or non-empty
// list of content parts>} plus any other keys, which reach a Jinja chat template as the JSON values
// they are (tool_calls, name, tool_call_id, reasoning_content, ...). A content part is an object
// ({"type": "text", "text": "..."}, {"type": "image"}, ...) whose "type" and "text", when present, are
// strings; the list reaches the template as it is (as TRL passes it for a text-only tokenizer), and
// message::content holds its "text" strings joined. An assistant message with "tool_calls" (a list of
// {"type": "function", "function": {"name": <non-empty string>, "arguments": <object, or a string
// holding a JSON object>}}, or the {name, arguments} objects alone) may have empty, null or no
// content. A conversational record's "tools" column (a list of JSON schema objects, or a string
// holding one, which TRL json.loads) is passed to the template as `tools`; absent or null: none.
// Its "chat_template_kwargs" column (an object) passes each key to the template as a variable
// (enable_thinking, ...; a special token's name overrides that token), as TRL 1.16's trainers pass
// **example["chat_template_kwargs"] to apply_chat_template; its "tools" key replaces the tools column,
// as there. Keys that are no template variable there (messages, add_generation_prompt, tokenize,
// documents, chat_template, ...: detail::clashing_template_kwargs, argument_template_kwargs) are errors.
// Keys keep the order of the record's text (a template's tojson prints them in that order); keys
// whose value is null are dropped, as transformers' apply_chat_template drops them (so a dataset
// whose messages all carry every key, as datasets writes them, renders as it does in TRL).
// Other columns of a record are ignored. A value counts as a message list the
// way TRL's is_conversational decides: a list whose first element is an object with a "role".
// Completions (chosen, rejected, completion) must not be empty — no empty string, message list or
// id list; a string prompt may be "" and a prompt id list may be empty (unconditional text), a
// message-list prompt may not, and it must not end with a system message (TRL refuses that too).
// Token id columns may also be spelled as TRL >= 1.0 writes them: prompt_ids, chosen_ids,
// rejected_ids, completion_ids. When token ids are present, text columns are ignored.
//
// Implicit prompt (TRL's maybe_extract_prompt / extract_prompt): with no prompt — or with a prompt
// whose kind (string or messages) differs from chosen's, which TRL then ignores — the prompt is the
// shared beginning of chosen and rejected. For message lists that is the longest common run of
// equal messages; for strings, of equal characters (Unicode code points), and if the character just
// before the first difference is a space, that space goes to the completions. When chosen and
// rejected do not differ at all within the shorter one's length, TRL keeps that length's last
// element out of the prompt; so does prefopt. Where the prompt would come out empty, prefopt reports
// an error rather than follow TRL: TRL's later apply_chat_template fails on an empty message list,
// and when the very first character differs TRL's space rule reads chosen[-1], the *last* character.
//
// Optional per-pair columns, numbers (null = absent): preference_prob in [0, 1] (soft label: the
// probability that chosen is preferred), score_chosen, score_rejected, cost (finite), weight
// (finite, >= 0). Instead of preference_prob, several annotators' votes or scores
// (chosen_votes/rejected_votes, chosen_scores/rejected_scores; data/annotators.hpp) give the soft
// label, and the record keeps them in `votes`. Unpaired records keep only weight. Checks that fail give a data_error whose
// where() is "file:line: field 'name'" (nested: 'chosen[1].role', 'chosen_input_ids[4]').
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include <prefopt/core/error.hpp>
#include <prefopt/data/annotators.hpp>
#include <prefopt/data/jsonl.hpp>

namespace prefopt::data {

struct message {
  std::string role;  // system, user, assistant or tool
  std::string content;  // "" where the record's content is null or absent (a tool-calling message);
                        // a content list's "text" strings, joined
  // The whole message as the record has it, keys in the record's order and null-valued keys
  // dropped, when that is more than a string role and a string content (tool_calls, name,
  // reasoning_content, no content, ...); null otherwise. What a Jinja chat template sees (as_json()).
  nlohmann::ordered_json fields{};

  [[nodiscard]] nlohmann::ordered_json as_json() const {
    if (fields.is_object()) return fields;
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    m["role"] = role;
    m["content"] = content;
    return m;
  }
  // As Python compares the message dicts: every key, in any order.
  friend bool operator==(const message& a, const message& b) {
    if (a.role != b.role || a.content != b.content || a.fields.is_null() != b.fields.is_null()) return false;
    return a.fields.is_null() || nlohmann::json(a.fields) == nlohmann::json(b.fields);
  }
};
using messages = std::vector<message>;
using text_or_messages = std::variant<std::string, messages>;

struct preference_record {
  text_or_messages prompt, chosen, rejected;  // all strings or all message lists
  std::optional<double> preference_prob{}, score_chosen{}, score_rejected{}, cost{}, weight{};
  std::size_t line = 0;  // line in the file, for messages
  std::optional<annotator_votes> votes{};  // annotators' votes, when preference_prob came from them
  nlohmann::ordered_json tools{};          // the tools column (conversational only); null when absent
  nlohmann::ordered_json chat_template_kwargs{};  // template variables (conversational only); null when none
};

struct unpaired_record {
  text_or_messages prompt, completion;  // both strings or both message lists
  bool label = false;                   // true: the completion is desirable
  std::optional<double> weight{};
  std::size_t line = 0;
  nlohmann::ordered_json tools{};  // the tools column (conversational only); null when absent
  nlohmann::ordered_json chat_template_kwargs{};  // template variables (conversational only); null when none
};

struct tokenized_pair_record {
  std::vector<std::int32_t> prompt, chosen, rejected;
  std::optional<double> preference_prob{}, score_chosen{}, score_rejected{}, cost{}, weight{};
  std::size_t line = 0;
  std::optional<annotator_votes> votes{};  // annotators' votes, when preference_prob came from them
};

struct tokenized_unpaired_record {
  std::vector<std::int32_t> prompt, completion;
  bool label = false;
  std::optional<double> weight{};
  std::size_t line = 0;
};

enum class dataset_format {
  standard,
  conversational,
  implicit_standard,
  implicit_conversational,
  unpaired_standard,
  unpaired_conversational,
  tokenized,
  tokenized_unpaired,
};

[[nodiscard]] constexpr std::string_view to_string(dataset_format f) noexcept {
  constexpr std::string_view names[] = {"standard",          "conversational",          "implicit_standard",
                                        "implicit_conversational", "unpaired_standard", "unpaired_conversational",
                                        "tokenized",         "tokenized_unpaired"};
  return names[static_cast<int>(f)];
}
[[nodiscard]] constexpr bool is_tokenized(dataset_format f) noexcept {
  return f == dataset_format::tokenized || f == dataset_format::tokenized_unpaired;
}
[[nodiscard]] constexpr bool is_unpaired(dataset_format f) noexcept {
  return f == dataset_format::unpaired_standard || f == dataset_format::unpaired_conversational ||
         f == dataset_format::tokenized_unpaired;
}
[[nodiscard]] constexpr bool is_conversational(dataset_format f) noexcept {
  return f == dataset_format::conversational || f == dataset_format::implicit_conversational ||
         f == dataset_format::unpaired_conversational;
}

// TRL's is_conversational for one value: a non-empty list whose first element is an object with "role".
[[nodiscard]] inline bool is_message_list(const nlohmann::json& value) {
  return value.is_array() && !value.empty() && value.front().is_object() && value.front().contains("role");
}

// The format of one record (a JSON object). data_error naming `file:line` (and the field) when it
// fits none of them.
[[nodiscard]] inline dataset_format detect_format(const nlohmann::json& record, const std::string& file = {},
                                           std::size_t line = 0);

// One record of a known format, checked field by field (see the top of this file).
// `text`, when given, is the record's JSON text: message keys and tools keep its key order (without
// it, the order of `record`, which nlohmann::json sorts).
[[nodiscard]] inline preference_record parse_preference_record(const nlohmann::json& record, dataset_format format,
                                                        const std::string& file = {}, std::size_t line = 0,
                                                        std::string_view text = {});
[[nodiscard]] inline unpaired_record parse_unpaired_record(const nlohmann::json& record, dataset_format format,
                                                    const std::string& file = {}, std::size_t line = 0,
                                                    std::string_view text = {});
[[nodiscard]] inline tokenized_pair_record parse_tokenized_pair_record(const nlohmann::json& record,
                                                                const std::string& file = {}, std::size_t line = 0);
[[nodiscard]] inline tokenized_unpaired_record parse_tokenized_unpaired_record(const nlohmann::json& record,
                                                                        const std::string& file = {},
                                                                        std::size_t line = 0);

struct extracted_prompt {
  text_or_messages prompt, chosen, rejected;
};

namespace detail {
inline std::size_t utf8_length(const std::string& s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  const std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
  return std::min(n, s.size() - i);
}

// Where TRL's extract_prompt ends the prompt (0: nothing shared).
inline std::size_t prompt_end(const std::string& c, const std::string& r) {
  std::size_t i = 0, last = 0;
  while (i < c.size() && i < r.size()) {
    const auto n = utf8_length(c, i), m = utf8_length(r, i);
    if (n != m || c.compare(i, n, r, i, m) != 0) return i > 0 && c[i - 1] == ' ' ? i - 1 : i;
    last = i;
    i += n;
  }
  return last;  // no difference within the shorter one: its last character stays out
}
inline std::size_t prompt_end(const messages& c, const messages& r) {
  const auto n = std::min(c.size(), r.size());
  for (std::size_t i = 0; i < n; ++i)
    if (!(c[i] == r[i])) return i;
  return n == 0 ? 0 : n - 1;
}

inline std::string with_field(const std::string& where, const std::string& field) {
  return where.empty() ? "field '" + field + "'" : where + ": field '" + field + "'";
}

template <class Out, class In>
std::vector<Out> unpair(const std::vector<In>& pairs, std::size_t batch_size) {
  if (batch_size == 0) throw config_error("unpair", "batch_size must be positive");
  std::vector<Out> out;
  out.reserve(2 * pairs.size());
  for (std::size_t start = 0; start < pairs.size(); start += batch_size) {
    const auto end = std::min(pairs.size(), start + batch_size);
    auto push = [&](const In& p, const auto& completion, bool label) {
      Out o{p.prompt, completion, label, p.weight, p.line};
      if constexpr (requires { o.tools; }) o.tools = p.tools, o.chat_template_kwargs = p.chat_template_kwargs;
      out.push_back(std::move(o));
    };
    for (std::size_t i = start; i < end; ++i) push(pairs[i], pairs[i].chosen, true);
    for (std::size_t i = start; i < end; ++i) push(pairs[i], pairs[i].rejected, false);
  }
  return out;
}

} // namespace detail

// TRL's extract_prompt (rule at the top of this file). chosen and rejected must be of the same kind;
// data_error at `where` (field 'chosen') when the prompt would be empty.
[[nodiscard]] inline extracted_prompt extract_prompt(const text_or_messages& chosen,
                                                     const text_or_messages& rejected, const std::string& where = {}) {
  if (chosen.index() != rejected.index())
    throw data_error(detail::with_field(where, "rejected"),
                     "chosen and rejected must both be strings or both message lists");
  return std::visit(
      [&](const auto& c) -> extracted_prompt {
        using T = std::decay_t<decltype(c)>;
        const auto& r = std::get<T>(rejected);
        const auto end = detail::prompt_end(c, r);
        if (end == 0)
          throw data_error(detail::with_field(where, "chosen"),
                           std::string("chosen and rejected differ from their first ") +
                               (std::is_same_v<T, std::string> ? "character" : "message") +
                               ", so they share no implicit prompt");
        return {T(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(end)),
                T(c.begin() + static_cast<std::ptrdiff_t>(end), c.end()),
                T(r.begin() + static_cast<std::ptrdiff_t>(end), r.end())};
      },
      chosen);
}

// TRL's unpair_preference_dataset: each pair gives (prompt, chosen, label true) and (prompt, rejected,
// label false). As datasets' batched map does with its default batch size of 1000, each batch of
// `batch_size` pairs yields its chosen rows, then its rejected rows. The weight is copied to both.
[[nodiscard]] inline std::vector<unpaired_record> unpair(const std::vector<preference_record>& pairs,
                                                         std::size_t batch_size = 1000) {
  return detail::unpair<unpaired_record>(pairs, batch_size);
}
[[nodiscard]] inline std::vector<tokenized_unpaired_record> unpair(const std::vector<tokenized_pair_record>& pairs,
                                                                   std::size_t batch_size = 1000) {
  return detail::unpair<tokenized_unpaired_record>(pairs, batch_size);
}

struct preference_file {
  std::string file;
  dataset_format format = dataset_format::standard;
  std::variant<std::vector<preference_record>, std::vector<unpaired_record>, std::vector<tokenized_pair_record>,
               std::vector<tokenized_unpaired_record>>
      records;
  read_report report;

  [[nodiscard]] std::size_t size() const noexcept {
    return std::visit([](const auto& v) { return v.size(); }, records);
  }
  // The records as one kind; config_error naming the file and its format when they are another.
  [[nodiscard]] const std::vector<preference_record>& pairs() const { return as<0>("text preference pairs"); }
  [[nodiscard]] const std::vector<unpaired_record>& unpaired() const { return as<1>("unpaired text records"); }
  [[nodiscard]] const std::vector<tokenized_pair_record>& tokenized_pairs() const {
    return as<2>("tokenized preference pairs");
  }
  [[nodiscard]] const std::vector<tokenized_unpaired_record>& tokenized_unpaired() const {
    return as<3>("tokenized unpaired records");
  }

private:
  template <std::size_t I>
  const std::variant_alternative_t<I, decltype(records)>& as(const char* wanted) const {
    if (records.index() != I)
      throw config_error(file, std::string("expected ") + wanted + ", but the file is in the " +
                                   std::string(to_string(format)) + " format");
    return std::get<I>(records);
  }
};

// Reads a .jsonl or .jsonl.gz preference file. Every record must be in the format of the first one.
// Under on_error::skip, bad records are counted in the report and left out; a file with no usable
// record is a data_error either way.
[[nodiscard]] inline preference_file read_preference_file(const std::filesystem::path& path, read_options options = {});

} // namespace prefopt::data

#include <prefopt/data/formats_impl.hpp>
