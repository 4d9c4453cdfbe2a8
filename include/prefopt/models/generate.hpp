// prefopt/models/generate.hpp — sampling from a causal LM: batched, seeded, with a KV cache.
//
//   std::mt19937_64 rng(seed);
//   auto out = models::generate(model, prompts, rng, {.temperature = 0.7, .max_new_tokens = 64, .eos_id = eos,
//                                                     .top_p = 0.9});
//   out[i].tokens   // prompt i's continuation (ending with eos when it stopped there)
//   out[i].finish   // finish_reason::eos, stop or length
//
// Each step turns the model's next-token logits z_t (given prompt + y_<t) into y_t as
// transformers' generate does (models/sampling.hpp): repetition penalty over prompt + y_<t, then,
// when sampling (temperature > 0), temperature, top-k, top-p and min-p, and a draw from
// softmax; temperature ≤ 0 is greedy (argmax of the penalized logits, the lowest id on ties;
// transformers' do_sample=False). A continuation ends when it draws eos_id (kept as its last
// token; finish eos), when its tokens end with one of stop_sequences or the stop callback says so
// (kept; finish stop), after max_new_tokens tokens, or when prompt + continuation fill the
// model's max_positions (finish length).
//
// Transformers (models with cached_logits) decode with a KV cache (models/kv_cache.hpp): the
// prompts of batch_rows at a time are prefilled in one packed step, then each step runs one new
// token per live sequence through every layer against its cached keys and values; sequences that
// finished drop out of the steps. use_cache = false empties the cache before every step and runs
// each whole prefix again (the same logits, at the cost of no cache: for comparisons). Any other
// model that reads a token_batch is sampled by recomputing every prefix through its ordinary
// forward pass (O(V²) per step; log_linear, small test models); its next-token log-probs serve as
// the logits (the same distribution; only the repetition penalty, not shift-invariant, differs).
//
// Randomness: prompt i gets its own std::mt19937_64, seeded by seeds[i] when seeds are given, else
// by the i-th output of `rng` (drawn for every prompt, in order, before decoding); its draws are
// uniform01 of that engine (detail/random.hpp). A seed therefore gives the same samples whatever
// batch_rows is (up to float differences in the logits between batch compositions), and on every
// standard library.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <functional>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/models/concepts.hpp"
#include "prefopt/models/detail/random.hpp"
#include "prefopt/models/kv_cache.hpp"
#include "prefopt/models/sampling.hpp"
#include "prefopt/models/token_batch.hpp"

namespace prefopt::models {

struct sampling_options {
  double temperature = 1.0;   // τ; ≤ 0: greedy
  int max_new_tokens = 32;    // per continuation (also capped by max_positions − prompt length)
  std::int32_t eos_id = -1;   // < 0: no end token
  int batch_rows = 64;        // prompts decoded together
  int top_k = 0;              // ≤ 0: off
  double top_p = 1.0;         // 1: off
  double min_p = 0.0;         // 0: off
  double repetition_penalty = 1.0;  // 1: off
  std::vector<std::vector<std::int32_t>> stop_sequences{};  // token suffixes that end a continuation
  // Called after each new token with (prompt index, continuation so far); true ends it (finish
  // stop). The command line decodes the continuation and looks for its stop strings here.
  std::function<bool(std::size_t, const std::vector<std::int32_t>&)> stop{};
  std::vector<std::uint64_t> seeds{};  // one per prompt (empty: drawn from the rng argument)
  bool adapters = true;       // LoRA models: false samples the frozen base
  bool use_cache = true;      // transformers: KV cache (false: recompute every prefix each step)

  void validate() const {
    auto bad = [](const char* f, const char* why) { throw config_error(std::string("sampling_options: field '") + f + "'", why); };
    if (!std::isfinite(temperature)) bad("temperature", "must be finite");
    if (max_new_tokens < 0) bad("max_new_tokens", "must be >= 0");
    if (batch_rows <= 0) bad("batch_rows", "must be > 0");
    if (!(top_p > 0.0 && top_p <= 1.0)) bad("top_p", "must lie in (0, 1]");
    if (!(min_p >= 0.0 && min_p <= 1.0)) bad("min_p", "must lie in [0, 1]");
    if (!(repetition_penalty > 0.0) || !std::isfinite(repetition_penalty)) bad("repetition_penalty", "must be > 0 and finite");
    for (const auto& q : stop_sequences)
      if (q.empty()) bad("stop_sequences", "an empty stop sequence would stop every continuation at once");
  }
};

enum class finish_reason { length, eos, stop };
inline const char* name(finish_reason f) {
  return f == finish_reason::eos ? "eos" : f == finish_reason::stop ? "stop" : "length";
}

struct sample {
  std::vector<std::int32_t> tokens{};  // the continuation, prompt excluded
  bool stopped = false;                // it ended by drawing eos_id
  double logp = 0.0;                   // Σ_t log π(y_t | prompt, y_<t) under the model (temperature 1, unprocessed)
  finish_reason finish = finish_reason::length;
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

// The next token from one row of logits z (modified in place), per the top of this file.
inline std::int32_t next_token(std::span<double> z, std::span<const std::int32_t> prompt,
                               std::span<const std::int32_t> so_far, const sampling_options& opt, std::mt19937_64& rng) {
  if (opt.repetition_penalty != 1.0) {
    std::vector<std::int32_t> ids(prompt.begin(), prompt.end());
    ids.insert(ids.end(), so_far.begin(), so_far.end());
    sampling::repetition_penalty(z, ids, opt.repetition_penalty);
  }
  if (opt.temperature <= 0.0) return sampling::argmax(z);
  sampling::temperature(z, opt.temperature);
  sampling::top_k(z, opt.top_k);
  sampling::top_p(z, opt.top_p);
  sampling::min_p(z, opt.min_p);
  return sampling::draw(z, rng);
}

// log softmax(z)[tok] in double.
inline double log_prob_of(std::span<const float> z, std::int32_t tok) {
  double top = -INFINITY, sum = 0.0;
  for (float x : z) top = std::max(top, double(x));
  for (float x : z) sum += std::exp(double(x) - top);
  return double(z[std::size_t(tok)]) - top - std::log(sum);
}

inline bool ends_with(const std::vector<std::int32_t>& s, const std::vector<std::int32_t>& suffix) {
  return s.size() >= suffix.size() && std::equal(suffix.begin(), suffix.end(), s.end() - std::ptrdiff_t(suffix.size()));
}

// Appends token tok to sample x; returns whether the continuation goes on.
inline bool append(sample& x, std::size_t i, std::int32_t tok, const sampling_options& opt, int limit) {
  x.tokens.push_back(tok);
  if (tok == opt.eos_id) {
    x.stopped = true;
    x.finish = finish_reason::eos;
    return false;
  }
  bool stop = false;
  for (const auto& q : opt.stop_sequences) stop = stop || ends_with(x.tokens, q);
  if (!stop && opt.stop) stop = opt.stop(i, x.tokens);
  if (stop) {
    x.finish = finish_reason::stop;
    return false;
  }
  return int(x.tokens.size()) < limit;
}

template <class M>
concept CachedModel = requires(M& m, kv_cache<typename M::backend_type>& c, const cache_step& s, const forward_options& o) {
  { m.cached_logits(c, s, o) } -> std::same_as<std::vector<float>>;
  { m.backend() };
};

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
  if (!opt.seeds.empty() && opt.seeds.size() != prompts.size())
    throw config_error("sampling_options: field 'seeds'", std::to_string(opt.seeds.size()) + " seeds for " +
                                                              std::to_string(prompts.size()) + " prompts");
  std::vector<std::mt19937_64> engines;
  engines.reserve(prompts.size());
  for (std::size_t i = 0; i < prompts.size(); ++i) engines.emplace_back(opt.seeds.empty() ? rng() : opt.seeds[i]);
  std::vector<sample> out(prompts.size());
  auto limit = [&](std::size_t i) { return std::min(opt.max_new_tokens, P - int(prompts[i].size())); };
  std::vector<double> z(static_cast<std::size_t>(V));
  std::vector<std::size_t> active;
  for (std::size_t first = 0; first < prompts.size(); first += std::size_t(opt.batch_rows)) {
    const std::size_t last = std::min(prompts.size(), first + std::size_t(opt.batch_rows));
    active.clear();
    for (std::size_t i = first; i < last; ++i)
      if (limit(i) > 0) active.push_back(i);
    if (active.empty()) continue;
    // One step: next-token rows for `active` → a token each; returns the ones that go on.
    auto advance = [&](auto row_of) {
      std::vector<std::size_t> next;
      for (std::size_t r = 0; r < active.size(); ++r) {
        const std::size_t i = active[r];
        const std::span<const float> row = row_of(r);
        for (std::size_t v = 0; v < z.size(); ++v) z[v] = double(row[v]);
        const std::int32_t tok = detail::next_token(z, prompts[i], out[i].tokens, opt, engines[i]);
        out[i].logp += detail::log_prob_of(row, tok);
        if (detail::append(out[i], i, tok, opt, limit(i))) next.push_back(i);
      }
      active = std::move(next);
    };
    if constexpr (detail::CachedModel<M>) {
      int capacity = 1;
      for (std::size_t i : active) capacity = std::max(capacity, int(prompts[i].size()) + limit(i));
      kv_cache<typename M::backend_type> cache(m.backend(), m.config(), int(last - first), capacity);
      const forward_options fo{.keep_activations = false, .adapters = opt.adapters};
      cache_step step;
      for (std::size_t i : active) step.add(std::int32_t(i - first), prompts[i]);  // prefill
      while (!active.empty()) {
        const std::vector<float> logits = m.cached_logits(cache, step, fo);
        advance([&](std::size_t r) { return std::span<const float>(logits.data() + r * std::size_t(V), std::size_t(V)); });
        step = cache_step{};
        if (!opt.use_cache) cache.reset();  // recompute every prefix: the cost without a cache
        for (std::size_t i : active) {
          std::vector<std::int32_t> feed{out[i].tokens.back()};
          if (!opt.use_cache) {
            feed = prompts[i];
            feed.insert(feed.end(), out[i].tokens.begin(), out[i].tokens.end());
          }
          step.add(std::int32_t(i - first), feed);
        }
      }
      continue;
    }
    std::vector<std::vector<std::int32_t>> prefixes;
    while (!active.empty()) {
      prefixes.clear();
      for (std::size_t i : active) {
        prefixes.push_back(prompts[i]);
        prefixes.back().insert(prefixes.back().end(), out[i].tokens.begin(), out[i].tokens.end());
      }
      const std::vector<double> d = next_token_logprobs(m, std::span<const std::vector<std::int32_t>>(prefixes));
      const std::vector<float> lp(d.begin(), d.end());
      advance([&](std::size_t r) { return std::span<const float>(lp.data() + r * std::size_t(V), std::size_t(V)); });
    }
  }
  return out;
}

} // namespace prefopt::models
