// prefopt/train/reward_trainer.hpp — Bradley–Terry reward model training, as TRL's RewardTrainer.
//
// For pairs i = 1..N with scores r_c,i (chosen) and r_r,i (rejected) and optional margins m_i:
//   loss = (1/N)·Σ −log σ(r_c,i − r_r,i − m_i)  +  coef·(1/N)·Σ (r_c,i + r_r,i)²
// (the second term only with center_rewards_coefficient; Eisenstein et al., "Helping or Herding?",
// 2023). Gradients, by hand: with z_i = r_c,i − r_r,i − m_i,
//   ∂loss/∂r_c,i = −σ(−z_i)/N + 2·coef·(r_c,i + r_r,i)/N,   ∂loss/∂r_r,i = +σ(−z_i)/N + 2·coef·(r_c,i + r_r,i)/N.
// Metrics, TRL's names: loss, accuracy (mean [r_c > r_r]), margin (mean r_c − r_r), min_reward,
// mean_reward, max_reward (over all 2N scores), num_tokens (tokens seen so far, padding excluded),
// plus grad_norm and learning_rate as every trainer.
//
// Gradient accumulation is exact: every term is a mean over pairs, so micro-batch k's gradient is
// scaled by its share of the step's pairs. Two parameter groups (the body, the score head) get one
// global-norm clip and their own optimizer state each.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/core/numerics.hpp"
#include "prefopt/models/reward_model.hpp"
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

template <class Model, class Optimizer> class reward_trainer {
public:
  using backend_type = typename Model::backend_type;
  reward_trainer(Model& rm, bradley_terry loss, Optimizer opt, training_args args = {})
      : rm_(rm), loss_(loss), opt_(std::move(opt)), args_(args),
        body_state_(opt_.make_state(rm.backend(), rm.body_parameters().size())),
        head_state_(opt_.make_state(rm.backend(), rm.head_parameters().size())) {
    loss_.validate();
    opt_.validate();
    args_.validate();
  }

  step_result step(const reward_pair_batch& b) { return step(std::span<const reward_pair_batch>(&b, 1)); }

  step_result step(std::span<const reward_pair_batch> micro) {
    rm_.zero_grad();
    double N = 0.0;
    for (const auto& mb : micro) N += double(mb.pairs());
    std::vector<double> rc, rr, all;
    double loss = 0.0;
    for (std::size_t m = 0; m < micro.size(); ++m) {
      const auto& mb = micro[m];
      models::forward_options fo;
      if (!args_.disable_dropout) fo.dropout_seed = args_.dropout_seed(step_, m);
      const std::vector<double> s = rm_.forward(mb.sequences, fo);
      const std::size_t B = mb.pairs();
      if (s.size() != 2 * B) throw shape_error("reward_trainer", "a pair batch has an even number of sequences");
      const std::span<const double> c(s.data(), B), r(s.data() + B, B);
      const reward_loss_result lr = bradley_terry_loss(loss_, c, r, mb.margin, N);
      loss += lr.loss;
      rc.insert(rc.end(), c.begin(), c.end()), rr.insert(rr.end(), r.begin(), r.end());
      for (const auto& t : mb.sequences.tokens.segment) tokens_ += t >= 0 ? 1 : 0;
      std::vector<double> d(lr.d_chosen);
      d.insert(d.end(), lr.d_rejected.begin(), lr.d_rejected.end());
      if (std::isfinite(lr.loss)) rm_.backward(d);
    }
    auto metrics = score_metrics(rc, rr);
    metrics["num_tokens"] = double(tokens_);
    step_result out;
    out.metrics = std::move(metrics);
    out.metrics["loss"] = loss;
    auto& be = rm_.backend();
    const double norm = std::sqrt(be.sum_squares(rm_.body_gradients()) + be.sum_squares(rm_.head_gradients()));
    out.metrics["grad_norm"] = norm;
    if (!std::isfinite(loss) || !std::isfinite(norm)) {
      out.skipped = true;
      out.skip_reason = !std::isfinite(loss) ? "non-finite loss" : "non-finite gradient norm";
      rm_.zero_grad();
    } else {
      if (args_.max_grad_norm > 0.0 && args_.max_grad_norm / (norm + 1e-6) < 1.0) {
        const float coef = float(args_.max_grad_norm / (norm + 1e-6));
        be.scale(rm_.body_gradients(), coef), be.scale(rm_.head_gradients(), coef);
      }
      const double lr = opt_.lr * args_.schedule.factor(step_);
      opt_.step(be, body_state_, rm_.body_parameters(), rm_.body_gradients(), rm_.body_slices(), lr);
      opt_.step(be, head_state_, rm_.head_parameters(), rm_.head_gradients(), rm_.head_slices(), lr);
      ++step_;
    }
    out.metrics["learning_rate"] = opt_.lr * args_.schedule.factor(step_);
    return out;
  }

  // Loss and score metrics of a batch without touching the weights (evaluation).
  std::map<std::string, double> evaluate_batch(const reward_pair_batch& b) {
    const std::vector<double> s = rm_.forward(b.sequences, {.keep_activations = false});
    const std::size_t B = b.pairs();
    const std::span<const double> c(s.data(), B), r(s.data() + B, B);
    auto m = score_metrics({c.begin(), c.end()}, {r.begin(), r.end()});
    m["loss"] = bradley_terry_loss(loss_, c, r, b.margin).loss;
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

  long global_step() const { return step_; }
  void set_global_step(long s) { step_ = s; }
  Model& model() { return rm_; }
  const training_args& args() const { return args_; }

private:
  Model& rm_;
  bradley_terry loss_;
  Optimizer opt_;
  training_args args_;
  decltype(std::declval<Optimizer&>().make_state(std::declval<backend_type&>(), std::size_t{})) body_state_, head_state_;
  long step_ = 0;
  long long tokens_ = 0;
};

} // namespace prefopt::train
