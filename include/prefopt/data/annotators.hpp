// prefopt/data/annotators.hpp — several annotators' judgments of a pair as one soft label.
//
// A preference record may carry, instead of (never together with) preference_prob, either
//   chosen_votes, rejected_votes    how many annotators preferred each side (numbers ≥ 0, so
//                                   weighted or fractional votes are allowed; total > 0), or
//   chosen_scores, rejected_scores  one score per annotator for each side (lists of finite numbers
//                                   of the same length ≥ 1; annotator a is chosen_scores[a] and
//                                   rejected_scores[a]).
// Scores become votes by one rule, independent of the scores' scale: an annotator votes for the
// side it scored higher; equal scores give half a vote to each side. The soft label is then
//   p = (v_c + α) / (v_c + v_r + 2α)
// with additive smoothing α ≥ 0 (α = 1 is Laplace's rule of succession): with few annotators it
// pulls p toward ½ as conservative DPO's ε does, less the more annotators agree. Reading a file
// sets preference_prob with α = 0 and keeps the votes on the record (`votes`); relabel() applies
// another α. The label feeds losses::probabilistic (−p·logσ(βh) − (1−p)·logσ(−βh)) and the other
// losses that read preference_prob, through collation like a preference_prob column.
#pragma once

#include <cmath>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "prefopt/core/error.hpp"

namespace prefopt::data {

struct annotator_votes {
  double chosen = 0.0, rejected = 0.0;
  friend bool operator==(const annotator_votes&, const annotator_votes&) = default;
};

// The rule above: one vote per annotator for its higher-scored side, half to each on a tie.
// Throws data_error when the lists differ in length or are empty.
inline annotator_votes votes_of_scores(std::span<const double> chosen, std::span<const double> rejected) {
  if (chosen.size() != rejected.size())
    throw data_error("chosen_scores/rejected_scores", std::to_string(chosen.size()) + " and " +
                                                          std::to_string(rejected.size()) +
                                                          " scores: one per annotator on each side expected");
  if (chosen.empty()) throw data_error("chosen_scores", "no annotator's score");
  annotator_votes v;
  for (std::size_t a = 0; a < chosen.size(); ++a) {
    if (chosen[a] > rejected[a]) v.chosen += 1.0;
    else if (chosen[a] < rejected[a]) v.rejected += 1.0;
    else v.chosen += 0.5, v.rejected += 0.5;
  }
  return v;
}

// p = (v_c + α) / (v_c + v_r + 2α). config_error for α < 0 or not finite; data_error when there
// is nothing to divide (no votes and α = 0).
inline double soft_label(const annotator_votes& v, double smoothing = 0.0) {
  if (!(smoothing >= 0.0) || !std::isfinite(smoothing))
    throw config_error("annotators: field 'smoothing'", "must be finite and ≥ 0");
  const double total = v.chosen + v.rejected + 2.0 * smoothing;
  if (!(total > 0.0)) throw data_error("chosen_votes/rejected_votes", "no votes (and no smoothing): no label");
  return (v.chosen + smoothing) / total;
}

// Recomputes preference_prob of every record that came with votes or scores, with smoothing α.
// Records without them keep their preference_prob.
template <class Record> void relabel(std::vector<Record>& records, double smoothing) {
  soft_label({1.0, 0.0}, smoothing);  // checks α once, also for a file without votes
  for (auto& r : records)
    if (r.votes) r.preference_prob = soft_label(*r.votes, smoothing);
}

// The same for a whole file read by read_preference_file (data/formats.hpp): its paired records.
template <class File> void relabel_file(File& file, double smoothing) {
  soft_label({1.0, 0.0}, smoothing);
  std::visit(
      [&](auto& records) {
        if constexpr (requires { records.front().votes; }) relabel(records, smoothing);
      },
      file.records);
}

} // namespace prefopt::data
