// prefopt/loop/online_samplers.hpp — the policies online DPO samples from (loop/online_dpo.hpp).
//
//   log_linear_sampler<B>     exact draws from π_θ(· | x) over the K responses of models::log_linear
//                             (inverse CDF of the current softmax); texts are the indices, for
//                             judges that know the problem (tests, examples).
//   transformer_sampler<M>    text prompts through the tokenizer, two continuations each from
//                             models::generate (KV cache, sampling_options), decoded for a text
//                             judge; pairs packed as models::pack_pairs does for offline DPO.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "prefopt/core/backend.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/data/tokenizer.hpp"
#include "prefopt/models/detail/random.hpp"
#include "prefopt/models/generate.hpp"
#include "prefopt/models/log_linear.hpp"
#include "prefopt/models/token_batch.hpp"
#include "prefopt/train/batch.hpp"

namespace prefopt::loop {

template <Backend B> class log_linear_sampler {
public:
  using prompt_type = std::int32_t;      // x
  using completion_type = std::int32_t;  // y
  using input_type = models::log_linear_input;

  explicit log_linear_sampler(models::log_linear<B>& policy) : policy_(policy) {}

  // One uniform01 draw of rng per completion, in output order (first samples, then second ones).
  std::vector<completion_type> sample(std::span<const prompt_type> prompts, std::mt19937_64& rng) {
    const int k = policy_.responses();
    for (std::size_t i = 0; i < prompts.size(); ++i)
      if (prompts[i] < 0 || prompts[i] >= policy_.prompts())
        throw data_error("log_linear_sampler: prompt " + std::to_string(i),
                         "index " + std::to_string(prompts[i]) + " is outside [0, " + std::to_string(policy_.prompts()) + ")");
    const std::vector<float> logp = policy_.all_logps();
    std::vector<completion_type> out;
    out.reserve(2 * prompts.size());
    for (int pass = 0; pass < 2; ++pass)
      for (const prompt_type x : prompts) {
        const double u = models::detail::uniform01(rng);
        double cdf = 0.0;
        completion_type y = completion_type(k - 1);  // u beyond the float sum of the probabilities
        for (int z = 0; z < k; ++z) {
          cdf += std::exp(double(logp[std::size_t(x) * std::size_t(k) + std::size_t(z)]));
          if (u < cdf) {
            y = completion_type(z);
            break;
          }
        }
        out.push_back(y);
      }
    return out;
  }
  std::string prompt_text(prompt_type x) const { return std::to_string(x); }
  std::string completion_text(completion_type y) const { return std::to_string(y); }
  bool ends_with_eos(completion_type) const { return true; }  // a response is a whole sequence

  train::preference_batch<input_type> make_batch(std::span<const prompt_type> prompts,
                                                 const std::vector<completion_type>& chosen,
                                                 const std::vector<completion_type>& rejected) const {
    const std::size_t n = prompts.size();
    train::preference_batch<input_type> b;
    b.pairs = n;
    b.sequences.prompt.resize(2 * n);
    b.sequences.response.resize(2 * n);
    for (std::size_t i = 0; i < n; ++i) {
      b.sequences.prompt[i] = b.sequences.prompt[n + i] = prompts[i];
      b.sequences.response[i] = chosen.at(i);
      b.sequences.response[n + i] = rejected.at(i);
    }
    return b;
  }

private:
  models::log_linear<B>& policy_;
};

// Prompts are text, tokenized without special tokens unless add_special_tokens; completions are
// generate()'s samples (token ids, and whether they ended with sampling_options::eos_id).
template <models::SamplableModel M> class transformer_sampler {
public:
  using prompt_type = std::string;
  using completion_type = models::sample;
  using input_type = models::token_batch;

  transformer_sampler(M& policy, const data::tokenizer& tok, models::sampling_options opt, bool prefix_sharing = false,
                      bool add_special_tokens = false)
      : policy_(policy), tok_(tok), opt_(std::move(opt)), prefix_sharing_(prefix_sharing), special_(add_special_tokens) {
    opt_.validate();
    if (!opt_.seeds.empty())
      throw config_error("transformer_sampler: field 'seeds'", "online sampling draws its seeds from the step's rng");
    if (opt_.max_new_tokens < 1) throw config_error("transformer_sampler: field 'max_new_tokens'", "must be ≥ 1");
  }

  // The prompts twice (first samples, then second ones), each continuation seeded from rng in
  // that order (models::generate).
  std::vector<completion_type> sample(std::span<const prompt_type> prompts, std::mt19937_64& rng) {
    std::vector<std::vector<std::int32_t>> ids;
    ids.reserve(2 * prompts.size());
    for (int pass = 0; pass < 2; ++pass)
      for (const auto& p : prompts) ids.push_back(encode(p));
    std::vector<completion_type> out = models::generate(policy_, ids, rng, opt_);
    for (std::size_t i = 0; i < out.size(); ++i)
      if (out[i].tokens.empty())
        throw data_error("transformer_sampler: prompt " + std::to_string(i % prompts.size()),
                         "no room for a completion (the prompt fills the model's positions)");
    return out;
  }
  std::string prompt_text(const prompt_type& p) const { return p; }
  std::string completion_text(const completion_type& c) const {
    return tok_.decode(std::span<const std::int32_t>(c.tokens), /*skip_special_tokens=*/true);
  }
  bool ends_with_eos(const completion_type& c) const { return c.stopped; }

  train::preference_batch<input_type> make_batch(std::span<const prompt_type> prompts,
                                                 const std::vector<completion_type>& chosen,
                                                 const std::vector<completion_type>& rejected) const {
    std::vector<models::tokenized_pair> pairs;
    pairs.reserve(prompts.size());
    for (std::size_t i = 0; i < prompts.size(); ++i) pairs.push_back({encode(prompts[i]), chosen.at(i).tokens, rejected.at(i).tokens});
    train::preference_batch<input_type> b;
    b.sequences = models::pack_pairs(pairs, prefix_sharing_);
    b.pairs = pairs.size();
    return b;
  }

private:
  std::vector<std::int32_t> encode(const std::string& p) const {
    std::vector<std::int32_t> ids = tok_.encode(p, special_);
    if (ids.empty()) throw data_error("transformer_sampler: prompt '" + p + "'", "has no tokens");
    return ids;
  }

  M& policy_;
  data::tokenizer tok_;
  models::sampling_options opt_;
  bool prefix_sharing_, special_;
};

} // namespace prefopt::loop
