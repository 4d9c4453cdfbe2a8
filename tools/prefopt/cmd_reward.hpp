// tools/prefopt/cmd_reward.hpp — `prefopt reward train` and `prefopt reward score`.
//
//   prefopt reward train --config run.json [--set key.path=value ...]
//   prefopt reward score --model DIR --data pairs.jsonl --out scores.jsonl [--batch-size N]
// train: a Bradley–Terry reward model as TRL's RewardTrainer trains one (train/reward_trainer.hpp).
// run.json is `prefopt train`'s configuration (model, data, lora, optimizer, training, output;
// loss and reference are not used) plus a "reward" object: {"center_rewards_coefficient": null}.
// optimizer.learning_rate defaults to RewardConfig's 1e-4 here. The model is a reward model
// (score.weight present) or a causal LM that gets a new head drawn from training.seed. Each pair's
// sequences are prompt + chosen and prompt + rejected; a "margin" column of the data file is
// TRL's margin. Metrics go to output.dir/metrics.jsonl (+ .csv) under TRL's names; the model to
// output.dir/final as a *ForSequenceClassification checkpoint (LoRA: final/ is the PEFT adapter
// with the score head, merged/ the merged classifier).
// Not done here (prefopt train has them): checkpoints and resume, early stopping, TensorBoard.
// score: one JSON line per pair {"line", "chosen_score", "rejected_score"}.
#pragma once

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <random>
#include <string>

#include "cmd_train.hpp"
#include "prefopt/data/jsonl.hpp"
#include "prefopt/models/reward_io.hpp"
#include "prefopt/train/metrics_log.hpp"
#include "prefopt/train/reward_trainer.hpp"

namespace prefopt::cli {

inline const char* reward_help =
    "usage: prefopt reward train --config run.json [--set key.path=value ...]\n"
    "       prefopt reward score --model DIR --data pairs.jsonl[.gz] --out scores.jsonl [options]\n"
    "  train: Bradley-Terry reward model (TRL RewardTrainer)\n"
    "  score: chosen_score / rejected_score per pair line\n"
    "run `prefopt reward train --help` or `prefopt reward score --help` for their options\n";
inline const cli::command_info reward_train_info{
    "prefopt reward train",
    "Trains a Bradley-Terry reward model (TRL RewardTrainer); run.json as prefopt train's plus\n"
    "\"reward\": {\"center_rewards_coefficient\": number or null}; a \"margin\" data column is used."};
inline const cli::command_info reward_score_info{"prefopt reward score",
                                                 "Writes chosen_score / rejected_score per pair line."};

// The model directory as a reward model of type reward_model<Body> (Body: gpt2 or llama over eigen).
template <class Fn> void with_reward_model(const std::filesystem::path& dir, std::uint64_t seed, Fn&& fn) {
  using B = backends::eigen;
  const auto cfg = models::transformer_config::from_file(dir / "config.json");
  const bool classifier = models::checkpoint_reader(dir).contains("score.weight");
  auto run = [&](auto tag) {
    using M = typename decltype(tag)::type;
    auto rm = classifier ? models::load_reward_model<M>(B{}, dir) : models::reward_from_causal_lm<M>(B{}, dir, seed);
    fn(rm, classifier);
  };
  if (cfg.arch == models::architecture::gpt2) run(std::type_identity<models::gpt2<B>>{});
  else run(std::type_identity<models::llama<B>>{});
}

// The "margin" column of the pairs' lines (empty when no line has one).
inline std::vector<double> read_margins(const std::string& path, const std::vector<std::size_t>& lines) {
  std::map<std::size_t, double> by_line;
  data::jsonl_reader in(path, {.policy = data::on_error::skip});
  data::jsonl_line l;
  while (in.next(l)) {
    if (!l.value.is_object() || !l.value.contains("margin")) continue;
    const auto& m = l.value["margin"];
    if (!m.is_number() || !std::isfinite(m.get<double>()))
      throw data_error(path + ":" + std::to_string(l.line) + ": field 'margin'", "must be a finite number");
    by_line[l.line] = m.get<double>();
  }
  if (by_line.empty()) return {};
  std::vector<double> out;
  for (auto line : lines) {
    const auto it = by_line.find(line);
    if (it == by_line.end()) throw data_error(path + ":" + std::to_string(line) + ": field 'margin'", "missing (other lines have one)");
    out.push_back(it->second);
  }
  return out;
}

inline train::reward_pair_batch reward_batch_of(const data::tokenized_preferences& d, const std::vector<double>& margin,
                                                const std::vector<std::size_t>& idx, std::optional<std::int32_t> pad) {
  std::vector<models::tokenized_pair> pairs;
  train::reward_pair_batch b;
  for (auto i : idx) {
    pairs.push_back(d.pairs[i]);
    if (!margin.empty()) b.margin.push_back(margin[i]);
  }
  b.sequences = models::pack_reward_pairs(pairs, pad);
  return b;
}

template <class RM>
std::map<std::string, double> evaluate_reward(train::reward_trainer<RM, optim::adamw>& t, const data::tokenized_preferences& d,
                                              const std::vector<double>& margin, std::size_t batch, std::optional<std::int32_t> pad) {
  std::map<std::string, double> sum;
  for (std::size_t s = 0; s < d.size(); s += batch) {
    std::vector<std::size_t> idx;
    for (std::size_t i = s; i < std::min(d.size(), s + batch); ++i) idx.push_back(i);
    const auto m = t.evaluate_batch(reward_batch_of(d, margin, idx, pad));
    for (const auto& [k, v] : m) {
      if (k == "min_reward") sum[k] = sum.count(k) ? std::min(sum[k], v) : v;
      else if (k == "max_reward") sum[k] = sum.count(k) ? std::max(sum[k], v) : v;
      else sum[k] += v * double(idx.size()) / double(d.size());
    }
  }
  return sum;
}

inline int cmd_reward_train(int argc, char** argv) {
  const args a(argc, argv, 3, reward_train_info,
               {{"config", "FILE", "run configuration, JSON (prefopt train --print-config shows every option); required"},
                {"set", "KEY=VALUE...", "override one option, e.g. training.batch_size=4; repeat for several"}});
  if (a.flag("help")) return 0;
  train::run_config cfg = train::default_run_config();
  cfg.optimizer.learning_rate = 1e-4;  // RewardConfig's default
  train::bradley_terry bt;
  const std::string path = a.require("config");
  nlohmann::json j = read_json_file(path);
  if (j.contains("reward")) {
    const auto r = j["reward"];
    j.erase("reward");
    if (!r.is_object()) throw config_error(path + ": field 'reward'", "must be an object");
    for (const auto& [k, v] : r.items()) {
      if (k != "center_rewards_coefficient") throw config_error(path + ": field 'reward." + k + "'", "unknown key");
      if (!v.is_null() && !v.is_number()) throw config_error(path + ": field 'reward." + k + "'", "must be a number or null");
      if (v.is_number()) bt.center_rewards_coefficient = v.get<double>();
    }
  }
  try {
    reflect::from_json(j, cfg);
  } catch (const config_error& e) {
    throw config_error(path + ": " + e.where(), e.why());
  }
  for (const auto& s : a.all("set")) {
    if (s.starts_with("reward.center_rewards_coefficient=")) {
      const std::string v = s.substr(s.find('=') + 1);
      try {
        if (v == "null") bt.center_rewards_coefficient.reset();
        else bt.center_rewards_coefficient = std::stod(v);
      } catch (const std::exception&) {
        throw config_error("--set " + s, "expects a number or null");
      }
    } else {
      reflect::apply_override(cfg, s);
    }
  }
  bt.validate();
  train::validate(cfg);
  if (cfg.adapter) throw config_error(path + ": field 'adapter'", "reward training cannot start from an adapter yet; use lora, or merge it first");
  if (cfg.optimizer.type != "adamw") throw config_error(path + ": field 'optimizer.type'", "reward training uses adamw");
  apply_thread_setting(cfg.training.threads, std::cerr);
  text_pipeline pipeline;
  auto sets = load_datasets<data::tokenized_preferences>(cfg, false, [&](const std::string& f) { return tokenize_file(f, cfg, &pipeline, std::cerr); });
  auto& train_data = sets.first;
  const auto margin = read_margins(cfg.data.train, train_data.lines);
  std::vector<double> eval_margin;
  if (sets.second && cfg.data.eval) eval_margin = read_margins(*cfg.data.eval, sets.second->lines);
  else if (sets.second && !margin.empty()) throw config_error(path + ": field 'data.eval_fraction'", "with a margin column, give data.eval instead");
  if (train_data.size() == 0) throw data_error(cfg.data.train, "no usable pairs");
  const auto ro = runner_options_of(cfg);
  const std::size_t per_step = ro.batch_size * std::size_t(ro.gradient_accumulation_steps);
  const long steps_per_epoch = long((train_data.size() + per_step - 1) / per_step);
  const long total = ro.max_steps > 0 ? ro.max_steps : long(ro.epochs) * steps_per_epoch;
  train::training_args args;
  args.max_grad_norm = cfg.optimizer.max_grad_norm;
  args.seed = std::uint64_t(cfg.training.seed);
  args.disable_dropout = cfg.training.disable_dropout;
  args.schedule = make_schedule(cfg.optimizer, total);
  const optim::adamw opt{.lr = cfg.optimizer.learning_rate, .beta1 = cfg.optimizer.beta1, .beta2 = cfg.optimizer.beta2,
                         .eps = cfg.optimizer.eps, .weight_decay = cfg.optimizer.weight_decay};
  with_reward_model(cfg.model, args.seed, [&](auto& loaded, bool classifier) {
    if (!loaded.pad_token_id()) loaded.set_pad_token_id(train_data.pad_token_id);
    auto go = [&](auto& rm) {
      const auto pad = rm.pad_token_id();
      train::reward_trainer t(rm, bt, opt, args);
      train::metrics_log log(cfg.output.dir);
      std::cerr << "prefopt: reward model (" << rm.body().config().model_type << (classifier ? "" : ", new score head")
                << (rm.body().adapters().empty() ? "" : " + LoRA") << "), "
                << rm.body_parameters().size() + rm.head_parameters().size() << " trainable parameters; " << train_data.size()
                << " training pairs; " << total << " steps\n";
      std::vector<std::size_t> order(train_data.size());
      std::mt19937_64 rng(args.seed);
      std::map<std::string, double> acc;
      long acc_n = 0, skipped = 0;
      for (long step = 0, epoch = 0; step < total; ++epoch) {
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[std::size_t(rng() % i)]);
        for (std::size_t s = 0; s < order.size() && step < total; s += per_step) {
          std::vector<train::reward_pair_batch> micro;
          for (std::size_t m = s; m < std::min(order.size(), s + per_step); m += ro.batch_size) {
            std::vector<std::size_t> idx(order.begin() + std::ptrdiff_t(m), order.begin() + std::ptrdiff_t(std::min(order.size(), m + ro.batch_size)));
            micro.push_back(reward_batch_of(train_data, margin, idx, pad));
          }
          const auto r = t.step(std::span<const train::reward_pair_batch>(micro));
          if (r.skipped) {
            ++skipped;
            std::cerr << "prefopt: step skipped: " << r.skip_reason << "\n";
            if (ro.max_consecutive_skipped_steps > 0 && skipped >= ro.max_consecutive_skipped_steps)
              throw error("prefopt reward train", std::to_string(skipped) + " steps in a row skipped (training.max_consecutive_skipped_steps)");
            continue;
          }
          skipped = 0;
          ++step;
          for (const auto& [k, v] : r.metrics) acc[k] += v;
          ++acc_n;
          const double ep = double(epoch) + double(std::min(order.size(), s + per_step)) / double(order.size());
          if (ro.logging_steps > 0 && (step % ro.logging_steps == 0 || step == total)) {
            train::metric_values row;
            for (const char* k : {"loss", "grad_norm", "learning_rate", "num_tokens", "min_reward", "mean_reward", "max_reward", "accuracy", "margin"})
              if (acc.count(k)) row.emplace_back(k, k == std::string("learning_rate") || k == std::string("num_tokens") ? r.metrics.at(k) : acc[k] / double(acc_n));
            row.emplace_back("epoch", ep);
            log.log(step, row);
            acc.clear(), acc_n = 0;
          }
          const bool epoch_end = s + per_step >= order.size();  // eval_steps 0: evaluate after each epoch
          if (sets.second && ((ro.eval_steps > 0 ? step % ro.eval_steps == 0 : epoch_end) || step == total)) {
            train::metric_values row;
            for (const auto& [k, v] : evaluate_reward(t, *sets.second, eval_margin, ro.batch_size, pad)) row.emplace_back("eval_" + k, v);
            row.emplace_back("epoch", ep);
            log.log(step, row);
          }
        }
      }
      const auto final_dir = std::filesystem::path(cfg.output.dir) / "final";
      if constexpr (requires { rm.body().merge_into_base(); }) {
        write_output_dir(cfg, final_dir, [&](const std::filesystem::path& d) { models::save_reward_adapter(rm, d, cfg.model); });
        rm.body().merge_into_base();
        write_output_dir(cfg, std::filesystem::path(cfg.output.dir) / "merged",
                         [&](const std::filesystem::path& d) { models::save_reward_model(rm, d, ro.saved_dtype); });
      } else {
        write_output_dir(cfg, final_dir, [&](const std::filesystem::path& d) { models::save_reward_model(rm, d, ro.saved_dtype); });
      }
      std::cerr << "prefopt: " << t.global_step() << " steps; reward model saved to " << final_dir.string() << "\n";
    };
    using Body = typename std::remove_cvref_t<decltype(loaded)>::body_type;
    if (cfg.lora) {
      const auto mc = loaded.body().config();
      models::lora_config lc{.r = cfg.lora->r, .alpha = cfg.lora->alpha, .dropout = cfg.lora->dropout,
                             .target_modules = cfg.lora->target_modules.empty() ? default_lora_targets(mc) : cfg.lora->target_modules,
                             .use_rslora = cfg.lora->use_rslora};
      std::vector<float> head(loaded.head_parameters().size());
      loaded.backend().download(loaded.head_parameters(), std::span<float>(head));
      models::reward_model<models::lora<Body>> rm(models::lora<Body>(std::move(loaded.body()), lc, args.seed), loaded.pad_token_id());
      rm.backend().upload(std::span<const float>(head), rm.head_parameters());
      go(rm);
    } else {
      go(loaded);
    }
  });
  return 0;
}

inline int cmd_reward_score(int argc, char** argv) {
  const args a(argc, argv, 3, reward_score_info,
               {{"model", "DIR", "reward model directory (with score.weight); required"},
                {"data", "FILE", "preference pairs, JSONL in a TRL format (.gz too); required"},
                {"out", "FILE", "where the scores go, JSONL; required"},
                {"batch-size", "N", "pairs per forward pass (default 8)"},
                {"strict", "", "stop at the first bad line instead of skipping and counting it"},
                {"tokenizer", "FILE", "tokenizer.json for text data when the model directory has none"},
                {"chat-template", "NAME", "chat template for conversational data"},
                {"max-length", "N", "truncate text pairs to N tokens (default: no truncation)"}});
  if (a.flag("help")) return 0;
  const std::string data_path = a.require("data"), out_path = a.require("out");
  const long batch = a.integer("batch-size", 8);
  if (batch <= 0) throw config_error("--batch-size", "must be > 0");
  train::run_config cfg = data_flags(a);
  const data::tokenized_preferences d = tokenize_file(data_path, cfg, nullptr, std::cerr);
  const auto dir = std::filesystem::path(cfg.model);
  if (!models::checkpoint_reader(dir).contains("score.weight"))
    throw format_error(dir.string() + ": tensor 'score.weight'", "missing: not a reward model (train one with prefopt reward train)");
  std::string out;
  with_reward_model(dir, 0, [&](auto& rm, bool) {
    for (std::size_t s = 0; s < d.size(); s += std::size_t(batch)) {
      std::vector<models::tokenized_pair> pairs(d.pairs.begin() + std::ptrdiff_t(s), d.pairs.begin() + std::ptrdiff_t(std::min(d.size(), s + std::size_t(batch))));
      const auto sc = rm.forward(models::pack_reward_pairs(pairs, rm.pad_token_id()), {.keep_activations = false});
      for (std::size_t i = 0; i < pairs.size(); ++i)
        out += nlohmann::json{{"line", d.lines[s + i]}, {"chosen_score", sc[i]}, {"rejected_score", sc[pairs.size() + i]}}.dump() + "\n";
    }
  });
  io::write_atomically(out_path, std::string_view(out));
  std::fprintf(stderr, "prefopt reward score: %zu pairs scored, written to %s\n", d.size(), out_path.c_str());
  return 0;
}

inline int cmd_reward(int argc, char** argv) {
  const std::string sub = argc > 2 ? argv[2] : "";
  if (sub == "train") return cmd_reward_train(argc, argv);
  if (sub == "score") return cmd_reward_score(argc, argv);
  if (sub == "--help" || sub == "-h" || sub == "help") {
    std::cout << reward_help;
    return 0;
  }
  std::fprintf(stderr, "prefopt reward: expected 'train' or 'score'\n%s", reward_help);
  return 2;
}

} // namespace prefopt::cli
