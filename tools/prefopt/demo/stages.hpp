// tools/prefopt/demo/stages.hpp — the demo's phases: supervised fine-tuning, preference sampling,
// DPO-family training, and evaluation (reward and KL to the reference on held-out prompts).
//
// SFT: token-mean NLL of whole sentences given <bos>, L = −Σ log π(x_t | x_<t) / N, with AdamW,
// global-norm clipping at 1 and a cosine schedule with warmup; the model API directly.
// Preferences: two continuations per training prompt sampled from π_ref (temperature 1); the one
// with the higher reward is chosen (deterministically; ties are skipped).
// DPO family: train::trainer with a frozen reference (a clone of π_ref), prefix-shared pairs.
// Reward model: the SFT body with a new score head, Bradley–Terry (train::reward_trainer) on the
// lexicon-labelled pairs of π_ref's samples; a judge of the iterative rounds in place of the lexicon.
// Evaluation: k continuations per held-out prompt sampled from π with the same seed for every
// model (common random numbers); reward = mean lexicon reward; KL(π‖π_ref) estimated as the mean
// over those samples of log π(y|x) − log π_ref(y|x) (sequence log-probs, end token included).
#pragma once

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "demo/corpus.hpp"
#include "prefopt/models/clone.hpp"
#include "prefopt/models/generate.hpp"
#include "prefopt/models/reward_model.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/optim/clip.hpp"
#include "prefopt/optim/schedule.hpp"
#include "prefopt/train/metrics_log.hpp"
#include "prefopt/train/reference.hpp"
#include "prefopt/train/reward_trainer.hpp"
#include "prefopt/train/trainer.hpp"

namespace prefopt::cli::demo {

// Fisher–Yates with uniform01 (std::shuffle's algorithm differs between standard libraries).
template <class T> void shuffle(std::vector<T>& v, std::mt19937_64& rng) {
  for (std::size_t i = v.size(); i > 1; --i) {
    const auto j = std::min(i - 1, std::size_t(models::detail::uniform01(rng) * double(i)));
    std::swap(v[i - 1], v[j]);
  }
}

struct sft_settings {
  int steps = 600, batch = 64, warmup = 30;
  double lr = 3e-3, weight_decay = 0.01;
};

// Token-mean NLL of sentences (everything after <bos>) under m; gradients kept when `train`.
template <class M> double sentence_nll(M& m, const std::vector<const sentence*>& batch, bool train) {
  models::token_batch b;
  tokens text;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    text.assign(batch[i]->prompt.begin() + 1, batch[i]->prompt.end());
    text.insert(text.end(), batch[i]->continuation.begin(), batch[i]->continuation.end());
    b.add_row({batch[i]->prompt.front()}, {&text}, {std::int32_t(i)});
  }
  models::sequence_logps out;
  m.forward(b, out, {.keep_activations = train});
  double sum = 0.0, n = 0.0;
  for (std::size_t i = 0; i < out.size(); ++i) sum += out.logp[i], n += out.tokens[i];
  if (train) {
    const std::vector<double> d(out.size(), -1.0 / n);
    m.backward(std::span<const double>(d));
  }
  return -sum / n;
}

// Supervised fine-tuning; calls report(step, loss) every 50 steps. Returns the last step's loss.
template <class M>
double sft_train(M& m, const std::vector<sentence>& corpus, const sft_settings& s, std::mt19937_64& rng,
                 const std::function<void(int, double)>& report) {
  const optim::adamw opt{.lr = s.lr, .beta2 = 0.99, .weight_decay = s.weight_decay};
  const optim::schedule sched{.kind = optim::schedule_kind::cosine, .total_steps = s.steps, .warmup_steps = s.warmup};
  auto state = opt.make_state(m.backend(), m.parameters().size());
  std::vector<std::size_t> order(corpus.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::size_t at = order.size();
  double loss = 0.0, avg = 0.0;
  std::vector<const sentence*> batch;
  for (int step = 0; step < s.steps; ++step) {
    batch.clear();
    while (int(batch.size()) < s.batch) {
      if (at == order.size()) shuffle(order, rng), at = 0;
      batch.push_back(&corpus[order[at++]]);
    }
    m.zero_grad();
    loss = sentence_nll(m, batch, true);
    avg += loss;
    optim::clip_grad_norm(m.backend(), m.gradients(), 1.0);
    opt.step(m.backend(), state, m.parameters(), m.gradients(), m.parameter_slices(), s.lr * sched.factor(step));
    if ((step + 1) % 50 == 0 || step + 1 == s.steps) {
      report(step + 1, avg / double((step % 50) + 1));
      avg = 0.0;
    }
  }
  return loss;
}

struct pair_set {
  std::vector<models::tokenized_pair> pairs;
  std::vector<double> chosen_reward, rejected_reward;
  std::size_t ties = 0;
};

// A judge of continuations: one score per (prompt, continuation); empty: the lexicon reward.
using judge_fn = std::function<std::vector<double>(const std::vector<tokens>& prompts, const std::vector<tokens>& continuations)>;

// Two samples per prompt from `ref` (π_ref, or an iterative round's policy), the higher score
// (the lexicon reward, or `judge`'s) chosen, ties skipped.
template <class M>
pair_set sample_preferences(M& ref, const vocabulary& v, const std::vector<tokens>& prompts, int max_new, std::uint64_t seed,
                            const judge_fn& judge = {}) {
  std::vector<tokens> twice;
  for (const auto& p : prompts) twice.push_back(p), twice.push_back(p);
  std::mt19937_64 rng(seed);
  const auto s = models::generate(ref, twice, rng, {.temperature = 1.0, .max_new_tokens = max_new, .eos_id = v.eos(), .batch_rows = 128});
  std::vector<double> scores;
  if (judge) {
    std::vector<tokens> conts;
    for (const auto& x : s) conts.push_back(x.tokens);
    scores = judge(twice, conts);
  }
  pair_set out;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    const auto& a = s[2 * i].tokens;
    const auto& b = s[2 * i + 1].tokens;
    const double ra = judge ? scores[2 * i] : reward(v, a), rb = judge ? scores[2 * i + 1] : reward(v, b);
    if (ra == rb) {
      ++out.ties;
      continue;
    }
    const bool a_wins = ra > rb;
    out.pairs.push_back({prompts[i], a_wins ? a : b, a_wins ? b : a});
    out.chosen_reward.push_back(std::max(ra, rb));
    out.rejected_reward.push_back(std::min(ra, rb));
  }
  return out;
}

// One DPO-family configuration.
struct run_spec {
  std::string loss;                 // "dpo" (sigmoid), "ipo", "cdpo" (probabilistic, constant label), "iter" / "iter_rm"
                                    // (iterative DPO judged by the lexicon / by a reward model)
  double beta = 0.1;
  double label_smoothing = 0.0;     // cdpo's ε
  int round = 0;                    // iter: the round (1, 2, ...)
  std::string name() const {
    char b[64];
    if (loss == "iter" || loss == "iter_rm") std::snprintf(b, sizeof b, "%s r%d b=%g", loss == "iter" ? "iter" : "iter-rm", round, beta);
    else std::snprintf(b, sizeof b, "%s b=%g", loss.c_str(), beta);
    return b;
  }
  // The run's folder under runs/ (metrics and TensorBoard events), e.g. "dpo_beta0.3", "iter_round2".
  std::string folder() const {
    char b[64];
    if (loss == "iter" || loss == "iter_rm") std::snprintf(b, sizeof b, "%s_round%d", loss.c_str(), round);
    else std::snprintf(b, sizeof b, "%s_beta%g", loss.c_str(), beta);
    return b;
  }
};

struct dpo_settings {
  int epochs = 3, batch = 32;
  double lr = 7e-4;
};

struct train_summary {
  int steps = 0;
  double final_loss = 0.0, final_accuracy = 0.0, final_margin = 0.0;  // means over the last epoch
};

// log: each step's metrics (TRL's names, plus epoch as a fraction, as Hugging Face logs it).
template <class M, class Loss>
train_summary train_preferences(M& policy, M& ref, Loss loss, const pair_set& data, const dpo_settings& s, std::uint64_t seed,
                                train::metrics_log* log = nullptr) {
  using trainer_t = train::trainer<M, Loss, optim::adamw, train::reference::frozen<M>>;
  const long per_epoch = long((data.pairs.size() + std::size_t(s.batch) - 1) / std::size_t(s.batch));
  train::training_args args;
  args.schedule = {.kind = optim::schedule_kind::linear, .total_steps = per_epoch * s.epochs, .warmup_steps = std::max(1L, per_epoch / 4)};
  trainer_t t(policy, loss, optim::adamw{.lr = s.lr}, train::reference::frozen<M>{&ref}, args);
  std::vector<std::size_t> order(data.pairs.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::mt19937_64 rng(seed);
  train_summary out;
  for (int e = 0; e < s.epochs; ++e) {
    shuffle(order, rng);
    double l = 0.0, acc = 0.0, margin = 0.0;
    int n = 0;
    for (std::size_t at = 0; at < order.size(); at += std::size_t(s.batch)) {
      std::vector<models::tokenized_pair> pairs;
      for (std::size_t i = at; i < std::min(order.size(), at + std::size_t(s.batch)); ++i) pairs.push_back(data.pairs[order[i]]);
      const train::preference_batch<models::token_batch> b{models::pack_pairs(pairs, true), pairs.size()};
      const auto r = t.step(b);
      if (r.skipped) throw error("demo: " + std::string(Loss::name), "training step skipped: " + r.skip_reason);
      if (log) {
        train::metric_values row(r.metrics.begin(), r.metrics.end());
        row.emplace_back("epoch", double(e) + double(n + 1) / double(per_epoch));
        log->log(out.steps + 1, row);
      }
      l += r.metrics.at("loss");
      acc += r.metrics.at("rewards/accuracies");
      margin += r.metrics.at("rewards/margins");
      ++n, ++out.steps;
    }
    out.final_loss = l / n, out.final_accuracy = acc / n, out.final_margin = margin / n;
  }
  return out;
}

// Bradley–Terry training of a reward model on pairs (TRL's RewardTrainer loss), `s.epochs` epochs
// of `s.batch` pairs with AdamW at s.lr and a linear schedule. Returns the mean accuracy
// (score of chosen > score of rejected) over the last epoch.
template <class RM> double train_reward_model(RM& rm, const pair_set& data, const dpo_settings& s, std::uint64_t seed) {
  const long per_epoch = long((data.pairs.size() + std::size_t(s.batch) - 1) / std::size_t(s.batch));
  train::training_args args;
  args.schedule = {.kind = optim::schedule_kind::linear, .total_steps = per_epoch * s.epochs, .warmup_steps = std::max(1L, per_epoch / 4)};
  train::reward_trainer<RM, optim::adamw> t(rm, train::bradley_terry{}, optim::adamw{.lr = s.lr}, args);
  std::vector<std::size_t> order(data.pairs.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::mt19937_64 rng(seed);
  double accuracy = 0.0;
  for (int e = 0; e < s.epochs; ++e) {
    shuffle(order, rng);
    double acc = 0.0;
    int n = 0;
    for (std::size_t at = 0; at < order.size(); at += std::size_t(s.batch)) {
      std::vector<models::tokenized_pair> pairs;
      for (std::size_t i = at; i < std::min(order.size(), at + std::size_t(s.batch)); ++i) pairs.push_back(data.pairs[order[i]]);
      const auto r = t.step(train::reward_pair_batch{models::pack_reward_pairs(pairs, rm.pad_token_id()), {}});
      if (r.skipped) throw error("demo: reward model", "training step skipped: " + r.skip_reason);
      acc += r.metrics.at("accuracy"), ++n;
    }
    accuracy = acc / n;
  }
  return accuracy;
}

// A reward model as a judge_fn: prompt + continuation scored at its last token, 256 at a time.
template <class RM> judge_fn reward_model_judge(RM& rm) {
  return [&rm](const std::vector<tokens>& prompts, const std::vector<tokens>& continuations) {
    std::vector<double> out;
    for (std::size_t at = 0; at < prompts.size(); at += 256) {
      std::vector<tokens> seqs;
      for (std::size_t i = at; i < std::min(prompts.size(), at + 256); ++i) {
        seqs.push_back(prompts[i]);
        seqs.back().insert(seqs.back().end(), continuations[i].begin(), continuations[i].end());
      }
      const auto sc = rm.forward(rm.pack(seqs), {.keep_activations = false});
      out.insert(out.end(), sc.begin(), sc.end());
    }
    return out;
  };
}

struct eval_result {
  double reward = 0.0, reward_se = 0.0, kl = 0.0, kl_se = 0.0, length = 0.0, stop_rate = 0.0;
  std::vector<std::string> examples;  // the first few prompt + continuation texts
};

inline void mean_se(const std::vector<double>& x, double& mean, double& se) {
  double s = 0.0, s2 = 0.0;
  for (double v : x) s += v;
  mean = s / double(x.size());
  for (double v : x) s2 += (v - mean) * (v - mean);
  se = x.size() > 1 ? std::sqrt(s2 / double(x.size() - 1) / double(x.size())) : 0.0;
}

// Sequence log-probs of continuations under m, in batches.
template <class M> std::vector<double> continuation_logps(M& m, const std::vector<tokens>& prompts, const std::vector<models::sample>& s) {
  std::vector<double> out;
  for (std::size_t at = 0; at < s.size(); at += 256) {
    models::token_batch b;
    const std::size_t end = std::min(s.size(), at + 256);
    for (std::size_t i = at; i < end; ++i) b.add_row(prompts[i], {&s[i].tokens}, {std::int32_t(i - at)});
    b.sequences = std::int32_t(end - at);
    models::sequence_logps lp;
    m.forward(b, lp, {.keep_activations = false});
    out.insert(out.end(), lp.logp.begin(), lp.logp.end());
  }
  return out;
}

template <class M>
eval_result evaluate(M& policy, M& ref, const vocabulary& v, const std::vector<tokens>& prompts, int per_prompt, int max_new,
                     std::uint64_t seed) {
  std::vector<tokens> rep;
  for (const auto& p : prompts)
    for (int k = 0; k < per_prompt; ++k) rep.push_back(p);
  std::mt19937_64 rng(seed);
  const auto s = models::generate(policy, rep, rng, {.temperature = 1.0, .max_new_tokens = max_new, .eos_id = v.eos(), .batch_rows = 128});
  const auto lp = continuation_logps(policy, rep, s), lr = continuation_logps(ref, rep, s);
  std::vector<double> r(s.size()), kl(s.size());
  eval_result out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    r[i] = reward(v, s[i].tokens);
    kl[i] = lp[i] - lr[i];
    out.length += double(s[i].tokens.size()) / double(s.size());
    out.stop_rate += (s[i].stopped ? 1.0 : 0.0) / double(s.size());
  }
  mean_se(r, out.reward, out.reward_se);
  mean_se(kl, out.kl, out.kl_se);
  for (std::size_t i = 0; i < s.size() && out.examples.size() < 6; i += std::size_t(per_prompt))
    out.examples.push_back(v.decode(rep[i]) + " | " + v.decode(s[i].tokens));
  return out;
}

} // namespace prefopt::cli::demo
