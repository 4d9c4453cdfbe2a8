// tools/prefopt/iterate/online.hpp — `prefopt iterate` with loop.mode "online": online DPO (TRL's
// OnlineDPOTrainer) through loop::online_dpo over loop::transformer_sampler. Each of
// loop.online_steps steps takes the next training.batch_size prompts (passes over the prompt file,
// each in an order seeded by (training.seed, pass)), samples two completions of each from the
// current policy with loop.generation, has the configured judge pick the chosen one (a scoring
// judge scores both, pairwise_command compares them) and runs one DPO step against the initial
// model (with LoRA: the base with the adapters off). Metrics (TRL's names) go to
// <output.dir>/metrics.jsonl and metrics.csv, the model to <output.dir>/final, as prefopt train
// writes them. An online run does not checkpoint or resume (cmd_iterate.hpp refuses
// training.resume).
#pragma once

#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "prefopt/loop/online_dpo.hpp"
#include "prefopt/loop/online_samplers.hpp"
#include "prefopt/train/metrics_log.hpp"
#include "prefopt/train/tensorboard.hpp"
#include "stages.hpp"

namespace prefopt::cli::iterate {

// The configured scoring judge (command, lexicon, reward_model) through iterate::judge: one call
// per step (a command is started once per step; a reward model is loaded once per step, on B).
template <class B> class configured_judge {
public:
  configured_judge(const B& backend, const loop_judge& j, const train::run_config& cfg) : backend_(backend), j_(j), cfg_(cfg) {}
  std::vector<std::vector<double>> score(std::span<const loop::judge_request> batch) {
    prompt_set p;
    std::vector<sampled> s(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
      p.lines.push_back(i + 1), p.text.push_back(batch[i].prompt), p.ids.emplace_back();
      s[i].text = batch[i].completions;
    }
    return judge(backend_, j_, cfg_, p, s);
  }
  std::string name() const {
    if (j_.type == "lexicon") return "lexicon " + j_.lexicon.value_or("");
    if (j_.type == "reward_model") return "reward model " + j_.model.value_or("");
    return loop::detail::command_name({.argv = j_.command});
  }

private:
  B backend_;
  loop_judge j_;
  train::run_config cfg_;
};

// Pass `pass` over n prompts: a permutation by Fisher–Yates over mix_seed draws, written out so the
// order is the same with every standard library (std::shuffle's is implementation-defined).
inline std::vector<std::size_t> online_order(std::size_t n, std::uint64_t seed, std::uint64_t pass) {
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  const std::uint64_t s = mix_seed(seed, pass);
  for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[mix_seed(s, std::uint64_t(i)) % i]);
  return order;
}

template <class M, class Judge>
void online_steps(M& policy, const train::run_config& cfg, const loop_settings& L, const text_pipeline& tp, const prompt_set& prompts,
                  bool special, Judge& judge) {
  namespace fs = std::filesystem;
  using base_model = models::base_model_t<M>;
  const fs::path root(cfg.output.dir);
  losses::any_loss loss(cfg.loss);
  if (loss.reference_free())
    throw config_error("config: field 'loss.type'", "online DPO compares the policy with a reference; a reference-free loss has none");
  const bool lora = !policy.adapters().empty();
  std::string strategy = cfg.reference.strategy;
  if (strategy == "auto") strategy = lora ? "adapter_disabled" : "frozen";
  using ref_type = train::reference::any<M, base_model>;
  std::unique_ptr<base_model> ref_model;
  ref_type ref;
  if (strategy == "frozen") {
    ref_model = std::make_unique<base_model>(policy.backend(), policy.config());
    models::load_weights(*ref_model, cfg.model);
    ref = ref_type(train::reference::frozen<base_model>{ref_model.get()});
  } else if (strategy == "adapter_disabled" && lora) {
    ref = ref_type(train::reference::adapter_disabled<M>{&policy});
  } else {
    throw config_error("config: field 'reference.strategy'", "'" + strategy + "' with loop.mode online: the reference is the initial model "
                                                                "(frozen; with LoRA, adapter_disabled)");
  }
  train::training_args args;
  args.max_grad_norm = cfg.optimizer.max_grad_norm;
  args.seed = std::uint64_t(cfg.training.seed);
  args.disable_dropout = cfg.training.disable_dropout;
  args.fused_head = cfg.training.fused_head;
  args.ld_alpha = cfg.loss.ld_alpha;
  args.schedule = make_schedule(cfg.optimizer, L.online_steps);
  comm::any world = comm::none{};
  using trainer_type = train::trainer<M, losses::any_loss, optim::any_optimizer, ref_type, comm::any>;
  trainer_type t(policy, loss, make_optimizer(cfg.optimizer), ref, args, world);

  const loop_generation& g = L.generation;
  models::sampling_options opt;
  opt.max_new_tokens = g.max_new_tokens, opt.temperature = g.temperature, opt.top_k = g.top_k, opt.top_p = g.top_p;
  opt.min_p = g.min_p, opt.repetition_penalty = g.repetition_penalty, opt.batch_rows = std::max(g.batch_size, 1);
  const int vocab = policy.config().vocab_size;
  if (const auto e = detail::generation_eos(cfg.model, vocab)) opt.eos_id = *e;
  else if (const auto id = tp.tok->token_to_id(tp.options.eos_token); id && *id < vocab) opt.eos_id = *id;
  loop::transformer_sampler<M> sampler(policy, *tp.tok, opt, cfg.data.prefix_sharing, special);
  loop::online_dpo<trainer_type, loop::transformer_sampler<M>, Judge> online(t, sampler, judge, {.missing_eos_penalty = L.missing_eos_penalty});

  train::metrics_log log(root);
  std::unique_ptr<train::tensorboard_writer> tb;
  if (cfg.output.tensorboard) {
    tb = std::make_unique<train::tensorboard_writer>(root / "runs");
    log.forward_to(tb.get());
  }
  std::cerr << "prefopt iterate: online DPO, " << policy.config().model_type << (lora ? " with LoRA" : "") << ", reference " << strategy
            << ", judge " << judge.name() << "; " << L.online_steps << " steps of " << cfg.training.batch_size << " prompts ("
            << prompts.text.size() << " in the file)\n";
  const auto seed = std::uint64_t(cfg.training.seed);
  std::mt19937_64 rng(mix_seed(seed, 0x6f6e6c696e65));  // the samplers' draws
  std::uint64_t pass = 0;
  std::vector<std::size_t> order = online_order(prompts.text.size(), seed, pass);
  std::size_t next = 0, seen = 0;
  std::map<std::string, double> window;
  int window_steps = 0, skipped = 0, consecutive = 0;
  for (int step = 1; step <= L.online_steps; ++step) {
    std::vector<std::string> batch;
    while (batch.size() < std::size_t(cfg.training.batch_size)) {
      if (next == order.size()) order = online_order(prompts.text.size(), seed, ++pass), next = 0;
      batch.push_back(prompts.text[order[next++]]);
    }
    seen += batch.size();
    const auto r = online.step(std::span<const std::string>(batch), rng);
    if (r.step.skipped) {
      ++skipped, ++consecutive;
      std::cerr << "prefopt iterate: online step " << step << " skipped (" << r.step.skip_reason << "), weights unchanged\n";
      if (cfg.training.max_consecutive_skipped_steps > 0 && consecutive >= cfg.training.max_consecutive_skipped_steps)
        throw train::training_error("online step " + std::to_string(step), std::to_string(consecutive) + " consecutive steps skipped (" + r.step.skip_reason + ")");
      continue;
    }
    consecutive = 0;
    // A row is the mean over its window's steps, except grad_norm and learning_rate (the last
    // step's) and num_tokens (its own count), as the training runner's rows (train::detail::last_value).
    for (const auto& [key, v] : r.step.metrics)
      if (!train::detail::last_value(key)) window[key] += v;
    ++window_steps;
    if (step % cfg.training.logging_steps == 0 || step == L.online_steps) {
      train::metric_values row{{"epoch", double(seen) / double(prompts.text.size())}, {"episode", double(seen)}};
      for (const auto& [key, v] : window) row.emplace_back(key, v / double(window_steps));
      for (const auto& [key, v] : r.step.metrics)
        if (train::detail::last_value(key)) row.emplace_back(key, v);
      if (skipped) row.emplace_back("skipped_steps", double(skipped));
      log.log(step, row);
      std::cerr << "prefopt iterate: online step " << step << "/" << L.online_steps << ": loss " << window["loss"] / double(window_steps);
      if (window.count("objective/scores")) std::cerr << ", objective/scores " << window["objective/scores"] / double(window_steps);
      std::cerr << ", objective/kl " << window["objective/kl"] / double(window_steps) << "\n";
      window.clear(), window_steps = 0;
    }
  }
  const auto dtype = cfg.output.dtype == "bf16" ? io::dtype::bf16 : io::dtype::f32;
  write_output_dir(cfg, root / "final", [&](const fs::path& d) { train::save_model_state(policy, d, dtype); });
  if constexpr (requires { policy.merge_into_base(); })
    if (cfg.output.save_merged) {
      policy.merge_into_base();
      write_output_dir(cfg, root / "merged", [&](const fs::path& d) { models::save_pretrained(policy, d, dtype); });
    }
  std::cerr << "prefopt iterate: " << L.online_steps << " online steps" << (skipped ? " (" + std::to_string(skipped) + " skipped)" : "")
            << "; model saved to " << (root / "final").string() << "\n";
}

// Runs the online steps on the policy of cfg (with_policy: gpt2/llama over B, LoRA when
// configured); a reward model judge runs on the same backend.
template <class B>
void run_online(const B& backend, const train::run_config& cfg, const loop_settings& L, const text_pipeline& tp, const prompt_set& prompts) {
  // The sampler encodes prompt text one way: with special tokens for text prompts, without for
  // rendered conversations (read_prompts' rule); a file mixing the two is refused.
  const bool special = !has_message_prompts(L.prompts);
  for (std::size_t i = 0; i < prompts.text.size(); ++i)
    if (tp.tok->encode(prompts.text[i], special) != prompts.ids[i])
      throw config_error(L.prompts + ":" + std::to_string(prompts.lines[i]) + ": field 'prompt'",
                         "loop.mode online needs all prompts to be text or all to be messages");
  std::size_t longest = 0;
  for (const auto& ids : prompts.ids) longest = std::max(longest, ids.size());
  const std::size_t row = longest + std::size_t(std::max(L.generation.max_new_tokens, 0));
  with_policy<B>(cfg, [&](auto& policy) {
    if (L.judge.type == "pairwise_command") {
      loop::pairwise_command_judge j({.argv = L.judge.command, .timeout = std::chrono::milliseconds(std::llround(L.judge.timeout_s * 1000.0))});
      online_steps(policy, cfg, L, tp, prompts, special, j);
    } else {
      configured_judge<B> j(backend, L.judge, cfg);
      online_steps(policy, cfg, L, tp, prompts, special, j);
    }
  }, row, cfg.data.prefix_sharing ? 1 : 2, true);
}

} // namespace prefopt::cli::iterate

#ifdef PREFOPT_CLI_CUDA
namespace prefopt::cli::iterate {
extern template void run_online<backends::cuda>(const backends::cuda&, const train::run_config&, const loop_settings&,
                                                const text_pipeline&, const prompt_set&);
} // namespace prefopt::cli::iterate
#endif
