// prefopt/loop/online_dpo.hpp — online DPO: sample, judge, one preference step, every step.
//
// TRL's OnlineDPOTrainer (Guo et al. 2024, "Direct Language Model Alignment from Online AI
// Feedback"). Per step, for a batch of B prompts:
//   1. sample two completions per prompt from the current policy (the sampler; TRL's order: the B
//      first completions, then the B second ones);
//   2. judge each prompt's two completions: a scoring judge scores both (TRL's missing_eos_penalty
//      is subtracted from the score of a completion without the end token) and the first is
//      chosen when its score is ≥ the second's; a pairwise judge answers 0 (first better) or 1;
//      a tie (-1) keeps the first as chosen, as equal scores do (TRL's `rank == 0` test would
//      take the second);
//   3. one trainer step on the B pairs (any loss of the trainer; TRL allows sigmoid and ipo)
//      against the trainer's reference.
// Metrics: the trainer's (loss, grad_norm, learning_rate, rewards/chosen, rewards/rejected,
// rewards/accuracies, rewards/margins, logps/chosen, logps/rejected — all of the log-probs before
// the update, as TRL logs them) and TRL's online ones, over the 2B sampled completions:
//   objective/kl                mean over completions of log π_θ − log π_ref (summed over tokens)
//   objective/entropy           −mean log π_θ
//   objective/non_score_reward  −β·objective/kl
//   objective/scores            mean judge score (scoring judges only)
//   objective/scores_margin     mean score(chosen) − score(rejected) (scoring judges only)
//   objective/rlhf_reward       objective/scores + objective/non_score_reward (scoring judges only)
//   val/contain_eos_token       fraction of completions that ended with the end token
//   beta                        the loss's β
// The online metrics come from the trainer's own (β·(log π_θ − log π_ref) per completion is what
// rewards/* average), so no second forward pass is spent on them. Unlike TRL, the KL sums only the
// completion's tokens (TRL's sum also runs over the padding after an early end token).
//
// The driver is generic over the policy through a sampler (OnlineSampler below;
// loop/online_samplers.hpp has the log-linear policy's exact sampler and the transformers'
// generate()-based one) and over the judge (loop/judge.hpp).
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/losses/concepts.hpp"
#include "prefopt/loop/judge.hpp"
#include "prefopt/train/batch.hpp"
#include "prefopt/train/trainer.hpp"

namespace prefopt::loop {

// What online DPO needs from a policy: two samples per prompt, their text for the judge, whether
// each ended with the end token, and the trainer's batch of the judged pairs.
template <class S>
concept OnlineSampler = requires(S& s, std::span<const typename S::prompt_type> prompts, std::mt19937_64& rng,
                                 const typename S::completion_type& c,
                                 const std::vector<typename S::completion_type>& cs) {
  // 2B completions: the first sample of every prompt, then the second of every prompt.
  { s.sample(prompts, rng) } -> std::same_as<std::vector<typename S::completion_type>>;
  { s.prompt_text(prompts[0]) } -> std::convertible_to<std::string>;
  { s.completion_text(c) } -> std::convertible_to<std::string>;
  { s.ends_with_eos(c) } -> std::convertible_to<bool>;
  // The preference batch of pairs (prompts[i], chosen[i], rejected[i]).
  { s.make_batch(prompts, cs, cs) } -> std::same_as<train::preference_batch<typename S::input_type>>;
};

struct online_dpo_args {
  // TRL's missing_eos_penalty: subtracted from a scoring judge's score of a completion that did
  // not end with the end token; 0 (TRL's None) leaves the scores as they are.
  double missing_eos_penalty = 0.0;
  void validate() const {
    if (!(missing_eos_penalty >= 0.0) || !std::isfinite(missing_eos_penalty))
      throw config_error("online_dpo_args: field 'missing_eos_penalty'", "must be finite and ≥ 0");
  }
};

template <class Completion> struct online_step_result {
  train::step_result step;                    // the trainer's result, online metrics added
  std::vector<Completion> chosen, rejected;   // the judged pairs, one per prompt
  std::vector<double> score_chosen, score_rejected;  // scoring judges: the scores (after the eos penalty)
};

template <class Trainer, OnlineSampler Sampler, class Judge>
  requires(scoring_judge<Judge> || pairwise_judge<Judge>)
class online_dpo {
public:
  using prompt_type = typename Sampler::prompt_type;
  using completion_type = typename Sampler::completion_type;

  online_dpo(Trainer& trainer, Sampler& sampler, Judge& judge, online_dpo_args args = {})
      : trainer_(trainer), sampler_(sampler), judge_(judge), args_(args) {
    args_.validate();
    static_assert(!losses::reference_free_v<std::remove_cvref_t<decltype(trainer.loss())>>,
                  "prefopt: online DPO compares the policy with a reference; a reference-free loss has none");
    if (!(beta() > 0.0)) throw config_error("online DPO: loss", "β must be > 0");
  }

  double beta() const { return losses::reward_beta(trainer_.loss()); }

  online_step_result<completion_type> step(std::span<const prompt_type> prompts, std::mt19937_64& rng) {
    const std::size_t n = prompts.size();
    if (n == 0) throw data_error("online DPO: prompts", "the batch has no prompts");
    std::vector<completion_type> samples = sampler_.sample(prompts, rng);
    if (samples.size() != 2 * n)
      throw shape_error("online DPO: sampler", "returned " + std::to_string(samples.size()) + " completions for " +
                                                   std::to_string(n) + " prompts (expected two per prompt)");
    std::vector<judge_request> requests(n);
    double eos = 0.0;
    for (const auto& c : samples) eos += sampler_.ends_with_eos(c) ? 1.0 : 0.0;
    for (std::size_t i = 0; i < n; ++i)
      requests[i] = {std::string(sampler_.prompt_text(prompts[i])),
                     {std::string(sampler_.completion_text(samples[i])), std::string(sampler_.completion_text(samples[n + i]))}};

    online_step_result<completion_type> out;
    std::vector<bool> first(n);
    std::vector<double> first_score, second_score;
    if constexpr (scoring_judge<Judge>) {
      const auto scores = judge_.score(std::span<const judge_request>(requests));
      check_scores(std::string(judge_.name()), requests, scores);
      first_score.resize(n);
      second_score.resize(n);
      for (std::size_t i = 0; i < n; ++i) {
        first_score[i] = scores[i][0] - (sampler_.ends_with_eos(samples[i]) ? 0.0 : args_.missing_eos_penalty);
        second_score[i] = scores[i][1] - (sampler_.ends_with_eos(samples[n + i]) ? 0.0 : args_.missing_eos_penalty);
        first[i] = first_score[i] >= second_score[i];
      }
    } else {
      const std::vector<int> ranks = judge_.compare(std::span<const judge_request>(requests));
      const std::string name(judge_.name());
      if (ranks.size() != n)
        throw judge_error("judge '" + name + "'", std::to_string(ranks.size()) + " answers for " + std::to_string(n) + " requests");
      for (std::size_t i = 0; i < n; ++i) {
        if (ranks[i] < -1 || ranks[i] > 1)
          throw judge_error("judge '" + name + "'", "request " + std::to_string(i) + ": answer " + std::to_string(ranks[i]) +
                                                        " is not 0, 1 or -1 (tie)");
        first[i] = ranks[i] != 1;
      }
    }
    for (std::size_t i = 0; i < n; ++i) {
      out.chosen.push_back(samples[first[i] ? i : n + i]);
      out.rejected.push_back(samples[first[i] ? n + i : i]);
      if (!first_score.empty()) {
        out.score_chosen.push_back(first[i] ? first_score[i] : second_score[i]);
        out.score_rejected.push_back(first[i] ? second_score[i] : first_score[i]);
      }
    }
    const train::preference_batch batch = sampler_.make_batch(prompts, out.chosen, out.rejected);
    out.step = trainer_.step(batch);
    add_online_metrics(out, eos / double(2 * n));
    return out;
  }

  Trainer& trainer() { return trainer_; }

private:
  void add_online_metrics(online_step_result<completion_type>& r, double eos_fraction) const {
    auto& m = r.step.metrics;
    const double b = beta();
    // rewards/* average β·(log π_θ − log π_ref) over the chosen and over the rejected completions.
    const double kl = (m.at("rewards/chosen") + m.at("rewards/rejected")) / (2.0 * b);
    m["objective/kl"] = kl;
    m["objective/entropy"] = -(m.at("logps/chosen") + m.at("logps/rejected")) / 2.0;
    m["objective/non_score_reward"] = -b * kl;
    m["val/contain_eos_token"] = eos_fraction;
    m["beta"] = b;
    if (!r.score_chosen.empty()) {
      double sum = 0.0, margin = 0.0;
      for (std::size_t i = 0; i < r.score_chosen.size(); ++i) {
        sum += r.score_chosen[i] + r.score_rejected[i];
        margin += r.score_chosen[i] - r.score_rejected[i];
      }
      const double n = double(r.score_chosen.size());
      m["objective/scores"] = sum / (2.0 * n);
      m["objective/scores_margin"] = margin / n;
      m["objective/rlhf_reward"] = sum / (2.0 * n) - b * kl;
    }
  }

  Trainer& trainer_;
  Sampler& sampler_;
  Judge& judge_;
  online_dpo_args args_;
};

} // namespace prefopt::loop
