// prefopt/loop/judge.hpp — what a judge is: the interface the loop (iterative and online DPO)
// scores completions through.
//
// A request is one prompt (its rendered text, and the conversation it came from where there is
// one) and the completions sampled for it. Two kinds of judge:
//   scoring judges   one score per completion (a reward model, an external command, a callable,
//                    a programmatic reward): higher is better; scores compare within a request.
//   pairwise judges  which of exactly two completions is better (index 0 or 1; -1 for a tie),
//                    as TRL's PairRMJudge / OpenAI pairwise judges answer.
// Judges take a batch of requests at once (a reward model scores them batched; an external
// process reads them in one stream) and must return exactly one answer per request and, for a
// scoring judge, exactly one finite score per completion; anything else is a judge_error naming
// the judge. Every judge has a name() used in those errors and in the run's logs.
#pragma once

#include <cmath>
#include <concepts>
#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "prefopt/core/error.hpp"

namespace prefopt::loop {

struct judge_request {
  std::string prompt;                    // the prompt as the policy saw it (rendered text)
  std::vector<std::string> completions;  // the completions to judge, in sampling order
};

// A judge failed: it exited, timed out, or answered something malformed. The message names the
// judge (its name()) and what was wrong.
class judge_error : public error {
public:
  using error::error;
};

template <class J>
concept scoring_judge = requires(J& j, std::span<const judge_request> batch) {
  { j.score(batch) } -> std::same_as<std::vector<std::vector<double>>>;
  { j.name() } -> std::convertible_to<std::string>;
};

template <class J>
concept pairwise_judge = requires(J& j, std::span<const judge_request> batch) {
  { j.compare(batch) } -> std::same_as<std::vector<int>>;
  { j.name() } -> std::convertible_to<std::string>;
};

// Checks a scoring judge's answer against its batch: one score list per request, one finite score
// per completion. Throws judge_error naming the judge and the first request that is wrong.
inline void check_scores(const std::string& judge, std::span<const judge_request> batch,
                         const std::vector<std::vector<double>>& scores) {
  if (scores.size() != batch.size())
    throw judge_error("judge '" + judge + "'", std::to_string(scores.size()) + " answers for " +
                      std::to_string(batch.size()) + " requests");
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (scores[i].size() != batch[i].completions.size())
      throw judge_error("judge '" + judge + "'", "request " + std::to_string(i) + " has " +
                        std::to_string(batch[i].completions.size()) + " completions but " +
                        std::to_string(scores[i].size()) + " scores");
    for (std::size_t k = 0; k < scores[i].size(); ++k)
      if (!std::isfinite(scores[i][k]))
        throw judge_error("judge '" + judge + "'", "request " + std::to_string(i) + ", completion " +
                          std::to_string(k) + ": score is not a finite number");
  }
}

// A C++ callable as a scoring judge: f(prompt, completions) -> one score per completion.
class callable_judge {
public:
  using function = std::function<std::vector<double>(const std::string&, const std::vector<std::string>&)>;
  callable_judge(std::string name, function f) : name_(std::move(name)), f_(std::move(f)) {}

  std::vector<std::vector<double>> score(std::span<const judge_request> batch) {
    std::vector<std::vector<double>> out;
    out.reserve(batch.size());
    for (const auto& r : batch) out.push_back(f_(r.prompt, r.completions));
    check_scores(name_, batch, out);
    return out;
  }
  std::string name() const { return name_; }

private:
  std::string name_;
  function f_;
};

static_assert(scoring_judge<callable_judge>);

} // namespace prefopt::loop
