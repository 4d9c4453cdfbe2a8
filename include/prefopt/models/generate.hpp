// prefopt/models/generate.hpp — ancestral sampling from a causal LM, batched, seeded.
//
//   std::mt19937_64 rng(seed);
//   auto out = models::generate(model, prompts, rng, {.temperature = 1.0, .max_new_tokens = 16, .eos_id = eos});
//   out[i].tokens   // prompt i's continuation (ending with eos when it stopped there)
//
// Each step draws y_t ~ softmax(z_t / τ) given prompt + y_<t, with z_t the model's next-token
// logits (τ = temperature; τ ≤ 0 takes the argmax, the lowest id on ties). A continuation ends
// when it draws eos_id (kept as its last token), after max_new_tokens tokens, or when prompt +
// continuation fill the model's max_positions. Prompts are decoded batch_rows at a time, packed
// without padding (token_batch rows); the prefix is recomputed every step (no KV cache: meant
// for small models and short continuations).
//
// Randomness: prompt i gets its own std::mt19937_64, seeded by the i-th output of `rng` (drawn
// for every prompt, in order, before decoding), and its draws are uniform01 of that engine
// (detail/random.hpp). A seed therefore gives the same samples whatever batch_rows is (up to
// float differences in the logits between batch compositions), and on every standard library.
//
// The next-token distribution comes from the model's next_token_logprobs (the transformers have
// it: one head product per prefix). Any other model that reads a token_batch and has a config()
// with vocab_size and max_positions is sampled through its ordinary forward pass, the last token
// of each prefix predicting every vocabulary token as its own sequence (O(V²) per step).
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/models/concepts.hpp"
#include "prefopt/models/detail/random.hpp"
#include "prefopt/models/token_batch.hpp"

namespace prefopt::models {

struct sampling_options {
  double temperature = 1.0;   // τ; ≤ 0: greedy
  int max_new_tokens = 32;    // per continuation (also capped by max_positions − prompt length)
  std::int32_t eos_id = -1;   // < 0: no end token
  int batch_rows = 64;        // prompts decoded together

  void validate() const {
    if (!std::isfinite(temperature)) throw config_error("sampling_options: field 'temperature'", "must be finite");
    if (max_new_tokens < 0) throw config_error("sampling_options: field 'max_new_tokens'", "must be >= 0");
    if (batch_rows <= 0) throw config_error("sampling_options: field 'batch_rows'", "must be > 0");
  }
};

struct sample {
  std::vector<std::int32_t> tokens{};  // the continuation, prompt excluded
  bool stopped = false;                // it ended by drawing eos_id
  double logp = 0.0;                   // Σ_t log π(y_t | prompt, y_<t) under the model (temperature 1)
};

// A model generate() can drive: reads token batches, knows its vocabulary and position limit.
template <class M>
concept SamplableModel = PolicyModel<M> && std::same_as<typename M::input_type, token_batch> && requires(const M& m) {
  { m.config().vocab_size } -> std::convertible_to<int>;
  { m.config().max_positions } -> std::convertible_to<int>;
};

// log π(v | prefix) for every prefix and every token v: [prefixes × V], row-major.
template <SamplableModel M>
std::vector<double> next_token_logprobs(M& m, std::span<const std::vector<std::int32_t>> prefixes) {
  const int V = m.config().vocab_size;
  if constexpr (requires(const token_batch& tb, std::span<const std::int32_t> at) { m.next_token_logprobs(tb, at); }) {
    // The model computes full next-token distributions itself (one head product per row).
    token_batch b;
    std::vector<std::int32_t> last;
    for (std::size_t r = 0; r < prefixes.size(); ++r) {
      const auto& p = prefixes[r];
      if (p.empty()) throw data_error("prefix " + std::to_string(r), "is empty: nothing predicts the next token");
      for (std::size_t i = 0; i < p.size(); ++i) {
        b.tokens.push_back(p[i]);
        b.positions.push_back(std::int32_t(i));
        b.segment.push_back(0);
      }
      b.row_offsets.push_back(std::int32_t(b.tokens.size()));
      last.push_back(std::int32_t(b.tokens.size()) - 1);
    }
    const std::vector<float> f = m.next_token_logprobs(b, std::span<const std::int32_t>(last));
    return std::vector<double>(f.begin(), f.end());
  }
  token_batch b;
  for (std::size_t r = 0; r < prefixes.size(); ++r) {
    const auto& p = prefixes[r];
    if (p.empty()) throw data_error("prefix " + std::to_string(r), "is empty: nothing predicts the next token");
    const auto start = std::int32_t(b.tokens.size());
    for (std::size_t i = 0; i < p.size(); ++i) {
      b.tokens.push_back(p[i]);
      b.positions.push_back(std::int32_t(i));
      b.segment.push_back(0);
    }
    b.row_offsets.push_back(std::int32_t(b.tokens.size()));
    const auto last = start + std::int32_t(p.size()) - 1;
    for (int v = 0; v < V; ++v) {
      b.predict_from.push_back(last);
      b.predict_token.push_back(v);
      b.predict_sequence.push_back(std::int32_t(r) * V + v);
    }
  }
  b.sequences = std::int32_t(prefixes.size()) * V;
  sequence_logps out;
  m.forward(b, out, {.keep_activations = false});
  return std::move(out.logp);
}

namespace detail {
// Index drawn from exp(logp / τ) (normalized), or the argmax for τ ≤ 0.
inline int draw_token(std::span<const double> logp, double temperature, std::mt19937_64& rng) {
  const auto best = std::max_element(logp.begin(), logp.end());
  if (temperature <= 0.0) return int(best - logp.begin());
  const double top = *best;
  std::vector<double> w(logp.size());
  double total = 0.0;
  for (std::size_t v = 0; v < logp.size(); ++v) total += (w[v] = std::exp((logp[v] - top) / temperature));
  const double u = uniform01(rng) * total;
  double acc = 0.0;
  int last_positive = int(best - logp.begin());
  for (std::size_t v = 0; v < w.size(); ++v) {
    if (w[v] <= 0.0) continue;
    acc += w[v];
    last_positive = int(v);
    if (u < acc) return int(v);
  }
  return last_positive;  // u rounded up to the total
}
} // namespace detail

// Samples one continuation per prompt (see the top of this file). Prompts hold token ids, each at
// least one token long (e.g. a BOS token) and shorter than max_positions.
template <SamplableModel M>
std::vector<sample> generate(M& m, const std::vector<std::vector<std::int32_t>>& prompts, std::mt19937_64& rng,
                             const sampling_options& opt = {}) {
  opt.validate();
  const int V = m.config().vocab_size, P = m.config().max_positions;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) throw data_error("prompt " + std::to_string(i), "is empty: start it with a BOS token");
    if (int(prompts[i].size()) >= P)
      throw data_error("prompt " + std::to_string(i), std::to_string(prompts[i].size()) +
                                                          " tokens leave no position for a continuation (max_positions " +
                                                          std::to_string(P) + ")");
  }
  std::vector<std::mt19937_64> engines;
  engines.reserve(prompts.size());
  for (std::size_t i = 0; i < prompts.size(); ++i) engines.emplace_back(rng());
  std::vector<sample> out(prompts.size());
  std::vector<std::vector<std::int32_t>> prefixes;
  std::vector<std::size_t> active;
  for (std::size_t first = 0; first < prompts.size(); first += std::size_t(opt.batch_rows)) {
    const std::size_t last = std::min(prompts.size(), first + std::size_t(opt.batch_rows));
    active.clear();
    for (std::size_t i = first; i < last; ++i) active.push_back(i);
    auto room = [&](std::size_t i) {
      const int limit = std::min(opt.max_new_tokens, P - int(prompts[i].size()));
      return !out[i].stopped && int(out[i].tokens.size()) < limit;
    };
    std::erase_if(active, [&](std::size_t i) { return !room(i); });
    while (!active.empty()) {
      prefixes.clear();
      for (std::size_t i : active) {
        prefixes.push_back(prompts[i]);
        prefixes.back().insert(prefixes.back().end(), out[i].tokens.begin(), out[i].tokens.end());
      }
      const std::vector<double> lp = next_token_logprobs(m, std::span<const std::vector<std::int32_t>>(prefixes));
      for (std::size_t r = 0; r < active.size(); ++r) {
        const std::size_t i = active[r];
        const std::span<const double> row(lp.data() + r * std::size_t(V), std::size_t(V));
        const int tok = detail::draw_token(row, opt.temperature, engines[i]);
        out[i].tokens.push_back(std::int32_t(tok));
        out[i].logp += row[std::size_t(tok)];
        if (tok == opt.eos_id) out[i].stopped = true;
      }
      std::erase_if(active, [&](std::size_t i) { return !room(i); });
    }
  }
  return out;
}

} // namespace prefopt::models
