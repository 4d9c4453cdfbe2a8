// prefopt/train/reward_trainer.hpp — Bradley–Terry reward model training, as TRL's RewardTrainer.
//
// For pairs i = 1..N with scores r_c,i (chosen) and r_r,i (rejected) and optional margins m_i:
//   loss = (1/N)·Σ −log σ(r_c,i − r_r,i − m_i)  +  coef·(1/N)·Σ (r_c,i + r_r,i)²
// (the second term only with center_rewards_coefficient; Eisenstein et al., "Helping or Herding?",
// 2023). Gradients, by hand: with z_i = r_c,i − r_r,i − m_i,
//   ∂loss/∂r_c,i = −σ(−z_i)/N + 2·coef·(r_c,i + r_r,i)/N,   ∂loss/∂r_r,i = +σ(−z_i)/N + 2·coef·(r_c,i + r_r,i)/N.
// Metrics, TRL's names: loss, accuracy (mean [r_c > r_r]), margin (mean r_c − r_r), min_reward,
// mean_reward, max_reward (over all 2N scores), num_tokens (tokens seen so far, padding excluded),
// plus grad_norm and learning_rate as every trainer. As TRL's RewardTrainer logs them (each
// forward appends its values to a list, log() takes the list's mean), a step with several
// micro-batches reports the mean over its micro-batches of each one's accuracy, margin and
// min/mean/max_reward; evaluation reports them per eval batch with eval_num_tokens, the training
// count so far (train/runner.hpp).
//
// Gradient accumulation is exact: every term is a mean over pairs, so micro-batch k's gradient is
// scaled by its share of the step's pairs. Two parameter groups (the body, the score head) get one
// global-norm clip and their own optimizer state each.
//
// A whole run (epochs, evaluation, metrics, TensorBoard, checkpoints, resume, early stopping) is
// train::runner's, the one `prefopt train` uses: reward_dataset is the data it plans batches over,
// and the trainer offers what the runner checkpoints — policy() (the reward model's saved state:
// a *ForSequenceClassification checkpoint, or for LoRA the PEFT adapter with the score head),
// optimizer_state() (both groups' buffers, named body.* and score.*), optimizer_steps(), loss()
// (whose state is the token count behind num_tokens) and reference() (none).
#pragma once

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/core/numerics.hpp"
#include "prefopt/data/collate.hpp"
#include "prefopt/models/reward_io.hpp"
#include "prefopt/models/reward_model.hpp"
#include "prefopt/train/finish_step.hpp"
#include "prefopt/train/trainer.hpp"

namespace prefopt::train {

struct bradley_terry {
  std::optional<double> center_rewards_coefficient{};  // TRL's RewardConfig default: None
  void validate() const {
    if (center_rewards_coefficient && !(*center_rewards_coefficient >= 0.0 && std::isfinite(*center_rewards_coefficient)))
      throw config_error("reward: field 'center_rewards_coefficient'", "must be a finite number >= 0");
  }
};

struct reward_loss_result {
  double loss = 0.0;
  std::vector<double> d_chosen{}, d_rejected{};  // ∂loss/∂r per pair
};

// The loss above for one batch; `scale` multiplies loss and gradients (1/N replaced by scale/n).
inline reward_loss_result bradley_terry_loss(const bradley_terry& l, std::span<const double> chosen, std::span<const double> rejected,
                                             std::span<const double> margin = {}, double pairs_in_step = 0.0) {
  const std::size_t n = chosen.size();
  if (rejected.size() != n || (!margin.empty() && margin.size() != n))
    throw shape_error("bradley_terry_loss", "chosen, rejected and margin need one entry per pair");
  reward_loss_result r;
  r.d_chosen.assign(n, 0.0), r.d_rejected.assign(n, 0.0);
  if (n == 0) return r;
  const double N = pairs_in_step > 0.0 ? pairs_in_step : double(n);
  const double coef = l.center_rewards_coefficient.value_or(0.0);
  for (std::size_t i = 0; i < n; ++i) {
    const double z = chosen[i] - rejected[i] - (margin.empty() ? 0.0 : margin[i]);
    const double s = chosen[i] + rejected[i];
    r.loss += -num::log_sigmoid(z) / N;
    const double g = num::sigmoid(-z) / N;
    r.d_chosen[i] = -g, r.d_rejected[i] = g;
    if (l.center_rewards_coefficient) {
      r.loss += coef * s * s / N;
      r.d_chosen[i] += 2.0 * coef * s / N, r.d_rejected[i] += 2.0 * coef * s / N;
    }
  }
  return r;
}

// One micro-batch of pairs: sequences 0..B−1 chosen, B..2B−1 rejected (models::pack_reward_pairs).
struct reward_pair_batch {
  models::reward_batch sequences{};
  std::vector<double> margin{};  // empty, or one per pair
  [[nodiscard]] std::size_t pairs() const { return sequences.sequences() / 2; }
};

// Pairs as train::runner plans them for a reward trainer: the tokenized pairs, their margins
// (empty, or one per pair) and the pad token the reward model reads the last position with.
struct reward_dataset {
  const data::tokenized_preferences* pairs = nullptr;
  std::vector<double> margin{};
  std::optional<std::int32_t> pad_token_id{};
  [[nodiscard]] std::size_t size() const { return pairs ? pairs->size() : 0; }
};

// The runner's hooks for reward_dataset (found by argument-dependent lookup). Batches are planned
// by prompt + the longer completion; prefix sharing and pad_to_multiple_of do not apply (a
// reward model scores prompt + chosen and prompt + rejected as two whole sequences).
inline std::vector<std::size_t> lengths_of(const reward_dataset& d, bool) { return data::row_lengths(*d.pairs, false); }
template <class Trainer>
reward_pair_batch batch_of(const Trainer&, const reward_dataset& d, std::span<const std::size_t> idx, bool, int) {
  std::vector<models::tokenized_pair> pairs;
  reward_pair_batch b;
  for (auto i : idx) {
    pairs.push_back(d.pairs->pairs[i]);
    if (!d.margin.empty()) b.margin.push_back(d.margin[i]);
  }
  b.sequences = models::pack_reward_pairs(pairs, d.pad_token_id);
  return b;
}
template <class Trainer>
reward_pair_batch shard_of(const Trainer& t, const reward_dataset& d, std::span<const std::size_t> idx, std::size_t from,
                           std::size_t to, bool, int pad) {
  return batch_of(t, d, idx.subspan(from, to - from), false, pad);
}

// What a checkpoint (train/checkpoint.hpp, save_model_state / load_model_state) holds of a reward
// model: LoRA, the PEFT adapter with the score head (models::save_reward_adapter); otherwise the
// whole *ForSequenceClassification checkpoint (models::save_reward_model).
template <class RM> struct reward_model_state {
  RM& rm;
  std::string base_model_name_or_path{};  // written into a LoRA checkpoint's adapter_config.json
  auto& backend() { return rm.backend(); }
  void save_state(const std::filesystem::path& dir, io::dtype stored) {
    if constexpr (requires { models::save_reward_adapter(rm, dir); }) models::save_reward_adapter(rm, dir, base_model_name_or_path);
    else models::save_reward_model(rm, dir, stored);
  }
  void load_state(const std::filesystem::path& dir) {
    if constexpr (requires { models::load_reward_adapter(rm, dir); }) {
      models::load_reward_adapter(rm, dir);
    } else {
      const models::checkpoint_reader ck(dir);
      models::detail::load_body(rm.body(), ck);
      const std::size_t C = std::size_t(rm.hidden());
      ck.require("score.weight", {1, C});
      std::vector<float> w(C);
      ck.read_into("score.weight", std::span<float>(w));
      rm.backend().upload(std::span<const float>(w), rm.head_parameters());
    }
  }
};

// The loss with what a checkpoint keeps of it as loss_state: the tokens seen so far (num_tokens).
struct reward_loss_state {
  bradley_terry loss{};
  long long tokens = 0;
  [[nodiscard]] std::vector<double> state() const { return {double(tokens)}; }
  void set_state(const std::vector<double>& s) {
    if (s.size() != 1 || !(s[0] >= 0.0) || s[0] > 9.0e15 || s[0] != std::floor(s[0]))
      throw format_error("trainer_state.json: field 'loss_state'", "a reward run keeps one whole token count there");
    tokens = static_cast<long long>(s[0]);
  }
};

template <class Model, class Optimizer> class reward_trainer {
public:
  using backend_type = typename Model::backend_type;
  reward_trainer(Model& rm, bradley_terry loss, Optimizer opt, training_args args = {})
      : rm_(rm), loss_{loss, 0}, opt_(std::move(opt)), args_(args),
        body_state_(opt_.make_state(rm.backend(), rm.body_parameters().size())),
        head_state_(opt_.make_state(rm.backend(), rm.head_parameters().size())), saved_{rm, {}} {
    loss_.loss.validate();
    opt_.validate();
    args_.validate();
  }

  step_result step(const reward_pair_batch& b) { return step(std::span<const reward_pair_batch>(&b, 1)); }

  step_result step(std::span<const reward_pair_batch> micro) {
    rm_.zero_grad();
    double N = 0.0;
    for (const auto& mb : micro) N += double(mb.pairs());
    std::map<std::string, double> metrics;  // Σ over the micro-batches, then / their number
    double loss = 0.0;
    for (std::size_t m = 0; m < micro.size(); ++m) {
      const auto& mb = micro[m];
      models::forward_options fo;
      if (!args_.disable_dropout) fo.dropout_seed = args_.dropout_seed(step_, m);
      const std::vector<double> s = rm_.forward(mb.sequences, fo);
      const std::size_t B = mb.pairs();
      if (s.size() != 2 * B) throw shape_error("reward_trainer", "a pair batch has an even number of sequences");
      const std::span<const double> c(s.data(), B), r(s.data() + B, B);
      const reward_loss_result lr = bradley_terry_loss(loss_.loss, c, r, mb.margin, N);
      loss += lr.loss;
      for (const auto& [key, v] : score_metrics({c.begin(), c.end()}, {r.begin(), r.end()})) metrics[key] += v;
      for (const auto& t : mb.sequences.tokens.segment) loss_.tokens += t >= 0 ? 1 : 0;
      std::vector<double> d(lr.d_chosen);
      d.insert(d.end(), lr.d_rejected.begin(), lr.d_rejected.end());
      if (std::isfinite(lr.loss)) rm_.backward(d);
    }
    for (auto& kv : metrics) kv.second /= double(micro.size());
    std::map<std::string, double> counts;
    if (micro.size() > 1)
      for (const auto& kv : metrics) counts[kv.first] = double(micro.size());
    metrics["num_tokens"] = double(loss_.tokens);
    step_result out;
    out.metrics = std::move(metrics);
    out.counts = std::move(counts);
    out.metrics["loss"] = loss;
    auto& be = rm_.backend();
    const double norm = std::sqrt(be.sum_squares(rm_.body_gradients()) + be.sum_squares(rm_.head_gradients()));
    detail::finish_step(
        out, rm_, opt_, args_, step_, loss, norm,
        [&](double lr) {
          if (args_.max_grad_norm > 0.0 && args_.max_grad_norm / (norm + 1e-6) < 1.0) {
            const float coef = float(args_.max_grad_norm / (norm + 1e-6));
            be.scale(rm_.body_gradients(), coef), be.scale(rm_.head_gradients(), coef);
          }
          opt_.step(be, body_state_, rm_.body_parameters(), rm_.body_gradients(), rm_.body_slices(), lr);
          opt_.step(be, head_state_, rm_.head_parameters(), rm_.head_gradients(), rm_.head_slices(), lr);
        },
        [] {});
    return out;
  }

  // Loss and score metrics of a batch without touching the weights (evaluation).
  std::map<std::string, double> evaluate_batch(const reward_pair_batch& b) {
    const std::vector<double> s = rm_.forward(b.sequences, {.keep_activations = false});
    const std::size_t B = b.pairs();
    const std::span<const double> c(s.data(), B), r(s.data() + B, B);
    auto m = score_metrics({c.begin(), c.end()}, {r.begin(), r.end()});
    m["loss"] = bradley_terry_loss(loss_.loss, c, r, b.margin).loss;
    return m;
  }

  // accuracy, margin, min/mean/max_reward of scores, TRL's definitions.
  static std::map<std::string, double> score_metrics(const std::vector<double>& rc, const std::vector<double>& rr) {
    std::map<std::string, double> m;
    const std::size_t n = rc.size();
    if (n == 0) return m;
    double acc = 0.0, margin = 0.0, sum = 0.0, lo = rc[0], hi = rc[0];
    for (std::size_t i = 0; i < n; ++i) {
      acc += rc[i] > rr[i] ? 1.0 : 0.0;
      margin += rc[i] - rr[i];
      sum += rc[i] + rr[i];
      lo = std::min({lo, rc[i], rr[i]}), hi = std::max({hi, rc[i], rr[i]});
    }
    m["accuracy"] = acc / double(n);
    m["margin"] = margin / double(n);
    m["mean_reward"] = sum / double(2 * n);
    m["min_reward"] = lo;
    m["max_reward"] = hi;
    return m;
  }

  // Prompt + completion tokens of every chosen and rejected sequence trained on so far (TRL's
  // num_tokens; train::runner logs it as eval_num_tokens too). The checkpoint keeps it as loss_state.
  double num_tokens() const { return double(loss_.tokens); }

  long global_step() const { return step_; }
  void set_global_step(long s) { step_ = s; }
  Model& model() { return rm_; }
  const training_args& args() const { return args_; }

  // What train::runner checkpoints and restores (see the top of this file).
  reward_model_state<Model>& policy() { return saved_; }
  reward_loss_state& loss() { return loss_; }
  struct no_reference {};
  no_reference& reference() { return no_reference_; }
  long optimizer_steps() const {
    if constexpr (requires { body_state_.steps; }) return body_state_.steps;
    else return step_;
  }
  void set_optimizer_steps(long s) {
    if constexpr (requires { body_state_.steps; }) body_state_.steps = s, head_state_.steps = s;
  }
  struct both_groups {
    reward_trainer& t;
    std::vector<optim::state_view> buffers() {
      std::vector<optim::state_view> all;
      for (auto& b : t.body_state_.buffers()) all.push_back({"body." + b.name, b.data});
      for (auto& b : t.head_state_.buffers()) all.push_back({"score." + b.name, b.data});
      return all;
    }
  };
  both_groups optimizer_state() { return {*this}; }

private:
  Model& rm_;
  reward_loss_state loss_;
  Optimizer opt_;
  training_args args_;
  decltype(std::declval<Optimizer&>().make_state(std::declval<backend_type&>(), std::size_t{})) body_state_, head_state_;
  reward_model_state<Model> saved_;
  no_reference no_reference_{};
  long step_ = 0;
};

} // namespace prefopt::train
