// prefopt/data/formats_impl.hpp — definitions for formats.hpp: numbers, scores and ids columns,
// format detection, the record parsers and reading a file (field checks: data/detail/record_fields.hpp).
#pragma once

#include <prefopt/data/formats.hpp>  // normally included from there, at its end
#include <prefopt/data/detail/record_fields.hpp>

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
  if (kind == detail::text_kind::messages) detail::parse_template_inputs(r, at, ordered, rec);
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
  if (kind == detail::text_kind::messages) detail::parse_template_inputs(r, at, ordered, rec);
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
