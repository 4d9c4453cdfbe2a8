// tools/prefopt/cmd_demo.hpp — `prefopt demo`: the bundled default training run, nothing downloaded.
//
// In the spirit of the DPO paper's controlled-sentiment task, on a bundled synthetic language of
// film reviews (demo/corpus.hpp):
//   1. a word vocabulary, a templated review corpus and a lexicon reward, all built in code;
//   2. a small GPT-2 (models::init_weights: Hugging Face's initialization) trained by SFT on the
//      corpus — this is π_ref;
//   3. preference pairs: two continuations of each training prompt sampled from π_ref, the one
//      with the higher reward chosen (ties skipped);
//   4. DPO (sigmoid), IPO (the paper's form: margin of sequence log-ratios, not per-token means)
//      and conservative DPO (label smoothing ε = 0.15) at β = 0.1, 0.3, 1, each from a clone of π_ref
//      (AdamW, lr 7e-4, 3 epochs of 32-pair batches);
//   5. on held-out prompts, before and after each run: mean reward of sampled continuations and
//      KL(π‖π_ref) estimated from the samples;
//   6. iterative DPO (the loop of docs/loop.md, in memory): rounds that each sample two
//      continuations per training prompt from the current policy, judge them, and train DPO
//      (β = 0.3, reference π_ref) on the new pairs — held-out (lexicon) reward and KL after every
//      round, as rows "iter r<n>" of the table and a line in the plot; judged by the lexicon, then
//      again ("iter-rm r<n>") by a reward model (the SFT body + a score head, Bradley–Terry on the
//      pairs of step 3).
// Writes results.json, results.csv, reward_vs_kl.svg, sft/ and best/ (save_pretrained + vocab.json,
// tokenizer.json and tokenizer_config.json, so transformers' Auto classes load them), and each
// training run's curves in runs/<run>/ (metrics.jsonl, metrics.csv, TensorBoard events) into --out, prints a line per phase and the reward-vs-KL table. Exits with 3 if a DPO run did
// not raise the held-out mean reward over π_ref. --quick is a small version for tests.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "args.hpp"
#include "backend_choice.hpp"
#include "demo/report.hpp"
#include "prefopt/backends/eigen.hpp"
#ifdef PREFOPT_CLI_CUDA
#include "prefopt/backends/cuda.hpp"
#endif
#include "prefopt/core/bf16.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/io/atomic_file.hpp"
#include "prefopt/losses/ipo.hpp"
#include "prefopt/losses/probabilistic.hpp"
#include "prefopt/losses/sigmoid.hpp"
#include "prefopt/models/init.hpp"
#include "prefopt/models/reward_io.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "prefopt/train/metrics_log.hpp"
#include "prefopt/train/tensorboard.hpp"

namespace prefopt::cli {

inline const cli::command_info demo_info{
    "prefopt demo",
    "Trains a small GPT-2 on a bundled synthetic review corpus (SFT = the reference policy), samples\n"
    "preference pairs from it with a sentiment-lexicon reward, runs DPO, IPO and conservative DPO at\n"
    "several beta, then rounds of iterative DPO (sample from the current policy, judge, train), and\n"
    "reports held-out reward vs KL(pi || pi_ref): results.json, results.csv,\n"
    "reward_vs_kl.svg, and the SFT and best models (Hugging Face layout + vocab.json) in DIR\n"
    "(default demo-out); each run's training curves in DIR/runs/<run>/ (metrics.jsonl, metrics.csv,\n"
    "TensorBoard events: tensorboard --logdir DIR/runs). --quick runs a tiny version in seconds.\n"
    "Same --seed, same numbers."};

namespace demo {

struct settings {
  int layers = 2, hidden = 64, heads = 4, positions = 32;
  int corpus = 8000, held_out_prompts = 64, train_prompts = 1536, samples_per_prompt = 8;
  sft_settings sft{.steps = 500};
  dpo_settings dpo{.epochs = 3, .batch = 32, .lr = 7e-4};
  std::vector<run_spec> runs;
  int iterative_rounds = 3;
  double iterative_beta = 0.3;

  static settings full() {
    settings s;
    s.runs = {{"dpo", 0.1}, {"dpo", 0.3}, {"dpo", 1.0}, {"ipo", 0.1}, {"ipo", 0.3}, {"ipo", 1.0},
              {"cdpo", 0.1, 0.15}, {"cdpo", 0.3, 0.15}, {"cdpo", 1.0, 0.15}};
    return s;
  }
  static settings quick() {
    settings s;
    s.corpus = 2000;
    s.held_out_prompts = 32;
    s.train_prompts = 384;
    s.sft.steps = 200;
    s.sft.warmup = 20;
    s.dpo.lr = 1e-3;
    s.runs = {{"dpo", 0.3}, {"ipo", 0.3}, {"cdpo", 0.3, 0.15}};
    s.iterative_rounds = 2;
    return s;
  }
};


inline models::transformer_config model_config(const settings& s, const vocabulary& v) {
  models::transformer_config c;
  c.vocab_size = v.size();
  c.hidden = s.hidden;
  c.layers = s.layers;
  c.heads = s.heads;
  c.kv_heads = s.heads;
  c.head_dim = s.hidden / s.heads;
  c.intermediate = 4 * s.hidden;
  c.max_positions = s.positions;
  c.attention_bias = c.o_bias = c.mlp_bias = true;
  c.raw = {{"bos_token_id", v.bos()}, {"eos_token_id", v.eos()}, {"initializer_range", 0.02}};
  c.validate("demo model");
  return c;
}

class stopwatch {
public:
  double lap() {
    const auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    return s;
  }
  double total() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_ = start_;
};

inline nlohmann::json to_json(const run_result& r) {
  return {{"run", r.label()},
          {"loss", r.spec.loss},
          {"beta", r.is_reference() ? nlohmann::json() : nlohmann::json(r.spec.beta)},
          {"label_smoothing", r.spec.label_smoothing},
          {"reward", r.eval.reward},
          {"reward_se", r.eval.reward_se},
          {"kl", r.eval.kl},
          {"kl_se", r.eval.kl_se},
          {"mean_length", r.eval.length},
          {"stop_rate", r.eval.stop_rate},
          {"train", {{"steps", r.train.steps}, {"final_loss", r.train.final_loss}, {"final_accuracy", r.train.final_accuracy},
                     {"final_margin", r.train.final_margin}}},
          {"round", r.spec.loss == "iter" ? nlohmann::json(r.spec.round) : nlohmann::json()},
          {"seconds", r.seconds},
          {"examples", r.eval.examples}};
}

// One run's training curves in dir: metrics.jsonl and metrics.csv (train::metrics_log) and the same
// rows as TensorBoard events beside them. A folder left by an earlier demo is replaced.
class run_log {
public:
  explicit run_log(const std::filesystem::path& dir)
      : tb_((std::filesystem::remove_all(dir), dir), {.source_writer = "prefopt"}), metrics_(dir) {
    metrics_.forward_to(&tb_);
  }
  run_log(const run_log&) = delete;
  run_log& operator=(const run_log&) = delete;
  train::metrics_log& metrics() { return metrics_; }

private:
  train::tensorboard_writer tb_;
  train::metrics_log metrics_;
};

template <class M> void save_model(M& m, const vocabulary& v, const std::filesystem::path& dir) {
  models::save_pretrained(m, dir);
  io::write_atomically(dir / "vocab.json", v.to_json().dump(1) + "\n");
  io::write_atomically(dir / "tokenizer.json", v.tokenizer_json().dump(1) + "\n");
  io::write_atomically(dir / "tokenizer_config.json", v.tokenizer_config(m.config().max_positions).dump(1) + "\n");
}

} // namespace demo

// What `prefopt demo` was asked for.
struct demo_run {
  std::filesystem::path out;
  long seed = 1;
  bool quick = false;
};

// The demo on backend B (eigen: the CPU; cuda: one GPU, where the program is built with CUDA).
template <class B> int run_demo(const B& backend, const demo_run& o) {
  using namespace demo;
  using model = models::gpt2<B>;
  const std::filesystem::path& out = o.out;
  const long seed = o.seed;
  const bool quick = o.quick;
  const settings s = quick ? settings::quick() : settings::full();
  std::filesystem::create_directories(out);
  stopwatch t;
  std::mt19937_64 seeds(std::uint64_t(seed) * 0x9E3779B97F4A7C15ull + 1);
  auto phase = [&](const std::string& what) { std::printf("[demo %7.1fs] %s\n", t.total(), what.c_str()), std::fflush(stdout); };
  nlohmann::json timings = nlohmann::json::object();

  // 1. language, corpus, prompts
  const vocabulary v;
  const grammar g(v);
  std::mt19937_64 corpus_rng(seeds());
  std::vector<sentence> corpus;
  for (int i = 0; i < s.corpus; ++i) corpus.push_back(g.draw(corpus_rng, std::size_t(s.positions)));
  std::vector<sentence> corpus_eval;
  for (int i = 0; i < 256; ++i) corpus_eval.push_back(g.draw(corpus_rng, std::size_t(s.positions)));
  auto prompts = g.all_prompts();
  shuffle(prompts, corpus_rng);
  const std::vector<tokens> held_out(prompts.begin(), prompts.begin() + s.held_out_prompts);
  std::vector<tokens> train_prompts;
  const std::size_t pool = prompts.size() - std::size_t(s.held_out_prompts);
  for (int i = 0; i < s.train_prompts; ++i)
    train_prompts.push_back(prompts[std::size_t(s.held_out_prompts) + std::min(pool - 1, std::size_t(models::detail::uniform01(corpus_rng) * double(pool)))]);
  double corpus_reward = 0.0;
  for (const auto& c : corpus) corpus_reward += reward(v, c.continuation) / double(corpus.size());
  timings["corpus"] = t.lap();
  phase("corpus: " + std::to_string(v.size()) + " words, " + std::to_string(corpus.size()) + " sentences (mean reward " +
        format("%.3f", corpus_reward) + "), " + std::to_string(prompts.size()) + " prompts, " + std::to_string(s.held_out_prompts) +
        " held out");

  // 2. model + SFT → π_ref
  model ref(backend, model_config(s, v));
  models::init_weights(ref, seeds());
  std::vector<const sentence*> eval_batch;
  for (const auto& c : corpus_eval) eval_batch.push_back(&c);
  const double nll0 = sentence_nll(ref, eval_batch, false);
  phase("model: gpt2, " + std::to_string(s.layers) + " layers, width " + std::to_string(s.hidden) + ", " +
        std::to_string(ref.base_parameters().size()) + " parameters; held-out NLL/token at init " + format("%.3f", nll0));
  std::mt19937_64 sft_rng(seeds());
  run_log sft_log(out / "runs" / "sft");
  sft_train(ref, corpus, s.sft, sft_rng, [&](int step, double loss) {
    sft_log.metrics().log(step, {{"loss", loss}});
    if (step % 200 == 0 || step == s.sft.steps) phase("  sft step " + std::to_string(step) + "/" + std::to_string(s.sft.steps) + ": loss " + format("%.4f", loss));
  });
  const double nll = sentence_nll(ref, eval_batch, false);
  timings["sft"] = t.lap();
  phase("sft done: held-out NLL/token " + format("%.4f", nll) + " (" + format("%.1f", timings["sft"].get<double>()) + " s)");
  save_model(ref, v, out / "sft");

  // 3. preference pairs from π_ref
  const int max_new = s.positions;  // capped by positions − prompt length
  const pair_set pairs = sample_preferences(ref, v, train_prompts, max_new, seeds());
  if (pairs.pairs.empty()) throw error("demo", "every sampled pair was a tie: no preference data");
  double margin = 0.0;
  for (std::size_t i = 0; i < pairs.pairs.size(); ++i) margin += (pairs.chosen_reward[i] - pairs.rejected_reward[i]) / double(pairs.pairs.size());
  timings["preferences"] = t.lap();
  phase("preferences: " + std::to_string(train_prompts.size()) + " prompts x 2 samples -> " + std::to_string(pairs.pairs.size()) +
        " pairs (" + std::to_string(pairs.ties) + " ties skipped), mean reward margin " + format("%.3f", margin) + " (" +
        format("%.1f", timings["preferences"].get<double>()) + " s)");

  // 4. π_ref on held-out prompts, then each DPO-family run
  const std::uint64_t eval_seed = seeds(), train_seed = seeds();
  std::vector<run_result> results;
  {
    run_result r;
    r.spec = {"sft", 0.0};
    r.eval = evaluate(ref, ref, v, held_out, s.samples_per_prompt, max_new, eval_seed);
    r.seconds = t.lap();
    results.push_back(r);
    phase("pi_ref: reward " + format("%.3f", r.eval.reward) + " +- " + format("%.3f", r.eval.reward_se) + " (" + format("%.1f", r.seconds) + " s)");
  }
  std::optional<model> best;
  std::size_t best_index = 0;
  for (const auto& spec : s.runs) {
    model policy = models::clone(ref);
    run_result r;
    r.spec = spec;
    run_log log(out / "runs" / spec.folder());
    auto train = [&](auto loss) { r.train = train_preferences(policy, ref, loss, pairs, s.dpo, train_seed, &log.metrics()); };
    if (spec.loss == "dpo") train(losses::sigmoid{.beta = spec.beta});
    else if (spec.loss == "ipo") train(losses::ipo{.beta = spec.beta, .normalize_by_length = false});
    else train(losses::probabilistic{.beta = spec.beta, .label_smoothing = spec.label_smoothing});
    r.eval = evaluate(policy, ref, v, held_out, s.samples_per_prompt, max_new, eval_seed);
    r.seconds = t.lap();
    results.push_back(r);
    phase(spec.name() + ": " + std::to_string(r.train.steps) + " steps, loss " + format("%.4f", r.train.final_loss) + ", accuracy " +
          format("%.3f", r.train.final_accuracy) + "; held-out reward " + format("%.3f", r.eval.reward) + " +- " +
          format("%.3f", r.eval.reward_se) + ", KL " + format("%.3f", r.eval.kl) + " +- " + format("%.3f", r.eval.kl_se) + " (" +
          format("%.1f", r.seconds) + " s)");
    if (!best || r.eval.reward > results[best_index].eval.reward) {
      best.emplace(std::move(policy));
      best_index = results.size() - 1;
    }
  }

  // 4b. iterative DPO: each round samples from the policy the previous round trained, judged by
  // the lexicon reward ("iter") or by a reward model trained on π_ref's pairs ("iter_rm");
  // held-out reward is always the lexicon's.
  auto iterate = [&](const std::string& kind, const judge_fn& judge, std::uint64_t iter_seed) {
    model policy = models::clone(ref);
    for (int round = 1; round <= s.iterative_rounds; ++round) {
      const pair_set round_pairs = sample_preferences(policy, v, train_prompts, max_new, mix_seed(iter_seed, std::uint64_t(2 * round)), judge);
      if (round_pairs.pairs.empty()) throw error("demo", kind + " round " + std::to_string(round) + ": every sampled pair was a tie");
      run_result r;
      r.spec = {kind, s.iterative_beta, 0.0, round};
      run_log log(out / "runs" / r.spec.folder());
      r.train = train_preferences(policy, ref, losses::sigmoid{.beta = s.iterative_beta}, round_pairs, s.dpo,
                                  mix_seed(iter_seed, std::uint64_t(2 * round + 1)), &log.metrics());
      r.eval = evaluate(policy, ref, v, held_out, s.samples_per_prompt, max_new, eval_seed);
      r.seconds = t.lap();
      results.push_back(r);
      phase(std::string(kind == "iter" ? "iterative DPO (lexicon judge)" : "iterative DPO (reward model judge)") + " round " +
            std::to_string(round) + ": " + std::to_string(round_pairs.pairs.size()) + " pairs (" + std::to_string(round_pairs.ties) +
            " ties skipped), " + std::to_string(r.train.steps) + " steps, loss " + format("%.4f", r.train.final_loss) +
            "; held-out reward " + format("%.3f", r.eval.reward) + " +- " + format("%.3f", r.eval.reward_se) + ", KL " +
            format("%.3f", r.eval.kl) + " +- " + format("%.3f", r.eval.kl_se) + " (" + format("%.1f", r.seconds) + " s)");
      if (r.eval.reward > results[best_index].eval.reward) {
        best.emplace(models::clone(policy));
        best_index = results.size() - 1;
      }
    }
  };
  iterate("iter", {}, seeds());
  double rm_accuracy = 0.0;
  {
    auto rm = models::reward_from_causal_lm<model>(backend, out / "sft", seeds());
    rm_accuracy = train_reward_model(rm, pairs, s.dpo, seeds());
    timings["reward_model"] = t.lap();
    phase("reward model (SFT body + score head, Bradley-Terry on pi_ref's " + std::to_string(pairs.pairs.size()) +
          " pairs): training accuracy " + format("%.3f", rm_accuracy) + " (" + format("%.1f", timings["reward_model"].get<double>()) + " s)");
    iterate("iter_rm", reward_model_judge(rm), seeds());
  }

  // 5. outputs
  const std::string subtitle = std::string(quick ? "quick run, " : "") + "seed " + std::to_string(seed) + ", " +
                               std::to_string(s.held_out_prompts * s.samples_per_prompt) + " samples of " +
                               std::to_string(s.held_out_prompts) + " held-out prompts per model";
  const std::string tab = table(results);
  std::printf("\nheld-out reward vs KL(pi || pi_ref) (%s):\n%s\n", subtitle.c_str(), tab.c_str());
  nlohmann::json j;
  j["settings"] = {{"quick", quick}, {"seed", seed}, {"backend", std::string(B::name)},
                   {"precision", backend.matmul_precision == precision::bf16 ? "bf16" : "fp32"}, {"vocab_size", v.size()}, {"layers", s.layers}, {"hidden", s.hidden},
                   {"heads", s.heads}, {"positions", s.positions}, {"parameters", ref.base_parameters().size()},
                   {"corpus_sentences", s.corpus}, {"sft_steps", s.sft.steps}, {"sft_batch", s.sft.batch}, {"sft_lr", s.sft.lr},
                   {"train_prompts", s.train_prompts}, {"held_out_prompts", s.held_out_prompts},
                   {"samples_per_prompt", s.samples_per_prompt}, {"dpo_epochs", s.dpo.epochs}, {"dpo_batch", s.dpo.batch},
                   {"dpo_lr", s.dpo.lr}, {"iterative_rounds", s.iterative_rounds}, {"iterative_beta", s.iterative_beta},
                   {"reward_model_training_accuracy", rm_accuracy},
                   {"preference", "higher lexicon reward chosen, ties skipped"},
                   {"ipo", "the paper's form: margin of sequence log-ratios (normalize_by_length = false)"},
                   {"reward", "mean lexicon polarity of the continuation's adjectives (strong 1, mild 0.5, neutral 0)"},
                   {"kl", "mean over samples y ~ pi of log pi(y|x) - log pi_ref(y|x), end token included"}};
  j["corpus"] = {{"mean_reward", corpus_reward}, {"sft_heldout_nll_per_token", nll}, {"init_heldout_nll_per_token", nll0}};
  j["pairs"] = {{"count", pairs.pairs.size()}, {"ties_skipped", pairs.ties}, {"mean_reward_margin", margin}};
  j["runs"] = nlohmann::json::array();
  for (const auto& r : results) j["runs"].push_back(to_json(r));
  j["best"] = results[best_index].label();
  save_model(*best, v, out / "best");
  io::write_atomically(out / "best" / "run.json", to_json(results[best_index]).dump(2) + "\n");
  io::write_atomically(out / "results.csv", csv(results));
  io::write_atomically(out / "reward_vs_kl.svg", svg(results, subtitle));
  timings["total"] = t.total();
  j["timings_seconds"] = timings;
  io::write_atomically(out / "results.json", j.dump(2) + "\n");
  for (const char* f : {"results.json", "results.csv", "reward_vs_kl.svg", "sft/config.json", "sft/model.safetensors", "sft/vocab.json",
                        "best/config.json", "best/model.safetensors", "best/vocab.json"})
    if (!std::filesystem::exists(out / f) || std::filesystem::file_size(out / f) == 0) throw io_error((out / f).string(), "was not written");
  phase("wrote " + out.string() + "/{results.json, results.csv, reward_vs_kl.svg, sft/, best/ (" + results[best_index].label() +
        "), runs/ (training curves: tensorboard --logdir " + (out / "runs").string() + ")}");

  int status = 0;
  for (const auto& r : results)
    if (r.spec.loss == "dpo" && !(r.eval.reward > results.front().eval.reward)) {
      std::fprintf(stderr, "prefopt demo: %s did not raise the held-out mean reward over pi_ref (%.3f <= %.3f)\n", r.label().c_str(),
                   r.eval.reward, results.front().eval.reward);
      status = 3;
    }
  return status;
}

#ifdef PREFOPT_CLI_CUDA
extern template int run_demo<backends::cuda>(const backends::cuda&, const demo_run&);
#endif

inline int cmd_demo(int argc, char** argv) {
  const args a(argc, argv, 2, demo_info,
               {{"out", "DIR", "output folder (default demo-out)"},
                {"seed", "N", "seed of every random draw (default 1)"},
                {"quick", "", "a tiny version that runs in seconds"},
                {"backend", "NAME", "eigen (the CPU, default) or cuda (one NVIDIA GPU, where prefopt was built with CUDA)"},
                {"precision", "P", "fp32 (default) or bf16 (training.precision's bf16: core/bf16.hpp)"}});
  if (a.flag("help")) return 0;
  if (!a.positional().empty()) throw config_error(a.positional().front(), "unexpected argument (see --help)");
  demo_run o{.out = a.get("out", "demo-out"), .seed = a.integer("seed", 1), .quick = a.flag("quick")};
  if (o.seed < 0) throw config_error("--seed", "must be >= 0");
  const precision p = parse_precision(a.get("precision", "fp32"), "--precision");
  const std::string backend = a.get("backend", "eigen");
#ifdef _OPENMP
  // The model is tiny: one thread is fastest, and on a busy machine OpenMP barriers across
  // preempted threads slow it down many times over. OMP_NUM_THREADS overrides.
  if (!std::getenv("OMP_NUM_THREADS")) omp_set_num_threads(1);
#endif
  return on_backend(backend, p, "--backend", [&](const auto& be) { return run_demo(be, o); });
}

} // namespace prefopt::cli
