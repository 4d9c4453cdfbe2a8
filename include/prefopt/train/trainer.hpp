// prefopt/train/trainer.hpp — one optimizer step: forward, reference, loss, backward, clip, update.
//
//   using trainer = prefopt::train::trainer<model, prefopt::losses::sigmoid, prefopt::optim::adamw,
//                                           prefopt::train::reference::frozen<model>>;
// The composition is checked at compile time: the model must satisfy models::PolicyModel, the
// loss losses::PreferenceLoss, the optimizer optim::Optimizer for the model's backend, and a loss
// that reads reference log-probs cannot be paired with reference::none.
//
// Gradient accumulation is exact: step() takes k micro-batches and the result equals one step on
// their union. Pointwise losses get the whole batch's context (pair count, chosen tokens) and run
// one pass per micro-batch; losses that couple the batch (aot, ...) first compute every
// micro-batch's log-probs without activations, evaluate the loss on the whole batch, then redo
// each forward with activations and run its backward with its slice of d loss / d log-prob.
// A non-finite loss or gradient norm skips the update (the weights are not touched) and says so.
// Metrics use TRL's names: loss, grad_norm, learning_rate, rewards/*, logps/*, and with
// training_args::token_metrics entropy, logits/*, mean_token_accuracy, num_tokens
// (train/token_metrics.hpp has their definitions).
//
// Data parallel (a Comm other than comm::none, e.g. comm::mpi): each rank steps on its own shard
// of the global batch. The per-pair vectors of every rank are gathered (train/distributed.hpp) so
// the loss, its metrics and d loss / d log-prob are those of the global batch on every rank; each
// rank runs backward for its own pairs only, then the gradient buffer is summed over the ranks
// (comm/collectives.hpp). Elementwise losses keep one pass per micro-batch with the global
// batch_context; a single local micro-batch needs one pass for any loss; otherwise the two-pass
// scheme above runs with the gathered batch in the middle. An element-wise loss on a model with a
// fused head (training_args::fused_head) takes the one-pass path always, and its gradient goes into
// the head's forward pair by pair (forward_fused; evaluate on those pairs with the batch_context). The gradient buckets of the step's last
// backward on this rank start their all-reduce while that backward runs (comm/buckets.hpp: a
// model that announces finished gradients, models::transformer; training_args::overlap_reduce),
// and all are waited for before clipping; with accumulation the earlier micro-batches only
// accumulate. Every weight_check_steps updates the ranks compare a hash of their weights
// (comm_error naming the step when they differ).
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "prefopt/comm/buckets.hpp"
#include "prefopt/comm/collectives.hpp"
#include "prefopt/comm/none.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/losses/evaluate.hpp"
#include "prefopt/models/concepts.hpp"
#include "prefopt/optim/clip.hpp"
#include "prefopt/optim/concepts.hpp"
#include "prefopt/optim/schedule.hpp"
#include "prefopt/train/batch.hpp"
#include "prefopt/train/distributed.hpp"
#include "prefopt/train/token_metrics.hpp"
#include "prefopt/train/zero.hpp"
#include "prefopt/train/reference.hpp"
#include "prefopt/train/step_update.hpp"
#include "prefopt/train/training_args.hpp"

namespace prefopt::train {

template <class Model, class Loss, class Optimizer, class Reference = reference::precomputed, comm::Communicator Comm = comm::none>
class trainer {
  static_assert(models::PolicyModel<Model>,
                "prefopt: the Model does not satisfy prefopt::models::PolicyModel (input_type, forward, backward, "
                "zero_grad, parameters, gradients, parameter_slices, backend) — see docs/models.md");
  static_assert(losses::PreferenceLoss<Loss>,
                "prefopt: the Loss does not satisfy prefopt::losses::PreferenceLoss (name, required_columns, validate, "
                "and pair(), scores() or batch()) — see docs/losses.md");
  using backend_type = typename Model::backend_type;
  static_assert(optim::Optimizer<Optimizer, backend_type>,
                "prefopt: the Optimizer does not satisfy prefopt::optim::Optimizer for the model's backend");
  static_assert(!(reference::is_none_v<Reference> && !losses::reference_free_v<Loss>),
                "prefopt: this loss compares the policy with a reference model, but the trainer was given "
                "reference::none. Use a reference-free loss (simpo, cpo, orpo, sft) or a reference strategy "
                "(reference::frozen, reference::precomputed).");

public:
  using input_type = typename Model::input_type;
  using batch_type = preference_batch<input_type>;

  trainer(Model& policy, Loss loss, Optimizer opt, Reference ref = {}, training_args args = {}, Comm comm = {})
      : policy_(policy), loss_(std::move(loss)), opt_(std::move(opt)), ref_(std::move(ref)), args_(args),
        comm_(std::move(comm)), zero_(detail::zero_shard_of(comm_, policy, args_)),
        state_(opt_.make_state(policy.backend(), zero_ ? zero_->size() : policy.parameters().size())) {
    loss_.validate();
    opt_.validate();
    args_.validate();
    comm::follow_backend(comm_, policy.backend());
    if constexpr (requires { loss_.reference_free(); })
      if (!loss_.reference_free() && !reference_provided())
        throw config_error("reference: field 'strategy'", "the loss compares the policy with a reference model; 'none' "
                                                          "only fits reference-free losses (simpo, cpo, orpo, sft)");
  }

  step_result step(const batch_type& b) { return step(std::span<const batch_type>(&b, 1)); }

  // micro: this rank's micro-batches (with comm::none, the whole batch's).
  step_result step(std::span<const batch_type> micro) {
    policy_.zero_grad();
    detail::gradient_reduce<Comm, Model> reduce(comm_, policy_, !zero_, args_.overlap_reduce, args_.reduce_bucket);
    token_totals tok;
    const bool distributed = comm_.size() > 1;
    pair_batch<double> mine;  // this rank's pairs, micro-batch after micro-batch
    std::vector<std::size_t> offsets;
    std::optional<pair_batch<double>> global;
    std::optional<loss_result<double>> whole;  // the global batch's result, when one evaluation gave it
    std::size_t first = 0;                     // this rank's first pair in the global batch
    auto gather = [&] {
      global = gather_pairs(comm_, mine, first);
      return *global;
    };
    const bool fused = fused_head();
    if (loss_is_elementwise() && tokens_known && (micro.size() > 1 || distributed || fused)) {
      // One pass per micro-batch, each evaluated with the global batch's context.
      const batch_context<double> ctx = global_context(comm_, single_pass_context(micro));
      for (std::size_t m = 0; m < micro.size(); ++m) {
        const bool last = m + 1 == micro.size();
        const pair_batch<double> pb = forward_pairs(micro[m], true, m, &tok, fused ? &ctx : nullptr);
        const loss_result<double> r = evaluate(loss_, pb, ctx);
        append(mine, pb, offsets);
        if (!std::isfinite(r.loss)) continue;
        if (fused) {
          if constexpr (model_fuses) reduce.backward(last, [&] { policy_.backward_fused(); });
        } else {
          backward(reduce, r.d_policy_chosen, r.d_policy_rejected, 0, pb.size(), last);
        }
      }
    } else if (micro.size() == 1) {
      // One pass: the activations of the only local micro-batch stay while the loss is evaluated.
      append(mine, forward_pairs(micro[0], true, 0, &tok), offsets);
      whole = evaluate(loss_, distributed ? gather() : mine);
      if (std::isfinite(whole->loss)) backward(reduce, whole->d_policy_chosen, whole->d_policy_rejected, first, micro[0].pairs, true);
    } else {
      for (std::size_t m = 0; m < micro.size(); ++m) append(mine, forward_pairs(micro[m], false, m, &tok), offsets);
      whole = evaluate(loss_, distributed ? gather() : mine);
      const loss_result<double>& r = *whole;
      if (std::isfinite(r.loss))
        for (std::size_t m = 0; m < micro.size(); ++m) {
          forward_pairs(micro[m], true, m);
          backward(reduce, r.d_policy_chosen, r.d_policy_rejected, first + offsets[m], micro[m].pairs, m + 1 == micro.size());
        }
    }
    if (distributed && !global) gather();
    const pair_batch<double>& full = distributed ? *global : mine;
    if (!whole) whole = evaluate(loss_, full);
    tok.all_reduce(comm_);
    if (tok.has_lengths) num_tokens_ += tok.input_tokens();
    step_result out = finish(full, *whole, reduce, tok);
    if (micro.size() > 1)  // TRL logs each of its metrics per micro-batch: loss, grad_norm and learning_rate are not
      for (const auto& kv : out.metrics)
        if (kv.first != "loss" && kv.first != "grad_norm" && kv.first != "learning_rate" && kv.first != "num_tokens")
          out.counts[kv.first] = double(micro.size());
    return out;
  }

  // Loss and metrics of a batch without touching the weights (evaluation on held-out pairs).
  std::map<std::string, double> evaluate_batch(const batch_type& b) {
    token_totals tok;
    const pair_batch<double> pb = forward_pairs(b, false, std::nullopt, &tok);
    loss_result<double> r = evaluate(loss_, pb);
    r.metrics["loss"] = r.loss;
    tok.put(r.metrics);
    return r.metrics;
  }

  // Prompt + completion tokens of every chosen and rejected sequence trained on so far, all ranks
  // (TRL's num_tokens); a checkpoint keeps it.
  double num_tokens() const { return num_tokens_; }
  void set_num_tokens(double n) { num_tokens_ = n; }

  long global_step() const { return step_; }
  void set_global_step(long s) { step_ = s; }
  Loss& loss() { return loss_; }
  const Optimizer& optimizer() const { return opt_; }
  auto& optimizer_state() { return state_; }
  Model& policy() { return policy_; }
  const training_args& args() const { return args_; }

  // What a checkpoint needs to continue this trainer exactly (besides the model's weights).
  long optimizer_steps() const { return state_.steps; }
  void set_optimizer_steps(long s) { state_.steps = s; }
  Reference& reference() { return ref_; }
  Comm& communicator() { return comm_; }
  const std::optional<train::zero_shard>& zero() const { return zero_; }

private:
  bool reference_provided() const {
    if constexpr (requires { ref_.provides_reference(); }) return ref_.provides_reference();
    else return Reference::provides_reference;
  }
  bool loss_is_elementwise() const {
    if constexpr (losses::ElementwiseLoss<Loss>) return true;
    else if constexpr (requires { loss_.is_elementwise(); }) return loss_.is_elementwise();
    else return false;
  }
  static constexpr bool tokens_known = requires(const input_type& in) { Model::completion_tokens(in); };
  static constexpr bool model_fuses = requires(Model& m, const input_type& in, models::sequence_logps& o,
                                               const models::forward_options& f, const typename Model::head_gradient& g) {
    m.forward_fused(in, o, f, g);
    m.backward_fused();
  };
  bool fused_head() const { return model_fuses && args_.fused_head && loss_is_elementwise() && tokens_known; }

  batch_context<double> single_pass_context(std::span<const batch_type> micro) const {
    batch_context<double> ctx{0.0, 0.0};
    for (const auto& mb : micro) {
      ctx.pairs += double(mb.pairs);
      if constexpr (tokens_known) {
        const std::vector<int> t = Model::completion_tokens(mb.sequences);
        for (std::size_t i = 0; i < mb.pairs; ++i) ctx.chosen_tokens += double(t[i]);
      }
    }
    return ctx;
  }

  // micro: the micro-batch index of a training forward (dropout on); none: evaluation.
  // tok: where the token statistics of this forward go (not computed when null). fused: the
  // batch context of a fused-head forward (the head's backward runs in it; backward_fused follows).
  pair_batch<double> forward_pairs(const batch_type& b, bool keep, std::optional<std::size_t> micro = std::nullopt,
                                   token_totals* tok = nullptr, const batch_context<double>* fused = nullptr) {
    models::forward_options opt;
    opt.keep_activations = keep;
    opt.ld_alpha = args_.ld_alpha;
    const bool weights = (loss_.required_columns() & columns::weight) != 0;
    opt.wpo_weights = weights;
    // The reference first: a LoRA policy computes it with the same weights (adapters off), which
    // must not overwrite the activations the policy's forward keeps for backward.
    std::vector<double> ref_chosen, ref_rejected;
    ref_.compute(b, opt, ref_chosen, ref_rejected);
    models::sequence_logps out;
    if (micro && !args_.disable_dropout) opt.dropout_seed = args_.dropout_seed(step_, *micro);
    opt.token_stats = tok && args_.token_metrics;
    const std::size_t n = b.pairs;
    if constexpr (model_fuses) {
      if (fused) {
        // Each chunk's pairs: the loss on those pairs alone, with the whole batch's context.
        auto grad = [&](const models::sequence_logps& o, std::size_t first, std::size_t count, std::span<double> d) {
          check_sequences(o, n);
          const loss_result<double> r = evaluate(loss_, pairs_of(b, o, ref_chosen, ref_rejected, weights, first, count), *fused);
          for (std::size_t i = 0; i < count; ++i) d[first + i] = r.d_policy_chosen[i], d[n + first + i] = r.d_policy_rejected[i];
        };
        policy_.forward_fused(b.sequences, out, opt, grad);
      }
    }
    if (!fused) policy_.forward(b.sequences, out, opt);
    if (tok) tok->add(out, n, micro ? sequence_lengths_of(b.sequences) : std::vector<int>{});
    check_sequences(out, n);
    return pairs_of(b, out, ref_chosen, ref_rejected, weights, 0, n);
  }

  static void check_sequences(const models::sequence_logps& out, std::size_t n) {
    if (out.size() != 2 * n)
      throw shape_error("trainer: batch", "the model returned " + std::to_string(out.size()) + " sequences for " +
                                              std::to_string(n) + " pairs (expected chosen then rejected)");
  }

  // Pairs [first, first + count) of a forward's output and the batch's columns.
  static pair_batch<double> pairs_of(const batch_type& b, const models::sequence_logps& out, const std::vector<double>& rc,
                                     const std::vector<double>& rr, bool weights, std::size_t first, std::size_t count) {
    const std::size_t n = b.pairs;
    // v holds `whole` values (2n: chosen then rejected, or n), else it goes as it is: validate_batch says why.
    auto part = [&](const auto& v, std::size_t off, std::size_t whole = 0) {
      using V = std::remove_cvref_t<decltype(v)>;
      if (v.size() != (whole ? whole : n)) return V(v);
      return V(v.begin() + std::ptrdiff_t(off + first), v.begin() + std::ptrdiff_t(off + first + count));
    };
    pair_batch<double> pb;
    pb.policy_chosen = part(out.logp, 0, 2 * n);
    pb.policy_rejected = part(out.logp, n, 2 * n);
    pb.chosen_tokens = part(out.tokens, 0, 2 * n);
    pb.rejected_tokens = part(out.tokens, n, 2 * n);
    pb.reference_chosen = part(rc, 0);
    pb.reference_rejected = part(rr, 0);
    pb.preference_prob = part(b.preference_prob, 0);
    pb.score_chosen = part(b.score_chosen, 0);
    pb.score_rejected = part(b.score_rejected, 0);
    pb.cost = part(b.cost, 0);
    if (weights) {
      pb.weight.resize(count);
      for (std::size_t i = 0; i < count; ++i)
        pb.weight[i] = std::exp(out.wpo_aligned[first + i] + out.wpo_aligned[n + first + i]);
    }
    return pb;
  }

  // Backward for pairs [first, first + n) of d loss / d log-prob (chosen, rejected); `last`: the
  // step's last backward on this rank (its gradient buckets may start their all-reduce).
  void backward(detail::gradient_reduce<Comm, Model>& reduce, const std::vector<double>& dc, const std::vector<double>& dr,
                std::size_t first, std::size_t n, bool last) {
    std::vector<double> d(dc.begin() + std::ptrdiff_t(first), dc.begin() + std::ptrdiff_t(first + n));
    d.insert(d.end(), dr.begin() + std::ptrdiff_t(first), dr.begin() + std::ptrdiff_t(first + n));
    reduce.backward(last, [&] { policy_.backward(std::span<const double>(d)); });
  }

  static void append(pair_batch<double>& full, const pair_batch<double>& pb, std::vector<std::size_t>& offsets) {
    offsets.push_back(full.size());
    auto cat = [](auto& a, const auto& b) { a.insert(a.end(), b.begin(), b.end()); };
    cat(full.policy_chosen, pb.policy_chosen);
    cat(full.policy_rejected, pb.policy_rejected);
    cat(full.reference_chosen, pb.reference_chosen);
    cat(full.reference_rejected, pb.reference_rejected);
    cat(full.chosen_tokens, pb.chosen_tokens);
    cat(full.rejected_tokens, pb.rejected_tokens);
    cat(full.preference_prob, pb.preference_prob);
    cat(full.score_chosen, pb.score_chosen);
    cat(full.score_rejected, pb.score_rejected);
    cat(full.cost, pb.cost);
    cat(full.weight, pb.weight);
  }

  step_result finish(const pair_batch<double>& full, const loss_result<double>& r, detail::gradient_reduce<Comm, Model>& reduce,
                     const token_totals& tok) {
    std::map<std::string, double> metrics = r.metrics;
    tok.put(metrics);
    if (tok.has_lengths) metrics["num_tokens"] = num_tokens_;
    return detail::update(comm_, zero_, policy_, opt_, state_, args_, step_, r.loss, std::move(metrics), reduce, [&] {
      if constexpr (losses::StatefulLoss<Loss>) loss_.update(full);
      if constexpr (requires { ref_.after_step(policy_, step_); }) ref_.after_step(policy_, step_);
      detail::check_weights(comm_, policy_, args_, step_);
    });
  }

  Model& policy_;
  Loss loss_;
  Optimizer opt_;
  Reference ref_;
  training_args args_;
  Comm comm_;
  std::optional<train::zero_shard> zero_;  // ZeRO-1: this rank's range of the optimizer state
  typename Optimizer::template state<backend_type> state_;
  long step_ = 0;
  double num_tokens_ = 0.0;
};

} // namespace prefopt::train
