// prefopt/data/collate_batch_impl.hpp — definitions for collate.hpp: batch plans, padding waste, batches.
#pragma once

#include <prefopt/data/collate.hpp>  // normally included from there, at its end

#include <algorithm>
#include <numeric>
#include <utility>

namespace prefopt::data {
namespace detail {

inline std::uint64_t uniform_below(std::mt19937_64& rng, std::uint64_t n) {
  const std::uint64_t threshold = (std::uint64_t(0) - n) % n;  // 2^64 mod n: rejecting below it is unbiased
  for (;;)
    if (const std::uint64_t x = rng(); x >= threshold) return x % n;
}

template <class T> void shuffle(std::vector<T>& v, std::mt19937_64& rng) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[std::size_t(uniform_below(rng, i))]);
}

inline void check_indices(std::span<const std::size_t> indices, std::size_t size, const char* what) {
  if (indices.empty()) throw shape_error(what, "no examples in the batch");
  for (auto i : indices)
    if (i >= size)
      throw shape_error(what, "index " + std::to_string(i) + " outside the " + std::to_string(size) + " examples");
}

} // namespace detail

inline batch_plan make_batch_plan(std::span<const std::size_t> lengths, const batch_plan_options& o,
                                  std::mt19937_64& rng) {
  if (o.batch_size == 0) throw config_error("batch_plan_options: batch_size", "must be positive");
  if (o.length_bucketing && o.mega_batch_factor == 0)
    throw config_error("batch_plan_options: mega_batch_factor", "must be positive");
  std::vector<std::size_t> order(lengths.size());
  std::iota(order.begin(), order.end(), std::size_t(0));
  if (o.shuffle) detail::shuffle(order, rng);
  batch_plan plan;
  const std::size_t group = o.length_bucketing ? o.mega_batch_factor * o.batch_size : order.size();
  for (std::size_t start = 0; start < order.size(); start += group) {
    const auto first = order.begin() + std::ptrdiff_t(start);
    const auto last = order.begin() + std::ptrdiff_t(std::min(order.size(), start + group));
    if (o.length_bucketing)
      std::stable_sort(first, last, [&](std::size_t a, std::size_t b) { return lengths[a] > lengths[b]; });
    for (auto it = first; it != last;) {
      const auto end = it + std::min<std::ptrdiff_t>(std::ptrdiff_t(o.batch_size), last - it);
      if (!o.drop_last || std::size_t(end - it) == o.batch_size) plan.batches.emplace_back(it, end);
      it = end;
    }
  }
  if (o.length_bucketing && o.shuffle) detail::shuffle(plan.batches, rng);
  return plan;
}

inline batch_plan make_batch_plan(std::span<const std::size_t> lengths, const batch_plan_options& o, std::uint64_t seed,
                                  std::uint64_t epoch) {
  std::seed_seq seq{std::uint32_t(seed), std::uint32_t(seed >> 32), std::uint32_t(epoch), std::uint32_t(epoch >> 32)};
  std::mt19937_64 rng(seq);
  return make_batch_plan(lengths, o, rng);
}

inline std::vector<std::size_t> row_lengths(const tokenized_preferences& d, bool prefix_sharing) {
  std::vector<std::size_t> n;
  n.reserve(d.size());
  for (const auto& p : d.pairs)
    n.push_back(p.split_prompt() ? std::max(p.prompt.size() + p.chosen.size(), p.rejected_prompt.size() + p.rejected.size())
                : p.prompt.size() + (prefix_sharing ? p.chosen.size() + p.rejected.size()
                                                    : std::max(p.chosen.size(), p.rejected.size())));
  return n;
}

inline std::vector<std::size_t> row_lengths(const tokenized_unpaired& d) {
  std::vector<std::size_t> n;
  n.reserve(d.size());
  for (const auto& e : d.examples) n.push_back(e.prompt.size() + e.completion.size());
  return n;
}

inline double padding_waste(const tokenized_preferences& d, const batch_plan& plan, bool prefix_sharing) {
  double waste = 0, total = 0;
  std::vector<std::size_t> rows;
  for (const auto& batch : plan.batches) {
    detail::check_indices(batch, d.size(), "padding_waste");
    rows.clear();
    for (auto i : batch) {
      const auto& p = d.pairs[i];
      if (prefix_sharing && !p.split_prompt()) {
        rows.push_back(p.prompt.size() + p.chosen.size() + p.rejected.size());
      } else {
        rows.push_back(p.prompt.size() + p.chosen.size());
        rows.push_back(p.rejected_row_prompt().size() + p.rejected.size());
      }
    }
    const auto width = *std::max_element(rows.begin(), rows.end());
    for (auto r : rows) waste += double(width - r);
    total += double(width) * double(rows.size());
  }
  return total > 0 ? waste / total : 0.0;
}

inline std::vector<double> gather_column(const std::vector<double>& column, std::span<const std::size_t> indices) {
  std::vector<double> out;
  if (column.empty()) return out;
  out.reserve(indices.size());
  for (auto i : indices) {
    if (i >= column.size())
      throw shape_error("gather_column", "index " + std::to_string(i) + " outside the " + std::to_string(column.size()) +
                                             " values");
    out.push_back(column[i]);
  }
  return out;
}

inline train::preference_batch<models::token_batch> make_batch(const tokenized_preferences& d,
                                                               std::span<const std::size_t> indices,
                                                               bool prefix_sharing, int pad_to_multiple_of) {
  detail::check_indices(indices, d.size(), "make_batch");
  std::vector<models::tokenized_pair> pairs;
  pairs.reserve(indices.size());
  for (auto i : indices) pairs.push_back(d.pairs[i]);
  train::preference_batch<models::token_batch> b;
  b.sequences = models::pack_pairs(pairs, prefix_sharing, pad_to_multiple_of, d.pad_token_id);
  b.pairs = indices.size();
  b.preference_prob = gather_column(d.preference_prob, indices);
  b.score_chosen = gather_column(d.score_chosen, indices);
  b.score_rejected = gather_column(d.score_rejected, indices);
  b.cost = gather_column(d.cost, indices);
  b.reference_chosen = gather_column(d.reference_chosen, indices);
  b.reference_rejected = gather_column(d.reference_rejected, indices);
  return b;
}

inline unpaired_batch make_unpaired_batch(const tokenized_unpaired& d, std::span<const std::size_t> indices,
                                          bool kl_rows, int pad_to_multiple_of,
                                          std::span<const std::size_t> kl_completions) {
  detail::check_indices(indices, d.size(), "make_unpaired_batch");
  if (!kl_completions.empty()) detail::check_indices(kl_completions, d.size(), "make_unpaired_batch: kl_completions");
  if (!kl_completions.empty() && kl_completions.size() != indices.size())
    throw shape_error("make_unpaired_batch: kl_completions", "needs one entry per example");
  unpaired_batch out;
  const auto n = indices.size();
  out.examples = n;
  for (std::size_t k = 0; k < n; ++k) {
    const auto& e = d.examples[indices[k]];
    if (e.prompt.empty() || e.completion.empty())
      throw data_error(where_in(d.file, d.lines.empty() ? 0 : d.lines[indices[k]]), "empty prompt or completion");
    out.sequences.add_row(e.prompt, {&e.completion}, {std::int32_t(k)});
    out.sequences.pad_last_row(pad_to_multiple_of, d.pad_token_id);
    out.desirable.push_back(e.label ? 1 : 0);
  }
  if (kl_rows)
    for (std::size_t k = 0; k < n; ++k) {
      const auto& prompt = d.examples[indices[k]].prompt;
      auto completion = d.examples[kl_completions.empty() ? indices[(k + n - 1) % n] : kl_completions[k]].completion;
      if (d.max_length && prompt.size() + completion.size() > *d.max_length)
        completion.resize(*d.max_length > prompt.size() ? *d.max_length - prompt.size() : 1);
      out.sequences.add_row(prompt, {&completion}, {std::int32_t(n + k)});
      out.sequences.pad_last_row(pad_to_multiple_of, d.pad_token_id);
    }
  out.sequences.sequences = std::int32_t(kl_rows ? 2 * n : n);
  out.weight = gather_column(d.weight, indices);
  return out;
}

} // namespace prefopt::data
