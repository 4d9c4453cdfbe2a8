// Unpaired (KTO) batches on a log-linear problem, shared by the KTO trainer tests of one process
// and of several ranks: n examples (prompt, response drawn uniformly; desirable when the known
// reward is positive), then n KL rows pairing each prompt with the previous example's response.
#pragma once

#include <cstddef>
#include <random>
#include <vector>

#include "prefopt/models/log_linear.hpp"
#include "prefopt/models/log_linear_problem.hpp"

namespace prefopt::test {

struct unpaired_batch {
  models::log_linear_input sequences;
  std::size_t examples = 0;
  std::vector<char> desirable;
};

inline unpaired_batch make_unpaired(const models::log_linear_problem& problem, std::size_t n, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> px(0, problem.prompts - 1), py(0, problem.responses - 1);
  unpaired_batch b;
  b.examples = n;
  std::vector<int> x(n), y(n);
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = px(rng), y[i] = py(rng);
    b.sequences.prompt.push_back(x[i]);
    b.sequences.response.push_back(y[i]);
    b.desirable.push_back(problem.r(x[i], y[i]) > 0 ? 1 : 0);
  }
  for (std::size_t i = 0; i < n; ++i) {
    b.sequences.prompt.push_back(x[i]);
    b.sequences.response.push_back(y[(i + n - 1) % n]);
  }
  return b;
}

// Examples [from, to) with their KL rows.
inline unpaired_batch slice(const unpaired_batch& b, std::size_t from, std::size_t to) {
  unpaired_batch s;
  s.examples = to - from;
  for (std::size_t i = from; i < to; ++i) {
    s.sequences.prompt.push_back(b.sequences.prompt[i]);
    s.sequences.response.push_back(b.sequences.response[i]);
    s.desirable.push_back(b.desirable[i]);
  }
  for (std::size_t i = from; i < to; ++i) {
    s.sequences.prompt.push_back(b.sequences.prompt[b.examples + i]);
    s.sequences.response.push_back(b.sequences.response[b.examples + i]);
  }
  return s;
}

} // namespace prefopt::test
