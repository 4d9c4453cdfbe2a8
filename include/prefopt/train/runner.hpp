// prefopt/train/runner.hpp — a whole training run around a trainer: epochs, evaluation, logging,
// checkpoints, early stopping and exact resumption.
//
//   train::runner r(trainer, train_data, &eval_data, options);
//   train::run_summary s = r.run();
// Each epoch's minibatches come from a seeded plan (data/collate.hpp), so a run is reproducible
// and a resumed run replays the same order: resuming from checkpoint-N continues exactly where
// the uninterrupted run would be (weights, optimizer state, schedule, loss state, data position,
// metrics files truncated to step N, the metrics window since the last logged row restored). A
// resumed run never trains past max_steps, and a run that finished stays finished (run() returns
// at once). A fresh run refuses an output folder holding another run's checkpoints unless
// `overwrite` is set. max_consecutive_skipped_steps skipped steps in a row (non-finite loss or
// gradient), an epoch or a run with every step skipped end the run with training_error.
// Metrics use TRL's names (eval ones prefixed eval_) and go to metrics.jsonl / metrics.csv /
// TensorBoard; a progress bar (terminal) or plain lines (logs). docs/training.md, "What prefopt
// guarantees", lists the promises.
//
// Data parallel (a trainer with a communicator of several ranks): the plan is the one a single
// process makes, with batch_size the global micro-batch; each rank takes its contiguous share
// (batch_size / ranks pairs) of every planned batch, so the run is the single process's run. Rank
// 0 alone writes the output folder (metrics, TensorBoard, checkpoints, progress); every rank
// resumes from the same checkpoint. At the start the ranks compare a hash of their data and
// options (comm_error when they differ). Evaluation splits the eval batches over the ranks.
#pragma once

#include <chrono>
#include <cmath>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "prefopt/comm/collectives.hpp"
#include "prefopt/data/collate.hpp"
#include "prefopt/train/checkpoint.hpp"
#include "prefopt/train/fault.hpp"
#include "prefopt/train/metrics_log.hpp"
#include "prefopt/train/progress.hpp"
#include "prefopt/train/run_data.hpp"
#include "prefopt/train/run_guard.hpp"
#include "prefopt/train/runner_options.hpp"
#include "prefopt/train/tensorboard.hpp"
#include "prefopt/train/trainer.hpp"

namespace prefopt::train {

namespace detail {
template <class L> std::vector<double> loss_state(const L& l) {
  if constexpr (requires { l.state(); }) return l.state();
  else return {};
}
template <class L> void set_loss_state(L& l, const std::vector<double>& s) {
  if constexpr (requires { l.set_state(s); }) l.set_state(s);
}
template <class R> auto* synced_model_of(R& r) {
  if constexpr (requires { r.synced_model(); }) return r.synced_model();
  else if constexpr (requires { r.model; r.every; r.alpha; }) return r.model;  // reference::synced
  else return static_cast<void*>(nullptr);
}
} // namespace detail

template <class Trainer, class Dataset = data::tokenized_preferences> class runner {
public:
  runner(Trainer& t, const Dataset& train, const Dataset* eval, runner_options o)
      : t_(t), train_(train), eval_(eval), o_(std::move(o)) {}

  long total_steps() const {
    return o_.max_steps > 0 ? o_.max_steps
                            : long(o_.epochs) * steps_per_epoch(train_.size(), o_.batch_size, o_.gradient_accumulation_steps);
  }

  run_summary run() {
    using clock = std::chrono::steady_clock;
    const auto started = clock::now();
    const bool writer = world().rank() == 0;
    std::ostream& out = writer ? *o_.log : quiet_;
    check_setup();
    const std::optional<fault_kill> fault = fault_kill_from_env();  // tests only (train/fault.hpp)
    if (writer) std::filesystem::create_directories(o_.output_dir);
    run_summary summary;
    checkpoint_state st;
    if (o_.resume) {
      const auto ck = latest_checkpoint(o_.output_dir);
      comm::check_same(world(), ck ? comm::hash_bytes(ck->string().data(), ck->string().size()) : 0,
                       o_.output_dir.string() + ": the checkpoint to resume from");
      if (ck) {
        st = restore(*ck);
        summary.resumed = true;
        out << "prefopt: resumed from " << ck->string() << " (step " << st.global_step << ")\n";
      }
    } else if (writer) {
      detail::prepare_fresh_output(o_.output_dir, o_.overwrite, out);
    }
    world().barrier();  // the output folder is ready before any rank goes on
    saved_step_ = summary.resumed ? st.global_step : -1;
    summary.skipped_steps = st.skipped_steps;
    if (summary.resumed && (st.finished || reached_end(st))) {  // nothing left to train
      out << "prefopt: the run had already finished at step " << st.global_step << "; nothing is trained\n";
      if (!st.finished) st.finished = true, save(st);
      summary.already_finished = true;
      summary.steps = t_.global_step();
      summary.seconds = std::chrono::duration<double>(clock::now() - started).count();
      return summary;
    }
    std::optional<metrics_log> log;  // rank 0's
    std::unique_ptr<tensorboard_writer> tb;
    if (writer) {
      log.emplace(metrics_log::open(o_.output_dir, summary.resumed));
      if (summary.resumed) log->truncate_after(st.global_step);
      if (o_.tensorboard) {
        tb = std::make_unique<tensorboard_writer>(o_.output_dir / "runs");
        if (summary.resumed) tb->add_session_start(st.global_step + 1);
        log->forward_to(tb.get());
      }
    }
    progress bar(out, total_steps(), {.initial_step = st.global_step});
    const auto lengths = lengths_of(train_, o_.prefix_sharing);
    const long total = total_steps();
    const long first_step = st.global_step;
    long skipped_here = 0;
    bool stop = false;
    for (int epoch = st.epoch; !stop && (o_.max_steps > 0 || epoch < o_.epochs); ++epoch) {
      const data::batch_plan plan = data::make_batch_plan(
          lengths, {.batch_size = o_.batch_size, .shuffle = true, .length_bucketing = o_.length_bucketing}, o_.seed,
          std::uint64_t(epoch));
      const std::size_t k = std::size_t(o_.gradient_accumulation_steps);
      // A checkpoint inside an epoch is written after an update, so a resumed epoch has had one.
      bool epoch_updated = epoch == st.epoch && st.next_batch > 0;
      for (std::size_t b0 = epoch == st.epoch ? st.next_batch : 0; b0 < plan.size() && !stop; b0 += k) {
        using batch_t = decltype(batch_of(t_, train_, plan.batches[0], false, 0));
        std::vector<batch_t> micro;
        for (std::size_t b = b0; b < std::min(plan.size(), b0 + k); ++b) {
          const auto [from, to] = share(plan.batches[b].size());
          if (from < to)  // a batch smaller than the rank count leaves some ranks without rows
            micro.push_back(shard_of(t_, train_, plan.batches[b], from, to, o_.prefix_sharing, o_.pad_to_multiple_of));
        }
        const train::step_result r = t_.step(std::span<const batch_t>(micro));
        const long step = t_.global_step();
        st.global_step = step;
        st.epoch = epoch;
        st.next_batch = b0 + k;
        if (r.skipped) {
          ++st.skipped_steps, ++st.consecutive_skipped, ++skipped_here;
          summary.skipped_steps = st.skipped_steps;
          out << "prefopt: step " << step + 1 << " skipped (" << r.skip_reason << "), weights unchanged\n";
          if (o_.max_consecutive_skipped_steps > 0 && st.consecutive_skipped >= o_.max_consecutive_skipped_steps)
            throw training_error(detail::step_where(step + 1, o_.output_dir),
                                 std::to_string(st.consecutive_skipped) + " consecutive steps skipped: " + detail::skip_cause(r));
        } else {
          st.consecutive_skipped = 0;
          epoch_updated = true;
          for (const auto& [key, v] : r.metrics) {
            if (detail::last_value(key)) continue;  // the row takes the step's own value
            // TRL's row: the mean over the window of every value logged (a step stands for as many as its counts say)
            const auto c = r.counts.find(key);
            const double n = c == r.counts.end() ? 1.0 : c->second;
            st.log_window[key] += v * n, st.log_window_counts[key] += n;
          }
          ++st.log_window_steps;
        }
        const double epoch_pos = epoch + double(std::min(plan.size(), b0 + k)) / double(plan.size());
        if (!r.skipped && (step % o_.logging_steps == 0 || step == total)) {
          metric_values row{{"epoch", epoch_pos}};
          auto mean = [&](const std::string& key, double v) {
            const auto c = st.log_window_counts.find(key);
            return v / (c != st.log_window_counts.end() && c->second > 0.0 ? c->second : double(st.log_window_steps));
          };
          for (auto& [key, v] : st.log_window) row.emplace_back(key, mean(key, v));
          for (const auto& [key, v] : r.metrics)
            if (detail::last_value(key)) row.emplace_back(key, v);
          if (st.skipped_steps) row.emplace_back("skipped_steps", double(st.skipped_steps));
          if (log) log->log(step, row);
          summary.last_train = st.log_window;
          for (auto& [key, v] : summary.last_train) v = mean(key, v);
          for (const auto& [key, v] : r.metrics)
            if (detail::last_value(key)) summary.last_train[key] = v;
          st.log_window.clear();
          st.log_window_counts.clear();
          st.log_window_steps = 0;
        }
        bar.update(step, {{"loss", r.metrics.count("loss") ? r.metrics.at("loss") : NAN}});
        const bool end_of_epoch = b0 + k >= plan.size();
        if (end_of_epoch && !epoch_updated)  // a whole epoch without an update: the next would be the same
          throw training_error(detail::step_where(step + 1, o_.output_dir),
                               "every step of epoch " + std::to_string(epoch + 1) + " was skipped: " + detail::skip_cause(r));
        if (eval_ && ((!r.skipped && o_.eval_steps > 0 && step % o_.eval_steps == 0) || (o_.eval_steps == 0 && end_of_epoch))) {
          summary.last_eval = evaluate();
          metric_values row{{"epoch", epoch_pos}};
          for (const auto& [key, v] : summary.last_eval) row.emplace_back(key, v);
          if (log) log->log(step, row);
          bar.message(format_eval(step, summary.last_eval));
          if (early_stop(st, summary.last_eval)) stop = summary.stopped_early = true;
        }
        if (end_of_epoch) st.epoch = epoch + 1, st.next_batch = 0;
        if (o_.max_steps > 0 && step >= o_.max_steps) stop = true;
        if (!r.skipped && o_.save_steps > 0 && step % o_.save_steps == 0) save(st);
        if (!r.skipped) fault_point(fault, world().rank(), step);
      }
      if (!stop && o_.max_steps > 0 && plan.size() == 0) break;
    }
    if (skipped_here > 0 && t_.global_step() == first_step)
      throw training_error(detail::step_where(first_step + 1, o_.output_dir),
                           "every step of the run was skipped (" + std::to_string(skipped_here) + "); no weight was updated");
    st.finished = true;
    save(st);
    bar.finish();
    summary.steps = t_.global_step();
    summary.seconds = std::chrono::duration<double>(clock::now() - started).count();
    return summary;
  }

  // Mean of the per-batch metrics over the eval set, weighted by pairs (examples), prefixed eval_.
  // With several ranks, rank r evaluates the batches b with b % ranks == r and the weighted sums
  // are all-reduced (when there are fewer batches than ranks, every rank evaluates them all).
  std::map<std::string, double> evaluate() {
    std::map<std::string, double> sum;
    double pairs = 0;
    std::vector<std::size_t> idx;
    const auto ranks = std::size_t(world().size()), rank = std::size_t(world().rank());
    const std::size_t batches = (eval_->size() + o_.batch_size - 1) / o_.batch_size;
    const bool split = ranks > 1 && batches >= ranks;
    for (std::size_t i = 0, b = 0; i < eval_->size(); i += o_.batch_size, ++b) {
      if (split && b % ranks != rank) continue;
      idx.clear();
      for (std::size_t j = i; j < std::min(eval_->size(), i + o_.batch_size); ++j) idx.push_back(j);
      const auto m = t_.evaluate_batch(batch_of(t_, *eval_, idx, o_.prefix_sharing, o_.pad_to_multiple_of));
      for (const auto& [key, v] : m) sum["eval_" + key] += v * double(idx.size());
      pairs += double(idx.size());
    }
    if (split) {  // every rank evaluated a batch, so every rank holds the same keys (checked)
      std::string keys;
      std::vector<double> values;
      for (const auto& [key, v] : sum) keys += key + '\n', values.push_back(v);
      comm::check_same(world(), comm::hash_bytes(keys.data(), keys.size()), "evaluation metric names");
      values.push_back(pairs);
      world().all_reduce_sum(std::span<double>(values));
      std::size_t k = 0;
      for (auto& kv : sum) kv.second = values[k++];
      pairs = values.back();
    }
    for (auto& [key, v] : sum) v /= std::max(pairs, 1.0);
    if constexpr (requires { t_.num_tokens(); }) sum["eval_num_tokens"] = t_.num_tokens();  // TRL: the training count
    return sum;
  }

private:
  // The trainer's communicator (comm::none for a trainer without one).
  auto& world() {
    if constexpr (requires { t_.communicator(); }) return t_.communicator();
    else return none_;
  }

  // Rows [from, to) of a planned batch of n that this rank trains on: contiguous shares in rank order.
  std::pair<std::size_t, std::size_t> share(std::size_t n) {
    const auto r = std::size_t(world().rank()), R = std::size_t(world().size());
    const std::size_t base = n / R, extra = n % R;
    const std::size_t from = r * base + std::min(r, extra);
    return {from, from + base + (r < extra ? 1 : 0)};
  }

  // Before the first step: the batch splits over the ranks, and every rank has the same data and options.
  void check_setup() {
    const int ranks = world().size();
    if (ranks == 1) return;
    if (o_.batch_size % std::size_t(ranks) != 0)
      throw config_error("training: field 'batch_size'",
                         "the global batch of " + std::to_string(o_.batch_size) + " pairs does not split over " +
                             std::to_string(ranks) + " ranks: make it a multiple of the rank count (each rank takes batch_size / ranks)");
    std::vector<std::uint64_t> facts{o_.batch_size, std::uint64_t(o_.gradient_accumulation_steps), o_.seed,
                                     std::uint64_t(o_.epochs), std::uint64_t(o_.max_steps), o_.prefix_sharing,
                                     o_.length_bucketing, std::uint64_t(o_.pad_to_multiple_of), train_.size()};
    for (const auto len : lengths_of(train_, o_.prefix_sharing)) facts.push_back(len);
    comm::check_same(world(), comm::hash_values(std::span<const std::uint64_t>(facts)), "training data and batch options");
  }

  bool early_stop(checkpoint_state& st, const std::map<std::string, double>& eval) {
    if (!o_.early_stopping_metric) return false;
    const auto it = eval.find(*o_.early_stopping_metric);
    if (it == eval.end())
      throw config_error("training: field 'early_stopping_metric'",
                         "'" + *o_.early_stopping_metric + "' is not among the evaluation metrics (e.g. eval_loss)");
    const double v = it->second;
    const bool better = !st.best_metric || (o_.greater_is_better ? v > *st.best_metric : v < *st.best_metric);
    if (better) {
      st.best_metric = v;
      st.evals_without_improvement = 0;
      return false;
    }
    return ++st.evals_without_improvement >= o_.early_stopping_patience;
  }

  static std::string format_eval(long step, const std::map<std::string, double>& m) {
    std::string s = "eval at step " + std::to_string(step) + ":";
    for (const char* key : {"eval_loss", "eval_rewards/accuracies", "eval_rewards/margins"})
      if (m.count(key)) s += " " + std::string(key) + "=" + std::to_string(m.at(key));
    return s;
  }

  // Whether a resumed run has nothing left to train.
  bool reached_end(const checkpoint_state& st) const {
    return o_.max_steps > 0 ? st.global_step >= o_.max_steps : st.epoch >= o_.epochs;
  }

  // Writes checkpoint-<step>, or, when it was already written at this step (no update since, so
  // the weights, optimizer and loss state are the same), replaces only its trainer state.
  void save(checkpoint_state& st) {
    zero_state full = gather_zero_state();  // ZeRO-1: a collective, on every rank
    if constexpr (requires { t_.num_tokens(); }) st.extra["num_tokens"] = t_.num_tokens();
    if (world().rank() != 0) {  // rank 0 writes every file; the others only note the step
      saved_step_ = st.global_step;
      return;
    }
    if (st.global_step == saved_step_ && std::filesystem::exists(checkpoint_dir(o_.output_dir, st.global_step) / "trainer_state.json")) {
      update_checkpoint_state(checkpoint_dir(o_.output_dir, st.global_step), st);
      return;
    }
    auto& policy = t_.policy();
    st.optimizer_steps = t_.optimizer_steps();
    st.loss_state = detail::loss_state(t_.loss());
    write_checkpoint(
        o_.output_dir, st.global_step, st,
        [&](const std::filesystem::path& dir) {
          save_model_state(policy, dir, o_.saved_dtype);
          if (full.views.empty()) save_buffers(policy.backend(), t_.optimizer_state().buffers(), dir / "optimizer.safetensors");
          else save_buffers(policy.backend(), full.views, dir / "optimizer.safetensors");
          auto* ref = detail::synced_model_of(t_.reference());
          if constexpr (!std::is_same_v<decltype(ref), void*>)
            if (ref) models::save_pretrained(*ref, dir / "reference");
        },
        o_.save_total_limit);
    saved_step_ = st.global_step;
  }

  // ZeRO-1's optimizer state as a checkpoint holds it: whole buffers on the host (views empty
  // without ZeRO-1).
  struct zero_state {
    std::vector<std::vector<float>> host;
    std::vector<optim::state_view> views;
  };
  zero_state zero_state_buffers() {
    zero_state f;
    if constexpr (requires { t_.zero(); })
      if (t_.zero()) {
        const auto own = t_.optimizer_state().buffers();
        f.host.assign(own.size(), std::vector<float>(t_.policy().parameters().size(), 0.0f));
        for (std::size_t i = 0; i < own.size(); ++i) f.views.push_back({own[i].name, std::span<float>(f.host[i])});
      }
    return f;
  }
  // On rank 0 only: the others send their ranges and hold no copy of the whole.
  zero_state gather_zero_state() {
    zero_state f;
    if constexpr (requires { t_.zero(); })
      if (const auto& z = t_.zero()) {
        const auto own = t_.optimizer_state().buffers();
        const bool root = world().rank() == 0;
        std::vector<float> mine(z->size());
        f.host.reserve(own.size());
        for (std::size_t i = 0; i < own.size(); ++i) {
          t_.policy().backend().download(own[i].data, std::span<float>(mine));
          f.host.emplace_back(root ? t_.policy().parameters().size() : 0);
          world().gather(std::span<const float>(mine), std::span<float>(f.host.back()), z->counts, 0);
          if (root) f.views.push_back({own[i].name, std::span<float>(f.host.back())});
        }
      }
    return f;
  }

  checkpoint_state restore(const std::filesystem::path& dir) {
    checkpoint_state st = read_checkpoint_state(dir);
    auto& policy = t_.policy();
    load_model_state(policy, dir);
    zero_state full = zero_state_buffers();
    if (full.views.empty()) {
      load_buffers(policy.backend(), t_.optimizer_state().buffers(), dir / "optimizer.safetensors");
    } else if constexpr (requires { t_.zero(); }) {  // ZeRO-1: the whole state from the file, this rank's range into its buffers
      struct host_backend {
        void upload(std::span<const float> from, std::span<float> to) const { std::copy(from.begin(), from.end(), to.begin()); }
      } host;
      load_buffers(host, full.views, dir / "optimizer.safetensors");
      const auto& z = *t_.zero();
      auto own = t_.optimizer_state().buffers();
      for (std::size_t i = 0; i < own.size(); ++i)
        policy.backend().upload(std::span<const float>(full.host[i]).subspan(z.lo, z.size()), own[i].data);
    }
    auto* ref = detail::synced_model_of(t_.reference());
    if constexpr (!std::is_same_v<decltype(ref), void*>)
      if (ref) models::load_weights(*ref, dir / "reference");
    t_.set_global_step(st.global_step);
    t_.set_optimizer_steps(st.optimizer_steps);
    if constexpr (requires { t_.set_num_tokens(0.0); })
      if (const auto n = st.extra.find("num_tokens"); n != st.extra.end() && n->is_number()) t_.set_num_tokens(n->get<double>());
    detail::set_loss_state(t_.loss(), st.loss_state);
    return st;
  }

  Trainer& t_;
  const Dataset& train_;
  const Dataset* eval_;
  runner_options o_;
  comm::none none_;
  std::ostream quiet_{nullptr};  // where ranks other than 0 log: nowhere
  long saved_step_ = -1;  // the step of the checkpoint this run wrote (or resumed from) last
};

} // namespace prefopt::train
