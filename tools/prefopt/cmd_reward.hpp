// tools/prefopt/cmd_reward.hpp — `prefopt reward train` and `prefopt reward score`.
//
//   prefopt reward train --config run.json [--set key.path=value ...]
//   prefopt reward score --model DIR [--adapter DIR] --data pairs.jsonl --out scores.jsonl [--batch-size N]
// train: a Bradley–Terry reward model as TRL's RewardTrainer trains one (train/reward_trainer.hpp).
// run.json is `prefopt train`'s configuration (model, adapter, data, lora, optimizer, training,
// output; loss and reference are not used) plus a "reward" object: {"center_rewards_coefficient": null}.
// optimizer.learning_rate defaults to RewardConfig's 1e-4 here. The model is a reward model
// (score.weight present) or a causal LM that gets a new head drawn from training.seed; `adapter`
// continues training a LoRA reward model that this command saved (final/: the PEFT adapter with
// the score head) on that base model. Each pair's sequences are prompt + chosen and prompt +
// rejected; a "margin" column of the data file is TRL's margin.
// The run is train::runner's, as `prefopt train`'s: batches planned per epoch from training.seed,
// metrics under TRL's names in output.dir/metrics.jsonl (+ .csv) and TensorBoard events
// (output.tensorboard), evaluation every training.eval_steps (0: each epoch), early stopping
// (training.early_stopping_metric, e.g. eval_loss or eval_accuracy with greater_is_better),
// checkpoints every training.save_steps (checkpoint-<step>/: the classifier, or the adapter with
// the score head; optimizer.safetensors; trainer_state.json), training.save_total_limit,
// training.resume continuing exactly. The model goes to output.dir/final as a
// *ForSequenceClassification checkpoint (LoRA: final/ is the PEFT adapter with the score head,
// merged/ the merged classifier).
// score: one JSON line per pair {"line", "chosen_score", "rejected_score"}; --adapter scores a
// LoRA reward model (final/ of a LoRA run) on its base model.
// Backends: train runs where run.json's backend (eigen or cuda) and training.precision say, as
// prefopt train; score takes --backend and --precision, as prefopt logps. The cuda instantiations
// are compiled in loop_cuda.cpp, where this program is built with the CUDA backend.
#pragma once

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "cmd_train.hpp"
#include "prefopt/data/jsonl.hpp"
#include "prefopt/models/reward_io.hpp"
#include "prefopt/train/metrics_log.hpp"
#include "prefopt/train/reward_trainer.hpp"

namespace prefopt::cli {

inline const char* reward_help =
    "usage: prefopt reward train --config run.json [--set key.path=value ...]\n"
    "       prefopt reward score --model DIR [--adapter DIR] --data pairs.jsonl[.gz] --out scores.jsonl [options]\n"
    "  train: Bradley-Terry reward model (TRL RewardTrainer)\n"
    "  score: chosen_score / rejected_score per pair line\n"
    "run `prefopt reward train --help` or `prefopt reward score --help` for their options\n";
inline const cli::command_info reward_train_info{
    "prefopt reward train",
    "Trains a Bradley-Terry reward model (TRL RewardTrainer); run.json as prefopt train's plus\n"
    "\"reward\": {\"center_rewards_coefficient\": number or null}; a \"margin\" data column is used.\n"
    "Checkpoints, training.resume=true, early stopping, TensorBoard and adapter (continue a LoRA\n"
    "reward model) as in prefopt train."};
inline const cli::command_info reward_score_info{"prefopt reward score",
                                                 "Writes chosen_score / rejected_score per pair line."};

// The model directory as a reward model of type reward_model<Body> (Body: gpt2 or llama over B).
template <class B, class Fn> void with_reward_model(const B& backend, const std::filesystem::path& dir, std::uint64_t seed, Fn&& fn) {
  const auto cfg = models::transformer_config::from_file(dir / "config.json");
  const bool classifier = models::checkpoint_reader(dir).contains("score.weight");
  auto run = [&](auto tag) {
    using M = typename decltype(tag)::type;
    auto rm = classifier ? models::load_reward_model<M>(backend, dir) : models::reward_from_causal_lm<M>(backend, dir, seed);
    fn(rm, classifier);
  };
  if (cfg.arch == models::architecture::gpt2) run(std::type_identity<models::gpt2<B>>{});
  else run(std::type_identity<models::llama<B>>{});
}

// `loaded` with LoRA adapters `lc` (drawn from `seed`) on its body and its score head, passed to fn.
template <class RM, class Fn> void with_lora_reward_model(RM& loaded, const models::lora_config& lc, std::uint64_t seed, Fn&& fn) {
  using Body = typename RM::body_type;
  std::vector<float> head(loaded.head_parameters().size());
  loaded.backend().download(loaded.head_parameters(), std::span<float>(head));
  models::reward_model<models::lora<Body>> rm(models::lora<Body>(std::move(loaded.body()), lc, seed), loaded.pad_token_id());
  rm.backend().upload(std::span<const float>(head), rm.head_parameters());
  fn(rm);
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

// What one `prefopt reward train` run needs once its configuration and data are read.
struct reward_run {
  const train::run_config& cfg;
  const train::bradley_terry& bt;
  const data::tokenized_preferences& train_data;
  const data::tokenized_preferences* eval_data;
  const std::vector<double>& margin;
  const std::vector<double>& eval_margin;
  const train::runner_options& ro;
  long total;
  const train::training_args& args;
  const optim::adamw& opt;
};

// What reward training holds at its peak (models/memory_estimate.hpp): the body as `prefopt train`
// counts a policy (its flat buffer, an untied lm_head included, and its gradients), two rows per
// pair (prompt + chosen, prompt + rejected), AdamW's two moments, no reference model; plus the
// score head [C] with its gradient and two moments, and the head's buffers per row (h, dh [R × C], s [R]).
inline models::memory_estimate estimate_reward_memory(const train::run_config& cfg, const models::transformer_config& mc,
                                                      std::size_t row_length) {
  models::run_shape r = run_shape_of(cfg, mc, row_length, 2, true);
  r.optimizer_slots = 2;  // AdamW (the only optimizer reward training takes)
  models::memory_estimate m = models::estimate_memory(mc, r);
  const std::uint64_t head = std::uint64_t(mc.hidden) * 4;
  m.parameters += head, m.gradients += head, m.optimizer += 2 * head;
  m.activations += std::uint64_t(r.rows) * (2 * std::uint64_t(mc.hidden) + 1) * 4;
  return m;
}

// run.json fields that `prefopt train` honours and reward training cannot: an error naming the
// field rather than a setting read and ignored (docs/reward_models.md lists the ones that do not apply).
inline void refuse_unsupported(const train::run_config& cfg, const std::string& path) {
  auto refuse = [&](const std::string& field, const std::string& why) {
    throw config_error(path + ": field '" + field + "'", "not supported by prefopt reward train (" + why + ")");
  };
  if (cfg.training.zero != 0) refuse("training.zero", "it trains in one process, not data parallel under mpirun");
  if (cfg.data.pad_to_multiple_of != 0) refuse("data.pad_to_multiple_of", "each sequence is one packed row, never padded");
}

// Reward training on `backend` (eigen here; cuda in loop_cuda.cpp): the memory-fit check, the
// model, its LoRA adapters when configured, the runner, and final/ (+ merged/ for LoRA).
template <class B> void train_reward(const B& backend, const reward_run& run) {
  const auto& [cfg, bt, train_data, eval_data, margin, eval_margin, ro, total, args, opt] = run;
  const auto mc = models::transformer_config::from_file(std::filesystem::path(cfg.model) / "config.json");
  const std::size_t longest = std::max(data::longest_row(train_data, false), eval_data ? data::longest_row(*eval_data, false) : 0);
  check_estimate(estimate_reward_memory(cfg, mc, longest), memory_limit_gib_on(cfg, backend), cfg, std::cerr);
  with_reward_model(backend, cfg.model, args.seed, [&](auto& loaded, bool classifier) {
    if (!loaded.pad_token_id()) loaded.set_pad_token_id(train_data.pad_token_id);
    auto go = [&](auto& rm, const std::string& start) {
      rm.body().set_gradient_checkpointing(cfg.training.gradient_checkpointing);
      train::reward_trainer t(rm, bt, opt, args);
      t.policy().base_model_name_or_path = cfg.model;
      const train::reward_dataset train_set{&train_data, margin, rm.pad_token_id()};
      std::optional<train::reward_dataset> eval_set;
      if (eval_data) eval_set = train::reward_dataset{eval_data, eval_margin, rm.pad_token_id()};
      train::runner r(t, train_set, eval_set ? &*eval_set : nullptr, ro);
      std::cerr << "prefopt: reward model (" << rm.body().config().model_type << start
                << (rm.body().adapters().empty() ? "" : " + LoRA") << checkpointing_label(rm.body()) << "), "
                << rm.body_parameters().size() + rm.head_parameters().size() << " trainable parameters; " << train_data.size()
                << " training pairs" << (eval_set ? ", " + std::to_string(eval_set->size()) + " eval pairs" : std::string()) << "; "
                << total << " steps\n";
      const train::run_summary s = r.run();
      const auto final_dir = std::filesystem::path(cfg.output.dir) / "final";
      if constexpr (requires { rm.body().merge_into_base(); }) {
        write_output_dir(cfg, final_dir, [&](const std::filesystem::path& d) { models::save_reward_adapter(rm, d, cfg.model); });
        rm.body().merge_into_base();
        write_output_dir(cfg, std::filesystem::path(cfg.output.dir) / "merged",
                         [&](const std::filesystem::path& d) { models::save_reward_model(rm, d, ro.saved_dtype); });
      } else {
        write_output_dir(cfg, final_dir, [&](const std::filesystem::path& d) { models::save_reward_model(rm, d, ro.saved_dtype); });
      }
      std::cerr << summary_line(s, final_dir);
    };
    if (cfg.adapter) {  // continue a LoRA reward model: its adapters and score head
      with_lora_reward_model(loaded, read_adapter_config(*cfg.adapter), args.seed, [&](auto& rm) {
        models::load_reward_adapter(rm, *cfg.adapter);
        go(rm, ", from adapter " + *cfg.adapter);
      });
    } else if (cfg.lora) {
      const auto mc = loaded.body().config();
      models::lora_config lc{.r = cfg.lora->r, .alpha = cfg.lora->alpha, .dropout = cfg.lora->dropout,
                             .target_modules = cfg.lora->target_modules.empty() ? default_lora_targets(mc) : cfg.lora->target_modules,
                             .use_rslora = cfg.lora->use_rslora};
      with_lora_reward_model(loaded, lc, args.seed, [&](auto& rm) { go(rm, classifier ? "" : ", new score head"); });
    } else {
      go(loaded, classifier ? "" : ", new score head");
    }
  });
}

// The chosen and rejected score of every pair as JSON lines, `batch` pairs per forward pass, by the
// reward model at `dir` (with a LoRA reward model's `adapter` when given) on `backend`.
template <class B>
std::string score_rewards(const B& backend, const std::filesystem::path& dir, const std::string& adapter,
                          const data::tokenized_preferences& d, std::size_t batch) {
  std::string out;
  auto score = [&](auto& rm) {
    for (std::size_t s = 0; s < d.size(); s += batch) {
      std::vector<models::tokenized_pair> pairs(d.pairs.begin() + std::ptrdiff_t(s), d.pairs.begin() + std::ptrdiff_t(std::min(d.size(), s + batch)));
      const auto sc = rm.forward(models::pack_reward_pairs(pairs, rm.pad_token_id()), {.keep_activations = false});
      for (std::size_t i = 0; i < pairs.size(); ++i)
        out += nlohmann::json{{"line", d.lines[s + i]}, {"chosen_score", sc[i]}, {"rejected_score", sc[pairs.size() + i]}}.dump() + "\n";
    }
  };
  with_reward_model(backend, dir, 0, [&](auto& rm, bool) {
    if (adapter.empty()) return score(rm);
    // as reward training set it: the model's pad token, else the data's (the tokenizer's)
    if (!rm.pad_token_id()) rm.set_pad_token_id(d.pad_token_id);
    with_lora_reward_model(rm, read_adapter_config(adapter), 0, [&](auto& lrm) {
      models::load_reward_adapter(lrm, adapter);
      score(lrm);
    });
  });
  return out;
}

#ifdef PREFOPT_CLI_CUDA
extern template void train_reward<backends::cuda>(const backends::cuda&, const reward_run&);
extern template std::string score_rewards<backends::cuda>(const backends::cuda&, const std::filesystem::path&, const std::string&,
                                                          const data::tokenized_preferences&, std::size_t);
#endif

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
  if (cfg.optimizer.type != "adamw") throw config_error(path + ": field 'optimizer.type'", "reward training uses adamw");
  refuse_unsupported(cfg, path);
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
  const long total = ro.max_steps > 0 ? ro.max_steps
                                      : long(ro.epochs) * train::steps_per_epoch(train_data.size(), ro.batch_size, ro.gradient_accumulation_steps);
  train::training_args args;
  args.max_grad_norm = cfg.optimizer.max_grad_norm;
  args.seed = std::uint64_t(cfg.training.seed);
  args.disable_dropout = cfg.training.disable_dropout;
  args.schedule = make_schedule(cfg.optimizer, total);
  const optim::adamw opt{.lr = cfg.optimizer.learning_rate, .beta1 = cfg.optimizer.beta1, .beta2 = cfg.optimizer.beta2,
                         .eps = cfg.optimizer.eps, .weight_decay = cfg.optimizer.weight_decay};
  const reward_run run{cfg, bt, train_data, sets.second ? &*sets.second : nullptr, margin, eval_margin, ro, total, args, opt};
  on_backend(cfg.backend, parse_precision(cfg.training.precision, "config: field 'training.precision'"), "config: field 'backend'",
             [&](const auto& be) { train_reward(be, run); });
  return 0;
}

inline int cmd_reward_score(int argc, char** argv) {
  const args a(argc, argv, 3, reward_score_info,
               {{"model", "DIR", "reward model directory (with score.weight), or the base model with --adapter; required"},
                {"adapter", "DIR", "a LoRA reward model's final/ folder (PEFT adapter with the score head)"},
                {"data", "FILE", "preference pairs, JSONL in a TRL format (.gz too); required"},
                {"out", "FILE", "where the scores go, JSONL; required"},
                {"batch-size", "N", "pairs per forward pass (default 8)"},
                {"strict", "", "stop at the first bad line instead of skipping and counting it"},
                {"tokenizer", "FILE", "tokenizer.json for text data when the model directory has none"},
                {"chat-template", "NAME", "chat template for conversational data"},
                {"max-length", "N", "truncate text pairs to N tokens (default: no truncation)"},
                {"backend", "NAME", "eigen (the CPU, default) or cuda (one NVIDIA GPU, where prefopt was built with CUDA)"},
                {"precision", "P", "fp32 (default) or bf16: matrix products and attention on bf16-rounded inputs, as training.precision"}});
  if (a.flag("help")) return 0;
  const std::string data_path = a.require("data"), out_path = a.require("out");
  const long batch = a.integer("batch-size", 8);
  if (batch <= 0) throw config_error("--batch-size", "must be > 0");
  train::run_config cfg = data_flags(a);
  const data::tokenized_preferences d = tokenize_file(data_path, cfg, nullptr, std::cerr);
  const auto dir = std::filesystem::path(cfg.model);
  const std::string adapter = a.get("adapter");
  if (adapter.empty() && !models::checkpoint_reader(dir).contains("score.weight"))
    throw format_error(dir.string() + ": tensor 'score.weight'", "missing: not a reward model (train one with prefopt reward train)");
  const precision p = parse_precision(a.get("precision", "fp32"), "--precision");
  const std::string out = on_backend(a.get("backend", "eigen"), p, "--backend",
                                     [&](const auto& be) { return score_rewards(be, dir, adapter, d, std::size_t(batch)); });
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
