// prefopt/data/collate_impl.hpp — definitions for collate.hpp: tokenization as TRL does it,
// truncation, skipping, the report and per-pair columns.
#pragma once

#include <prefopt/data/collate.hpp>  // normally included from there, at its end

#include <algorithm>
#include <array>
#include <initializer_list>
#include <utility>

namespace prefopt::data {
namespace detail {

inline std::size_t common_prefix_length(const std::vector<std::int32_t>& a, const std::vector<std::int32_t>& b) {
  const auto n = std::min(a.size(), b.size());
  return std::size_t(std::mismatch(a.begin(), a.begin() + std::ptrdiff_t(n), b.begin()).first - a.begin());
}

// TRL's split: the prompt is cut back to its common prefix with every prompt+completion.
struct split_example {
  std::vector<std::int32_t> prompt;
  std::vector<std::vector<std::int32_t>> completions;
  bool prompt_cut = false;  // the split lies inside the tokenized prompt
};

inline split_example split_ids(std::vector<std::int32_t> prompt, std::vector<std::vector<std::int32_t>> full) {
  std::size_t n = prompt.size();
  for (const auto& f : full) n = std::min(n, common_prefix_length(prompt, f));
  split_example out{std::move(prompt), {}, false};
  out.prompt_cut = n < out.prompt.size();
  out.prompt.resize(n);
  for (auto& f : full) out.completions.emplace_back(f.begin() + std::ptrdiff_t(n), f.end());
  return out;
}

inline const std::string& require_eos(const collate_options& options, const std::string& where) {
  if (options.eos_token.empty())
    throw config_error(where.empty() ? "collate_options" : where,
                       "collate_options.eos_token is empty: TRL appends the tokenizer's EOS token to text "
                       "completions; set it, e.g. from config_special_token(tokenizer_config, \"eos_token\")");
  return options.eos_token;
}

// Prompt and completions of one record, tokenized as TRL does (see collate.hpp).
inline split_example tokenize_record(const text_or_messages& prompt,
                                     std::initializer_list<const text_or_messages*> completions, const tokenizer& tok,
                                     const chat_template* chat, const collate_options& options,
                                     const std::string& where, const nlohmann::ordered_json& tools = nullptr,
                                     const nlohmann::ordered_json& kwargs = nullptr) {
  std::vector<std::vector<std::int32_t>> full;
  if (const auto* p = std::get_if<std::string>(&prompt)) {
    const auto& eos = require_eos(options, where);
    for (const auto* c : completions) {
      const auto* text = std::get_if<std::string>(c);
      if (text == nullptr) throw data_error(where, "the prompt and the completions must all be strings or all message lists");
      full.push_back(tok.encode(*p + with_eos(*text, eos), true));
    }
    return split_ids(tok.encode(*p, true), std::move(full));
  }
  if (chat == nullptr)
    throw config_error(where, "conversational records need a chat template: pass select_chat_template(tokenizer_config.json) "
                              "or chat_template_by_name(...)");
  const auto& pm = std::get<messages>(prompt);
  if (pm.empty()) throw data_error(with_field(where, "prompt"), "empty prompt");
  for (const auto* c : completions) {
    const auto* ms = std::get_if<messages>(c);
    if (ms == nullptr) throw data_error(where, "the prompt and the completions must all be strings or all message lists");
    auto text = at_record(where, [&] { return render(*chat, concat(pm, *ms), false, false, tools, kwargs); });
    if (chat->kind == chat_template_kind::gpt2_plain) text = with_eos(std::move(text), require_eos(options, where));
    full.push_back(tok.encode(text, false));
  }
  return split_ids(tok.encode(at_record(where, [&] { return render(*chat, pm, true, false, tools, kwargs); }), false),
                   std::move(full));
}

// The truncation rules (collate.hpp) on a prompt and its completions.
// second_prompt: where keep_end puts the second completion's own prompt when the rows keep
// different prompt parts (null: a single completion).
inline truncation truncate(std::vector<std::int32_t>& prompt, std::initializer_list<std::vector<std::int32_t>*> completions,
                           const collate_options& o, std::vector<std::int32_t>* second_prompt = nullptr) {
  truncation t;
  auto keep_last = [](std::vector<std::int32_t>& v, std::size_t n) {
    if (v.size() <= n) return false;
    v.erase(v.begin(), v.end() - std::ptrdiff_t(n));
    return true;
  };
  auto keep_first = [](std::vector<std::int32_t>& v, std::size_t n) {
    if (v.size() <= n) return false;
    v.resize(n);
    return true;
  };
  if (o.max_completion_length)
    for (auto* c : completions) t.completion |= keep_first(*c, *o.max_completion_length);
  std::size_t longest = 0;
  auto find_longest = [&] {
    longest = 0;
    for (const auto* c : completions) longest = std::max(longest, c->size());
  };
  switch (o.truncation) {
  case truncation_mode::keep_prompt_end: {
    if (o.max_prompt_length) t.prompt |= keep_last(prompt, *o.max_prompt_length);
    if (!o.max_length) return t;
    const std::size_t L = *o.max_length;
    find_longest();
    if (prompt.size() + longest > L)
      t.prompt |= keep_last(prompt, std::max(L > longest ? L - longest : 0, std::min(prompt.size(), L / 2)));
    const std::size_t room = L > prompt.size() ? L - prompt.size() : 0;
    for (auto* c : completions) t.completion |= keep_first(*c, room);
    return t;
  }
  case truncation_mode::keep_start: {
    if (o.max_prompt_length) t.prompt |= keep_first(prompt, *o.max_prompt_length);
    if (!o.max_length) return t;
    const std::size_t L = *o.max_length;
    if (prompt.size() >= L) {  // TRL: dataset.filter(len(prompt_ids) < max_length)
      t.dropped = true;
      return t;
    }
    for (auto* c : completions) t.completion |= keep_first(*c, L - prompt.size());  // row[:L]
    return t;
  }
  case truncation_mode::keep_end: {
    if (o.max_prompt_length) t.prompt |= keep_last(prompt, *o.max_prompt_length);
    if (!o.max_length) return t;
    const std::size_t L = *o.max_length;
    find_longest();
    if (prompt.size() + longest <= L) return t;
    // TRL keeps row[-L:] of each row prompt + completion: the prompt's last L − |c| tokens, or none when
    // |c| >= L; then the row's first kept token (which nothing predicts) stands as its prompt.
    std::vector<std::vector<std::int32_t>> kept;
    for (auto* c : completions) {
      if (c->size() >= L) {
        kept.emplace_back(c->end() - std::ptrdiff_t(L), c->end() - std::ptrdiff_t(L) + 1);
        t.completion |= keep_last(*c, L - 1);
      } else {
        kept.emplace_back(prompt.end() - std::ptrdiff_t(std::min(prompt.size(), L - c->size())), prompt.end());
      }
    }
    for (const auto& k : kept) t.prompt |= k != prompt;
    if (kept.size() > 1 && kept[1] != kept[0]) {
      if (second_prompt == nullptr) throw std::logic_error("truncate: keep_end needs a second prompt for this pair");
      *second_prompt = std::move(kept[1]);
      t.split = true;
    }
    prompt = std::move(kept[0]);
    return t;
  }
  }
  return t;
}

inline void check_options(const collate_options& o) {
  if (o.max_length && *o.max_length == 0) throw config_error("collate_options: max_length", "must be positive");
  if (o.max_prompt_length && *o.max_prompt_length == 0)
    throw config_error("collate_options: max_prompt_length", "must be positive");
  if (o.max_completion_length && *o.max_completion_length == 0)
    throw config_error("collate_options: max_completion_length", "must be positive");
}

inline std::int32_t pad_id(const tokenizer* tok, const collate_options& o) {
  if (o.pad_token_id) return *o.pad_token_id;
  if (tok && !o.eos_token.empty())
    if (const auto id = tok->token_to_id(o.eos_token)) return *id;
  return 0;
}

inline void note(std::vector<std::size_t>& lines, std::size_t line, const collate_options& o) {
  if (lines.size() < o.keep_lines) lines.push_back(line);
}

// Counts one example into the report; true when it is kept. Truncates it in place.
inline bool admit(collate_report& r, std::vector<std::int32_t>& prompt,
                  std::initializer_list<std::vector<std::int32_t>*> completions, bool prompt_cut, std::size_t line,
                  const collate_options& o, std::vector<std::int32_t>* second_prompt = nullptr) {
  ++r.records;
  if (prompt_cut) {
    ++r.prompt_cuts;
    note(r.prompt_cut_lines, line, o);
  }
  auto any_empty = [&] { return std::any_of(completions.begin(), completions.end(), [](auto* c) { return c->empty(); }); };
  if (prompt.empty() || any_empty()) {
    ++(prompt.empty() ? r.skipped_empty_prompt : r.skipped_empty_completion);
    note(r.skipped_lines, line, o);
    return false;
  }
  const auto t = truncate(prompt, completions, o, second_prompt);
  if (t.dropped) {
    ++r.dropped_prompt_fills;
    note(r.skipped_lines, line, o);
    return false;
  }
  r.keep_end_split += t.split;
  if (prompt.empty() || any_empty()) {
    ++r.skipped_by_truncation;
    note(r.skipped_lines, line, o);
    return false;
  }
  r.truncated_prompt += t.prompt;
  r.truncated_completion += t.completion;
  if (t.prompt || t.completion) note(r.truncated_lines, line, o);
  ++r.kept;
  return true;
}

// A per-pair column: all present, all absent, or a data_error at the first line that lacks it.
class column_builder {
public:
  explicit column_builder(const char* name) : name_(name) {}
  void add(const std::optional<double>& v, std::size_t line) {
    if (v) {
      values_.push_back(*v);
      if (!first_with_) first_with_ = line;
    } else if (!first_without_) {
      first_without_ = line;
    }
  }
  std::vector<double> finish(const std::string& file) {
    if (first_with_ && first_without_)
      throw data_error(where_in(file, *first_without_, name_),
                       "missing, but line " + std::to_string(*first_with_) +
                           " has it; give the column on every record or on none");
    return std::move(values_);
  }

private:
  const char* name_;
  std::vector<double> values_;
  std::optional<std::size_t> first_with_, first_without_;
};

inline void finish_report(const collate_report& r, const std::string& file) {
  if (r.kept == 0) throw data_error(file, "no example left after tokenization and truncation (" + r.summary() + ")");
}

inline std::string join_lines(const std::vector<std::size_t>& lines) {
  std::string s;
  for (auto l : lines) s += (s.empty() ? "" : ", ") + std::to_string(l);
  return s;
}

} // namespace detail

inline std::string collate_report::summary() const {
  std::string s = std::to_string(records) + " records: " + std::to_string(kept) + " kept, " + std::to_string(skipped()) +
                  " skipped (" + std::to_string(skipped_empty_prompt) + " empty prompt, " +
                  std::to_string(skipped_empty_completion) + " empty completion, " +
                  std::to_string(skipped_by_truncation) + " truncated to nothing";
  if (dropped_prompt_fills) s += ", " + std::to_string(dropped_prompt_fills) + " dropped as TRL drops them: the prompt fills max_length";
  if (!skipped_lines.empty()) s += "; lines " + detail::join_lines(skipped_lines);
  s += "); truncated: " + std::to_string(truncated_prompt) + " prompts, " + std::to_string(truncated_completion) +
       " completions";
  if (!truncated_lines.empty()) s += " (lines " + detail::join_lines(truncated_lines) + ")";
  s += "; " + std::to_string(prompt_cuts) + " prompt cuts";
  if (!prompt_cut_lines.empty()) s += " (lines " + detail::join_lines(prompt_cut_lines) + ")";
  if (keep_end_split)
    s += "; keep_end: " + std::to_string(keep_end_split) + " pairs whose rows keep different prompt parts (two rows each)";
  return s;
}

inline models::tokenized_pair tokenize_pair(const preference_record& r, const tokenizer& tok, const chat_template* chat,
                                            const collate_options& options, const std::string& where) {
  auto s = detail::tokenize_record(r.prompt, {&r.chosen, &r.rejected}, tok, chat, options, where, r.tools,
                                  r.chat_template_kwargs);
  return {std::move(s.prompt), std::move(s.completions[0]), std::move(s.completions[1])};
}

inline tokenized_example tokenize_example(const unpaired_record& r, const tokenizer& tok, const chat_template* chat,
                                          const collate_options& options, const std::string& where) {
  auto s = detail::tokenize_record(r.prompt, {&r.completion}, tok, chat, options, where, r.tools,
                                  r.chat_template_kwargs);
  return {std::move(s.prompt), std::move(s.completions[0]), r.label};
}

inline truncation truncate_pair(models::tokenized_pair& p, const collate_options& o) {
  if (p.split_prompt()) throw std::invalid_argument("truncate_pair: the pair's rows already keep separate prompts");
  return detail::truncate(p.prompt, {&p.chosen, &p.rejected}, o, &p.rejected_prompt);
}

inline truncation truncate_example(tokenized_example& e, const collate_options& o) {
  return detail::truncate(e.prompt, {&e.completion}, o);
}

inline truncation truncate_pair(models::tokenized_pair& p, std::optional<std::size_t> max_length,
                                std::optional<std::size_t> max_prompt_length) {
  collate_options o;
  o.max_length = max_length, o.max_prompt_length = max_prompt_length;
  return truncate_pair(p, o);
}

inline truncation truncate_example(tokenized_example& e, std::optional<std::size_t> max_length,
                                   std::optional<std::size_t> max_prompt_length) {
  collate_options o;
  o.max_length = max_length, o.max_prompt_length = max_prompt_length;
  return truncate_example(e, o);
}

namespace detail {
inline tokenized_preferences tokenize_preferences(const preference_file& file, const tokenizer* tok,
                                                  const chat_template* chat, const collate_options& options) {
  check_options(options);
  if (file.records.index() != 0 && file.records.index() != 2)
    throw config_error(file.file, "tokenize_preferences needs preference pairs, but the file is in the " +
                                      std::string(to_string(file.format)) + " format (use tokenize_unpaired)");
  tokenized_preferences out;
  out.file = file.file;
  out.pad_token_id = detail::pad_id(tok, options);
  if (file.records.index() == 0 && !tok)
    throw config_error(file.file, "text records need a tokenizer (tokenizer.json)");
  std::array<detail::column_builder, 5> cols{detail::column_builder("preference_prob"), detail::column_builder("score_chosen"),
                                             detail::column_builder("score_rejected"), detail::column_builder("cost"),
                                             detail::column_builder("weight")};
  auto take = [&](models::tokenized_pair p, bool cut, const auto& rec) {
    if (!detail::admit(out.report, p.prompt, {&p.chosen, &p.rejected}, cut, rec.line, options, &p.rejected_prompt)) return;
    out.pairs.push_back(std::move(p));
    out.lines.push_back(rec.line);
    cols[0].add(rec.preference_prob, rec.line), cols[1].add(rec.score_chosen, rec.line);
    cols[2].add(rec.score_rejected, rec.line), cols[3].add(rec.cost, rec.line), cols[4].add(rec.weight, rec.line);
  };
  if (file.records.index() == 0) {
    for (const auto& rec : file.pairs()) {
      auto s = detail::tokenize_record(rec.prompt, {&rec.chosen, &rec.rejected}, *tok, chat, options,
                                       where_in(file.file, rec.line), rec.tools, rec.chat_template_kwargs);
      take({std::move(s.prompt), std::move(s.completions[0]), std::move(s.completions[1])}, s.prompt_cut, rec);
    }
  } else {
    for (const auto& rec : file.tokenized_pairs()) take({rec.prompt, rec.chosen, rec.rejected}, false, rec);
  }
  detail::finish_report(out.report, out.file);
  out.preference_prob = cols[0].finish(out.file), out.score_chosen = cols[1].finish(out.file);
  out.score_rejected = cols[2].finish(out.file), out.cost = cols[3].finish(out.file), out.weight = cols[4].finish(out.file);
  return out;
}
} // namespace detail

inline tokenized_preferences tokenize_preferences(const preference_file& file, const tokenizer& tok,
                                                  const chat_template* chat, const collate_options& options) {
  return detail::tokenize_preferences(file, &tok, chat, options);
}
inline tokenized_preferences tokenize_preferences(const preference_file& file, const collate_options& options) {
  return detail::tokenize_preferences(file, nullptr, nullptr, options);
}

namespace detail {
inline tokenized_unpaired tokenize_unpaired(const preference_file& file, const tokenizer* tok, const chat_template* chat,
                                            const collate_options& options) {
  detail::check_options(options);
  if ((file.records.index() == 0 || file.records.index() == 1) && !tok)
    throw config_error(file.file, "text records need a tokenizer (tokenizer.json)");
  tokenized_unpaired out;
  out.file = file.file;
  out.pad_token_id = detail::pad_id(tok, options);
  out.max_length = options.max_length;
  detail::column_builder weight("weight");
  auto take = [&](tokenized_example e, bool cut, const auto& rec) {
    if (!detail::admit(out.report, e.prompt, {&e.completion}, cut, rec.line, options)) return;
    out.examples.push_back(std::move(e));
    out.lines.push_back(rec.line);
    weight.add(rec.weight, rec.line);
  };
  auto text = [&](const std::vector<unpaired_record>& records) {
    for (const auto& rec : records) {
      auto s = detail::tokenize_record(rec.prompt, {&rec.completion}, *tok, chat, options, where_in(file.file, rec.line),
                                       rec.tools, rec.chat_template_kwargs);
      take({std::move(s.prompt), std::move(s.completions[0]), rec.label}, s.prompt_cut, rec);
    }
  };
  auto ids = [&](const std::vector<tokenized_unpaired_record>& records) {
    for (const auto& rec : records) take({rec.prompt, rec.completion, rec.label}, false, rec);
  };
  switch (file.records.index()) {
  case 0: text(unpair(file.pairs())); break;
  case 1: text(file.unpaired()); break;
  case 2: ids(unpair(file.tokenized_pairs())); break;
  default: ids(file.tokenized_unpaired()); break;
  }
  detail::finish_report(out.report, out.file);
  out.weight = weight.finish(out.file);
  return out;
}
} // namespace detail

inline tokenized_unpaired tokenize_unpaired(const preference_file& file, const tokenizer& tok, const chat_template* chat,
                                            const collate_options& options) {
  return detail::tokenize_unpaired(file, &tok, chat, options);
}
inline tokenized_unpaired tokenize_unpaired(const preference_file& file, const collate_options& options) {
  return detail::tokenize_unpaired(file, nullptr, nullptr, options);
}

} // namespace prefopt::data
