// prefopt/data/fit_check.hpp — tokenized data checked against the model before training starts.
//
// A token id at or above the model's vocabulary, or a row longer than a model with learned
// positions (GPT-2's n_positions) can embed, would otherwise be found only when its batch is
// reached, mid-training, with no file or line. check_fits() looks at every pair (or example) once,
// at load time, and names the offender as "train.jsonl:17: field 'chosen'": the first one is an
// error under on_error::stop (--strict), each one is skipped and reported under on_error::skip. Rows are laid
// out as the batches lay them (models/token_batch.hpp): each completion's positions start after its
// prompt, with or without prefix sharing, so a pair needs |prompt| + max(|chosen|, |rejected|)
// positions.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/data/collate.hpp"
#include "prefopt/data/jsonl.hpp"

namespace prefopt::data {

namespace detail {
inline void check_ids(std::span<const std::int32_t> ids, std::int64_t vocab_size, const std::string& file, std::size_t line,
                      const char* field) {
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= vocab_size)
      throw data_error(where_in(file, line, field), "token id " + std::to_string(ids[i]) + " (position " + std::to_string(i) +
                                                        ") is outside the model's vocabulary [0, " + std::to_string(vocab_size) + ")");
}
inline void check_length(std::size_t need, std::size_t max_positions, const std::string& file, std::size_t line) {
  if (max_positions > 0 && need > max_positions)
    throw data_error(where_in(file, line), "prompt + completion is " + std::to_string(need) + " tokens, more than the model's " +
                                               std::to_string(max_positions) +
                                               " positions (n_positions); set data.max_length to at most that to truncate");
}
inline std::size_t line_of(const std::vector<std::size_t>& lines, std::size_t i) { return i < lines.size() ? lines[i] : 0; }
} // namespace detail

struct fit_report {
  std::size_t skipped = 0;          // records removed under on_error::skip
  std::vector<std::string> errors;  // their messages
};

namespace detail {
template <class T> void keep_only(std::vector<T>& v, const std::vector<std::size_t>& keep) {
  if (v.empty()) return;  // an absent per-record column stays absent
  std::vector<T> out;
  out.reserve(keep.size());
  for (auto i : keep) out.push_back(std::move(v[i]));
  v = std::move(out);
}

// Runs `check(i)` on every record; under stop rethrows the first data_error, under skip collects
// it and returns the indices of the records that passed.
template <class Check>
std::vector<std::size_t> fitting(std::size_t n, on_error policy, fit_report& report, Check&& check) {
  std::vector<std::size_t> keep;
  keep.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    try {
      check(i);
      keep.push_back(i);
    } catch (const data_error& e) {
      if (policy == on_error::stop) throw;
      ++report.skipped;
      report.errors.emplace_back(e.what());
    }
  }
  return keep;
}
} // namespace detail

// vocab_size: the model's; max_positions: the most positions it can embed (0: no limit, as with
// rotary embeddings). Under on_error::stop, throws data_error naming the file, line and field
// of the first misfit; under on_error::skip, removes every misfit (with its per-pair columns) and
// reports it.
inline fit_report check_fits(tokenized_preferences& d, std::int64_t vocab_size, std::size_t max_positions,
                             on_error policy = on_error::stop) {
  fit_report report;
  const auto keep = detail::fitting(d.pairs.size(), policy, report, [&](std::size_t i) {
    const auto& p = d.pairs[i];
    const std::size_t line = detail::line_of(d.lines, i);
    detail::check_ids(p.prompt, vocab_size, d.file, line, "prompt");
    detail::check_ids(p.chosen, vocab_size, d.file, line, "chosen");
    detail::check_ids(p.rejected, vocab_size, d.file, line, "rejected");
    detail::check_length(std::max(p.prompt.size() + p.chosen.size(), p.rejected_row_prompt().size() + p.rejected.size()),
                         max_positions, d.file, line);
  });
  if (report.skipped > 0) {
    for (auto* column : {&d.preference_prob, &d.score_chosen, &d.score_rejected, &d.cost, &d.weight, &d.reference_chosen,
                         &d.reference_rejected})
      detail::keep_only(*column, keep);
    detail::keep_only(d.pairs, keep);
    detail::keep_only(d.lines, keep);
  }
  return report;
}

inline fit_report check_fits(tokenized_unpaired& d, std::int64_t vocab_size, std::size_t max_positions,
                             on_error policy = on_error::stop) {
  fit_report report;
  const auto keep = detail::fitting(d.examples.size(), policy, report, [&](std::size_t i) {
    const auto& e = d.examples[i];
    const std::size_t line = detail::line_of(d.lines, i);
    detail::check_ids(e.prompt, vocab_size, d.file, line, "prompt");
    detail::check_ids(e.completion, vocab_size, d.file, line, "completion");
    detail::check_length(e.prompt.size() + e.completion.size(), max_positions, d.file, line);
  });
  if (report.skipped > 0) {
    detail::keep_only(d.weight, keep);
    detail::keep_only(d.examples, keep);
    detail::keep_only(d.lines, keep);
  }
  return report;
}

// Tokens in the longest row a batch of `d` can hold (prefix sharing: prompt + chosen + rejected).
inline std::size_t longest_row(const tokenized_preferences& d, bool prefix_sharing) {
  std::size_t n = 0;
  for (const auto& p : d.pairs)
    n = std::max(n, prefix_sharing && !p.split_prompt()
                        ? p.prompt.size() + p.chosen.size() + p.rejected.size()
                        : std::max(p.prompt.size() + p.chosen.size(), p.rejected_row_prompt().size() + p.rejected.size()));
  return n;
}
// Unpaired: a KL row joins one example's prompt with another's completion, so the longest prompt
// plus the longest completion.
inline std::size_t longest_row(const tokenized_unpaired& d) {
  std::size_t prompt = 0, completion = 0;
  for (const auto& e : d.examples) prompt = std::max(prompt, e.prompt.size()), completion = std::max(completion, e.completion.size());
  return prompt + completion;
}

} // namespace prefopt::data
