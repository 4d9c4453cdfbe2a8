// prefopt/train/kto_trainer.hpp — training on unpaired data: KTO and apo_zero_unpaired.
//
//   train::kto_trainer<Model, losses::kto, optim::adamw> t(policy, losses::kto{.beta = 0.1}, optim::adamw{...},
//                                                          {.model = &ref});          // or {.adapters_off = true} for LoRA
// A batch (data::make_unpaired_batch) holds n examples — one prompt + completion each, labelled
// desirable or not — and, for KTO's KL baseline, n mismatched (prompt, completion) rows after them
// (TRL's KL completions). One step: reference log-probs of all rows (a frozen model, or the LoRA
// policy with its adapters off), the policy's forward, evaluate(loss, unpaired_batch) (the KL rows
// are detached, as in the paper and TRL), backward, clipping, the optimizer update. Gradient
// accumulation takes the examples of all micro-batches as one loss, exactly, like trainer<>.
// Metrics: loss, kl, rewards/chosen, rewards/rejected, rewards/margins, logps/*, grad_norm, learning_rate,
// and TRL's KTOTrainer token metrics (train/token_metrics.hpp): entropy, logits/chosen,
// logits/rejected over the examples' completion tokens (desirable ones are "chosen"), the mean over
// the micro-batches as TRL logs them, and num_tokens (the examples' prompt + completion tokens seen
// so far, not the KL rows; a checkpoint keeps it). training_args::token_metrics = false leaves out
// all but num_tokens.
// Data parallel (Comm other than comm::none): as trainer<>, every rank's examples are gathered
// between the two passes, so the loss and the KL baseline are the global batch's on every rank;
// each rank runs backward for its own examples and the gradient is summed over the ranks (its
// buckets started during the last backward, as trainer<> does).
#pragma once

#include <cmath>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "prefopt/losses/kto.hpp"
#include "prefopt/models/concepts.hpp"
#include "prefopt/optim/clip.hpp"
#include "prefopt/optim/concepts.hpp"
#include "prefopt/train/token_metrics.hpp"
#include "prefopt/train/trainer.hpp"

namespace prefopt::train {

// Where an unpaired trainer's reference log-probs come from.
template <class Ref> struct unpaired_reference {
  Ref* model = nullptr;       // a frozen reference model, or
  bool adapters_off = false;  // the (LoRA) policy itself with its adapters switched off
};

template <class Model, class Loss, class Optimizer, class Ref = Model, comm::Communicator Comm = comm::none>
class kto_trainer {
  static_assert(models::PolicyModel<Model>, "prefopt: the Model does not satisfy prefopt::models::PolicyModel");
  static_assert(losses::UnpairedLoss<Loss>,
                "prefopt: kto_trainer needs an unpaired loss (losses::kto, losses::apo_zero_unpaired); paired losses "
                "train with train::trainer");
  using backend_type = typename Model::backend_type;
  static_assert(optim::Optimizer<Optimizer, backend_type>, "prefopt: the Optimizer does not fit the model's backend");

public:
  static constexpr bool needs_kl = Loss::uses_kl;

  kto_trainer(Model& policy, Loss loss, Optimizer opt, unpaired_reference<Ref> ref, training_args args = {}, Comm comm = {})
      : policy_(policy), loss_(std::move(loss)), opt_(std::move(opt)), ref_(ref), args_(args), comm_(std::move(comm)),
        zero_(detail::zero_shard_of(comm_, policy, args_)),
        state_(opt_.make_state(policy.backend(), zero_ ? zero_->size() : policy.parameters().size())) {
    loss_.validate();
    opt_.validate();
    args_.validate();
    comm::follow_backend(comm_, policy.backend());
    if (!ref_.model && !ref_.adapters_off)
      throw config_error("reference", "KTO compares with a reference model: give a frozen model or switch adapters off");
  }

  template <class Batch> step_result step(const Batch& b) { return step(std::span<const Batch>(&b, 1)); }

  // All micro-batches' examples form one loss (the KL baseline over all their KL rows).
  template <class Batch> step_result step(std::span<const Batch> micro) {
    policy_.zero_grad();
    detail::gradient_reduce<Comm, Model> reduce(comm_, policy_, !zero_, args_.overlap_reduce, args_.reduce_bucket);
    unpaired_batch<double> all;
    std::vector<std::size_t> first;
    token_totals tok;
    for (std::size_t m = 0; m < micro.size(); ++m) {  // log-probs of every row, without activations
      first.push_back(all.size());
      append(all, score(micro[m], false, m, &tok), micro[m]);
    }
    std::size_t mine = 0;  // this rank's first example in the global batch
    const unpaired_result<double> r = evaluate(loss_, comm_.size() > 1 ? gather_unpaired(comm_, all, mine) : all);
    if (std::isfinite(r.loss))
      for (std::size_t m = 0; m < micro.size(); ++m) {
        const std::size_t n = micro[m].examples;
        score(micro[m], true, m);  // again, keeping activations (and the same dropout masks)
        std::vector<double> d(Model::input_sequences(micro[m].sequences), 0.0);
        for (std::size_t i = 0; i < n; ++i) d[i] = r.d_policy[mine + first[m] + i];
        reduce.backward(m + 1 == micro.size(), [&] { policy_.backward(std::span<const double>(d)); });
      }
    tok.all_reduce(comm_);
    std::map<std::string, double> metrics = r.metrics, counts;
    tok.put_unpaired(metrics, &counts);
    if (tok.has_lengths) num_tokens_ += tok.input_tokens(), metrics["num_tokens"] = num_tokens_;
    step_result out = detail::update(comm_, zero_, policy_, opt_, state_, args_, step_, r.loss, std::move(metrics), reduce,
                                     [&] { detail::check_weights(comm_, policy_, args_, step_); });
    if (micro.size() > 1) out.counts = std::move(counts);
    return out;
  }

  template <class Batch> std::map<std::string, double> evaluate_batch(const Batch& b) {
    unpaired_batch<double> all;
    token_totals tok;
    append(all, score(b, false, std::nullopt, &tok), b);
    unpaired_result<double> r = evaluate(loss_, all);
    r.metrics["loss"] = r.loss;
    tok.put_unpaired(r.metrics);
    return r.metrics;
  }

  // Prompt + completion tokens of every example trained on so far, all ranks (TRL's num_tokens).
  double num_tokens() const { return num_tokens_; }
  void set_num_tokens(double n) { num_tokens_ = n; }

  long global_step() const { return step_; }
  void set_global_step(long s) { step_ = s; }
  long optimizer_steps() const { return state_.steps; }
  void set_optimizer_steps(long s) { state_.steps = s; }
  Loss& loss() { return loss_; }
  Model& policy() { return policy_; }
  auto& optimizer_state() { return state_; }
  unpaired_reference<Ref>& reference() { return ref_; }
  Comm& communicator() { return comm_; }
  const std::optional<train::zero_shard>& zero() const { return zero_; }

private:
  struct scored {
    std::vector<double> policy, reference;
  };
  // Reference (first: it must not overwrite the policy's activations) and policy log-probs of every row.
  // micro: the micro-batch index of a training forward (dropout on); none: evaluation.
  // tok: where the token statistics of the policy's forward go (not computed when null); the
  // lengths behind num_tokens are counted for a training forward only.
  template <class Batch>
  scored score(const Batch& b, bool keep, std::optional<std::size_t> micro = std::nullopt, token_totals* tok = nullptr) {
    scored s;
    models::forward_options o;
    o.keep_activations = false;
    models::sequence_logps lp;
    if (ref_.model) {
      ref_.model->forward(b.sequences, lp, o);
    } else {
      o.adapters = false;
      policy_.forward(b.sequences, lp, o);
    }
    s.reference = lp.logp;
    models::forward_options p;
    p.keep_activations = keep;
    if (micro && !args_.disable_dropout) p.dropout_seed = args_.dropout_seed(step_, *micro);
    p.token_stats = tok && args_.token_metrics;
    policy_.forward(b.sequences, lp, p);
    s.policy = lp.logp;
    if (tok) {
      const std::size_t n = b.examples;
      const std::vector<int> lengths = micro ? sequence_lengths_of(b.sequences) : std::vector<int>{};
      tok->add_rows(lp, n, [&](std::size_t i) { return b.desirable[i] != 0; }, std::span<const int>(lengths));
    }
    return s;
  }
  template <class Batch> static void append(unpaired_batch<double>& all, const scored& s, const Batch& b) {
    const std::size_t n = b.examples;
    if (s.policy.size() < n || (needs_kl && s.policy.size() < 2 * n))
      throw shape_error("kto_trainer: batch", needs_kl ? "KTO needs the KL rows (make_unpaired_batch with kl_rows)"
                                                       : "fewer sequences than examples");
    for (std::size_t i = 0; i < n; ++i) {
      all.policy.push_back(s.policy[i]);
      all.reference.push_back(s.reference[i]);
      all.desirable.push_back(b.desirable[i]);
      if (needs_kl) {
        all.policy_kl.push_back(s.policy[n + i]);
        all.reference_kl.push_back(s.reference[n + i]);
      }
    }
  }

  Model& policy_;
  Loss loss_;
  Optimizer opt_;
  unpaired_reference<Ref> ref_;
  training_args args_;
  Comm comm_;
  std::optional<train::zero_shard> zero_;  // ZeRO-1: this rank's range of the optimizer state
  typename Optimizer::template state<backend_type> state_;
  long step_ = 0;
  double num_tokens_ = 0.0;
};

} // namespace prefopt::train
