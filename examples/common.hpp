// Shared by the examples: a synthetic preference problem with a known optimum (see
// prefopt/models/log_linear_problem.hpp) and a minibatch training loop around train::trainer.
#pragma once

#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>

#include "prefopt/backends/eigen.hpp"
#include "prefopt/models/log_linear_problem.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/train/trainer.hpp"

namespace example {

using backend = prefopt::backends::eigen;
using model = prefopt::models::log_linear<backend>;
using batch = prefopt::train::preference_batch<prefopt::models::log_linear_input>;

struct setup {
  prefopt::models::log_linear_problem problem = prefopt::models::log_linear_problem::make(4, 4, 7);
  model policy{backend{}, problem.prompts, problem.responses, problem.dims, problem.features, problem.theta_ref};
  model reference{backend{}, problem.prompts, problem.responses, problem.dims, problem.features, problem.theta_ref};
  std::vector<prefopt::models::sampled_pair> pairs;

  explicit setup(std::size_t n_pairs, unsigned seed = 11) {
    std::mt19937_64 rng(seed);
    pairs = problem.sample_pairs(n_pairs, rng);
  }
  // Minibatches of `size` pairs, in a seeded shuffled order.
  std::vector<batch> minibatches(std::size_t size, unsigned seed) const {
    std::vector<prefopt::models::sampled_pair> p = pairs;
    std::mt19937_64 rng(seed);
    std::shuffle(p.begin(), p.end(), rng);
    std::vector<batch> out;
    for (std::size_t i = 0; i + size <= p.size(); i += size) {
      std::vector<prefopt::models::sampled_pair> part(p.begin() + std::ptrdiff_t(i), p.begin() + std::ptrdiff_t(i + size));
      out.push_back({prefopt::models::log_linear_problem::input_of(part), part.size()});
    }
    return out;
  }
};

// Trains for `epochs` over minibatches, printing TRL-named metrics every `every` steps.
template <class Trainer> void train(Trainer& t, const setup& s, int epochs, std::size_t batch_size, int every = 100) {
  for (int e = 0; e < epochs; ++e)
    for (const auto& b : s.minibatches(batch_size, unsigned(e))) {
      const auto r = t.step(b);
      if (t.global_step() % every == 0)
        std::printf("  step %4ld  loss %.4f  rewards/margins %+.3f  rewards/accuracies %.3f  lr %.2e\n", t.global_step(),
                    r.metrics.at("loss"), r.metrics.at("rewards/margins"), r.metrics.at("rewards/accuracies"),
                    r.metrics.at("learning_rate"));
    }
}

inline long steps_for(std::size_t pairs, std::size_t batch_size, int epochs) { return long(pairs / batch_size) * epochs; }

} // namespace example
