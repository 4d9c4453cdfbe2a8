// tools/prefopt/cmd_train.hpp — `prefopt train` and `prefopt eval`.
//
//   prefopt train --config run.json [--set key.path=value ...] [--print-config]
//   prefopt eval  --config run.json [--set ...] [--data eval.jsonl]
// The configuration is train::run_config (train/config.hpp): one source of truth, printed with
// every default by --print-config. Unknown keys, wrong types and impossible values are errors that
// name the key.
#pragma once

#include <cstdio>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "prefopt/comm/any.hpp"
#include "prefopt/comm/collectives.hpp"
#include "prefopt/losses/any_loss.hpp"
#include "prefopt/optim/any_optimizer.hpp"
#include "prefopt/train/kto_trainer.hpp"
#include "prefopt/train/reference_cache.hpp"
#include "prefopt/train/reference_dynamic.hpp"
#include "prefopt/train/runner.hpp"
#include "prefopt/train/trainer.hpp"
#include "backend_choice.hpp"
#include "session.hpp"
#ifdef PREFOPT_CLI_CUDA
#include "prefopt/backends/cuda.hpp"
#endif

namespace prefopt::cli {

// " + LoRA", with its dropout and whether training.disable_dropout turns it off (as TRL does).
template <class M> std::string lora_label(const M& policy, const train::training_args& args) {
  if (policy.adapters().empty()) return "";
  const double p = policy.adapter_dropout();
  if (p == 0.0) return " + LoRA";
  std::ostringstream o;
  o << " + LoRA (lora_dropout " << p << (args.disable_dropout ? ", off: training.disable_dropout is true" : "") << ")";
  return o.str();
}
// " + gradient checkpointing" when training.gradient_checkpointing is on.
template <class M> const char* checkpointing_label(const M& policy) {
  return policy.gradient_checkpointing() ? " + gradient checkpointing" : "";
}

inline const char* train_about =
    "Preference optimization of a model directory on a JSONL dataset, from run.json (eval: the loss and\n"
    "TRL's metrics on held-out pairs). --set overrides one option, e.g.\n"
    "--set loss.type='[\"sigmoid\",\"sft\"]' --set training.batch_size=4.\n"
    "training.resume=true continues from the newest checkpoint in output.dir (a finished run only\n"
    "has its final output completed); output.overwrite=true starts afresh in a folder holding an\n"
    "earlier run's checkpoints, which a fresh run otherwise refuses.\n"
    "backend=cuda trains on one NVIDIA GPU (a build with the CUDA backend); the default, eigen, on the CPU.\n"
    "Under `mpirun -np N prefopt train ...` the ranks train data parallel: training.batch_size is the\n"
    "global micro-batch (each rank takes batch_size / N pairs) and rank 0 writes every file.";

// The ranks of this run: MPI's world when started by mpirun (and built with MPI), else one process.
inline comm::any communicator() {
#ifdef PREFOPT_HAVE_MPI
  if (comm::mpi_environment::launched()) return comm::mpi{};
#endif
  return comm::none{};
}

// With ZeRO-1, what this rank's optimizer state holds, measured from its buffers.
template <class Trainer> void log_zero(Trainer& t, std::size_t parameters, std::ostream& log) {
  const auto& z = t.zero();
  if (!z) return;
  std::size_t values = 0;
  for (const auto& b : t.optimizer_state().buffers()) values += b.data.size();
  const double mib = double(values) * sizeof(float) / (1024.0 * 1024.0);
  const double whole = z->size() ? mib * double(parameters) / double(z->size()) : 0.0;
  std::ostringstream o;
  o << "prefopt: ZeRO-1: optimizer state " << mib << " MiB on rank 0 (" << z->size() << " of " << parameters
    << " parameters), " << whole << " MiB without ZeRO-1\n";
  log << o.str();
}

// The hash of every pair's (example's) tokens, to compare the data of the ranks.
inline std::uint64_t data_hash(const data::tokenized_preferences& d) {
  std::uint64_t h = comm::hash_bytes(nullptr, 0);
  auto add = [&](const auto& v) { h = comm::hash_bytes(v.data(), v.size() * sizeof(v[0]), h); };
  for (const auto& p : d.pairs) add(p.prompt), add(p.chosen), add(p.rejected), add(p.rejected_prompt);
  return h;
}
inline std::uint64_t data_hash(const data::tokenized_unpaired& d) {
  std::uint64_t h = comm::hash_bytes(nullptr, 0);
  auto add = [&](const auto& v) { h = comm::hash_bytes(v.data(), v.size() * sizeof(v[0]), h); };
  for (const auto& e : d.examples) {
    add(e.prompt), add(e.completion);
    const char label = e.label ? 1 : 0;
    h = comm::hash_bytes(&label, 1, h);
  }
  return h;
}

// The tokenizer files the run read, copied beside saved weights so the folder is complete for the
// next command (`prefopt logps --model final/`, transformers' from_pretrained): tokenizer.json
// from data.tokenizer or the model folder, and the other tokenizer files where the model folder
// (first) or the tokenizer's folder has them, as the run itself reads them.
inline void copy_tokenizer_files(const train::run_config& cfg, const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  const fs::path model(cfg.model);
  const fs::path tok = cfg.data.tokenizer ? fs::path(*cfg.data.tokenizer) : model / "tokenizer.json";
  auto copy = [&](const fs::path& from, const std::string& name) {
    if (fs::is_regular_file(from) && !fs::exists(dir / name)) fs::copy_file(from, dir / name);
  };
  copy(tok, "tokenizer.json");
  for (const char* name : {"tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                           "added_tokens.json", "chat_template.jinja"}) {
    copy(model / name, name);
    copy(tok.parent_path() / name, name);
  }
  // A whole model (not a PEFT adapter) also keeps its generation defaults, as save_pretrained does.
  if (fs::exists(dir / "config.json")) copy(model / "generation_config.json", "generation_config.json");
}

// Writes final/ (or merged/) as a whole: into <dir>.tmp, then renamed into place, so a crash leaves
// the old directory or the new one, never a mix; a resumed finished run writes it again. The
// folder gets the run's tokenizer files beside the weights (copy_tokenizer_files).
template <class Write> void write_output_dir(const train::run_config& cfg, const std::filesystem::path& dir, Write&& write) {
  const auto tmp = std::filesystem::path(dir.string() + ".tmp");
  std::filesystem::remove_all(tmp);
  write(tmp);
  copy_tokenizer_files(cfg, tmp);
  train::detail::publish_directory(tmp, dir);
}

inline std::string summary_line(const train::run_summary& s, const std::filesystem::path& final_dir) {
  std::ostringstream o;
  o << "prefopt: ";
  if (s.already_finished) o << "finished run (step " << s.steps << "), nothing trained";
  else o << s.steps << " steps in " << s.seconds << " s" << (s.stopped_early ? " (stopped early)" : "");
  if (s.skipped_steps) o << ", " << s.skipped_steps << " skipped";
  o << "; model saved to " << final_dir.string() << "\n";
  return o.str();
}

inline optim::any_optimizer make_optimizer(const train::optimizer_settings& o) {
  if (o.type == "adamw")
    return optim::adamw{.lr = o.learning_rate, .beta1 = o.beta1, .beta2 = o.beta2, .eps = o.eps, .weight_decay = o.weight_decay};
  if (o.type == "sgd") return optim::sgd{.lr = o.learning_rate, .momentum = o.momentum, .weight_decay = o.weight_decay};
  throw config_error("config: field 'optimizer.type'", "'" + o.type + "' is not one of adamw, sgd");
}

inline optim::schedule make_schedule(const train::optimizer_settings& o, long total) {
  optim::schedule s;
  s.total_steps = total;
  s.warmup_steps = o.warmup_steps;
  s.warmup_ratio = o.warmup_ratio;
  if (o.lr_scheduler_type == "linear") s.kind = optim::schedule_kind::linear;
  else if (o.lr_scheduler_type == "cosine") s.kind = optim::schedule_kind::cosine;
  else if (o.lr_scheduler_type == "constant") s.kind = optim::schedule_kind::constant;
  else if (o.lr_scheduler_type == "constant_with_warmup") s.kind = optim::schedule_kind::constant_with_warmup;
  else throw config_error("config: field 'optimizer.lr_scheduler_type'", "'" + o.lr_scheduler_type + "' is not one of linear, cosine, constant, constant_with_warmup");
  return s;
}

inline train::runner_options runner_options_of(const train::run_config& c) {
  train::runner_options r;
  r.epochs = c.training.num_train_epochs;
  r.max_steps = c.training.max_steps;
  r.batch_size = std::size_t(c.training.batch_size);
  r.gradient_accumulation_steps = c.training.gradient_accumulation_steps;
  r.seed = std::uint64_t(c.training.seed);
  r.prefix_sharing = c.data.prefix_sharing;
  r.pad_to_multiple_of = c.data.pad_to_multiple_of;
  r.length_bucketing = c.data.length_bucketing;
  r.logging_steps = c.training.logging_steps;
  r.eval_steps = c.training.eval_steps;
  r.save_steps = c.training.save_steps;
  r.save_total_limit = c.training.save_total_limit;
  r.early_stopping_metric = c.training.early_stopping_metric;
  r.early_stopping_patience = c.training.early_stopping_patience;
  r.greater_is_better = c.training.greater_is_better;
  r.output_dir = c.output.dir;
  r.tensorboard = c.output.tensorboard;
  r.resume = c.training.resume;
  r.overwrite = c.output.overwrite;
  r.max_consecutive_skipped_steps = c.training.max_consecutive_skipped_steps;
  r.saved_dtype = c.output.dtype == "bf16" ? io::dtype::bf16 : io::dtype::f32;
  return r;
}

// Trains (or, with evaluate_only, evaluates) `policy` as the configuration says. A reference copy
// is loaded from `reference_model` when given (prefopt iterate: the initial model), else cfg.model.
template <class M>
int run_training(M& policy, const train::run_config& cfg, data::tokenized_preferences& train_data,
                 data::tokenized_preferences* eval_data, bool evaluate_only, comm::any& world,
                 const std::string& reference_model = {}) {
  const std::string& ref_dir = reference_model.empty() ? cfg.model : reference_model;
  using base_model = models::base_model_t<M>;
  std::ostream& log = std::cerr;
  losses::any_loss loss(cfg.loss);
  const bool lora = !policy.adapters().empty();
  std::string strategy = cfg.reference.strategy;
  // auto: as TRL — a continued adapter (cfg.adapter) is its own reference (TRL's frozen "ref" copy).
  if (strategy == "auto")
    strategy = loss.reference_free() ? "none" : lora && cfg.adapter ? "initial_adapter" : lora ? "adapter_disabled" : "frozen";
  // Reference models, as the strategy needs them.
  std::unique_ptr<base_model> ref_model;
  const bool needs_copy = strategy == "frozen" || strategy == "synced" || (strategy == "precomputed" && !lora);
  if (needs_copy) {
    if (strategy == "synced" && lora) throw config_error("config: field 'reference.strategy'", "synced (TR-DPO) does not work with LoRA");
    ref_model = std::make_unique<base_model>(policy.backend(), policy.config());
    models::load_weights(*ref_model, ref_dir);
  }
  models::forward_options ref_opt;
  ref_opt.keep_activations = false;
  ref_opt.ld_alpha = cfg.loss.ld_alpha;
  using ref_type = train::reference::any<M, base_model>;
  ref_type ref;
  if (strategy == "none") ref = ref_type(train::reference::none{});
  else if (strategy == "frozen") ref = ref_type(train::reference::frozen<base_model>{ref_model.get()});
  else if (strategy == "adapter_disabled") {
    if (!lora) throw config_error("config: field 'reference.strategy'", "adapter_disabled needs LoRA training (set lora or adapter)");
    ref = ref_type(train::reference::adapter_disabled<M>{&policy});
  } else if (strategy == "initial_adapter") {
    if (!lora) throw config_error("config: field 'reference.strategy'", "initial_adapter needs LoRA training (set adapter or lora)");
    ref = ref_type(train::reference::initial_adapter<M>::of(policy));
  } else if (strategy == "synced") {
    ref = ref_type(train::reference::synced<base_model>{ref_model.get(), cfg.reference.sync_steps, cfg.reference.mixup_alpha});
  } else if (strategy == "precomputed") {
    const std::filesystem::path cache = cfg.reference.cache_dir ? std::filesystem::path(*cfg.reference.cache_dir)
                                                                : std::filesystem::path(cfg.output.dir) / "ref_cache";
    // A continued adapter is precomputed with that adapter on, as TRL does (its "ref" adapter).
    const bool with_adapter = lora && cfg.adapter.has_value();
    const std::string key = train::model_fingerprint(ref_dir, cfg.adapter.value_or("")) +
                            (with_adapter ? ":initial-adapter" : lora ? ":adapters-off" : "");
    auto forward = [&](const models::token_batch& b, models::sequence_logps& out) {
      models::forward_options o = ref_opt;
      o.adapters = with_adapter;
      if (ref_model) ref_model->forward(b, out, o);
      else policy.forward(b, out, o);
    };
    for (auto* d : {&train_data, eval_data})
      if (d) train::precompute_reference(*d, key, cfg.data.prefix_sharing, cfg.loss.ld_alpha, cache,
                                         std::size_t(cfg.reference.precompute_batch_size > 0 ? cfg.reference.precompute_batch_size
                                                                                             : cfg.training.batch_size),
                                         forward, {}, world);
    ref_model.reset();  // the point of precomputing: no second model in memory while training
    ref = ref_type(train::reference::precomputed{});
  } else {
    throw config_error("config: field 'reference.strategy'", "'" + strategy + "' is not one of auto, frozen, precomputed, adapter_disabled, initial_adapter, none, synced");
  }
  train::runner_options ro = runner_options_of(cfg);
  train::training_args args;
  args.max_grad_norm = cfg.optimizer.max_grad_norm;
  args.seed = std::uint64_t(cfg.training.seed);
  args.disable_dropout = cfg.training.disable_dropout;
  args.zero = cfg.training.zero;
  args.overlap_reduce = cfg.training.overlap_reduce;
  args.fused_head = cfg.training.fused_head;
  args.ld_alpha = cfg.loss.ld_alpha;
  if (evaluate_only) args.schedule = {.kind = optim::schedule_kind::constant};
  else args.schedule = make_schedule(cfg.optimizer, ro.max_steps > 0 ? ro.max_steps
                                                              : long(ro.epochs) * train::steps_per_epoch(train_data.size(), ro.batch_size,
                                                                                                           ro.gradient_accumulation_steps));
  train::trainer<M, losses::any_loss, optim::any_optimizer, ref_type, comm::any> t(policy, loss, make_optimizer(cfg.optimizer), ref,
                                                                                  args, world);
  train::runner r(t, train_data, eval_data, ro);
  log_zero(t, policy.parameters().size(), log);
  log << "prefopt: " << policy.config().model_type << lora_label(policy, args) << checkpointing_label(policy) << ", " << policy.parameters().size()
      << " trainable parameters; loss " << [&] {
           std::string s;
           for (std::size_t i = 0; i < cfg.loss.type.size(); ++i) s += (i ? "+" : "") + cfg.loss.type[i];
           return s;
         }() << ", reference " << strategy << "; " << train_data.size() << " training pairs"
      << (eval_data ? ", " + std::to_string(eval_data->size()) + " eval pairs" : std::string())
      << (world.size() > 1 ? "; " + std::to_string(world.size()) + " ranks" : std::string()) << "\n";
  if (evaluate_only) {
    if (!eval_data) throw config_error("prefopt eval", "no evaluation data (give --data or data.eval)");
    const auto m = r.evaluate();
    if (world.rank() == 0) std::cout << reflect::ordered_json(m).dump(2) << "\n";
    return 0;
  }
  const train::run_summary s = r.run();
  const auto final_dir = std::filesystem::path(cfg.output.dir) / "final";
  if (world.rank() != 0) return 0;  // rank 0 writes the model
  write_output_dir(cfg, final_dir, [&](const std::filesystem::path& d) { train::save_model_state(policy, d, ro.saved_dtype); });
  if constexpr (requires { policy.merge_into_base(); })
    if (cfg.output.save_merged) {
      policy.merge_into_base();
      write_output_dir(cfg, std::filesystem::path(cfg.output.dir) / "merged",
                       [&](const std::filesystem::path& d) { models::save_pretrained(policy, d, ro.saved_dtype); });
    }
  log << summary_line(s, final_dir);
  return 0;
}

inline bool is_unpaired_loss(const losses::loss_settings& l) {
  return l.type.size() == 1 && (l.type[0] == "kto" || l.type[0] == "apo_zero_unpaired");
}

// KTO / apo_zero_unpaired on unpaired examples (TRL's KTOTrainer).
template <class M>
int run_unpaired_training(M& policy, const train::run_config& cfg, const data::tokenized_unpaired& train_data,
                          const data::tokenized_unpaired* eval_data, bool evaluate_only, comm::any& world) {
  using base_model = models::base_model_t<M>;
  const bool lora = !policy.adapters().empty();
  std::string strategy = cfg.reference.strategy;
  if (strategy == "auto") strategy = lora ? "adapter_disabled" : "frozen";
  std::unique_ptr<base_model> ref_model;
  train::unpaired_reference<base_model> ref;
  if (strategy == "frozen") {
    ref_model = std::make_unique<base_model>(policy.backend(), policy.config());
    models::load_weights(*ref_model, cfg.model);
    ref.model = ref_model.get();
  } else if (strategy == "adapter_disabled") {
    if (!lora) throw config_error("config: field 'reference.strategy'", "adapter_disabled needs LoRA training (set lora or adapter)");
    ref.adapters_off = true;
  } else {
    throw config_error("config: field 'reference.strategy'", "unpaired training takes auto, frozen or adapter_disabled, not '" + strategy + "'");
  }
  train::runner_options ro = runner_options_of(cfg);
  train::training_args args;
  args.max_grad_norm = cfg.optimizer.max_grad_norm;
  args.seed = std::uint64_t(cfg.training.seed);
  args.disable_dropout = cfg.training.disable_dropout;
  args.zero = cfg.training.zero;
  args.overlap_reduce = cfg.training.overlap_reduce;
  args.fused_head = cfg.training.fused_head;
  if (evaluate_only) args.schedule = {.kind = optim::schedule_kind::constant};
  else args.schedule = make_schedule(cfg.optimizer, ro.max_steps > 0 ? ro.max_steps
                                                                    : long(ro.epochs) * train::steps_per_epoch(train_data.size(), ro.batch_size,
                                                                                                                 ro.gradient_accumulation_steps));
  auto go = [&](auto loss) {
    train::kto_trainer<M, decltype(loss), optim::any_optimizer, base_model, comm::any> t(policy, loss, make_optimizer(cfg.optimizer),
                                                                                        ref, args, world);
    train::runner r(t, train_data, eval_data, ro);
    log_zero(t, policy.parameters().size(), std::cerr);
    std::cerr << "prefopt: " << policy.config().model_type << lora_label(policy, args) << checkpointing_label(policy) << ", " << policy.parameters().size()
              << " trainable parameters; loss " << decltype(loss)::name << ", reference " << strategy << "; "
              << train_data.size() << " training examples\n";
    if (evaluate_only) {
      if (!eval_data) throw config_error("prefopt eval", "no evaluation data (give --data or data.eval)");
      const auto m = r.evaluate();
      if (world.rank() == 0) std::cout << reflect::ordered_json(m).dump(2) << "\n";
      return;
    }
    const train::run_summary s = r.run();
    const auto final_dir = std::filesystem::path(cfg.output.dir) / "final";
    if (world.rank() != 0) return;  // rank 0 writes the model
    write_output_dir(cfg, final_dir, [&](const std::filesystem::path& d) { train::save_model_state(policy, d, ro.saved_dtype); });
    std::cerr << summary_line(s, final_dir);
  };
  if (cfg.loss.type[0] == "kto")
    go(losses::kto{.beta = cfg.loss.beta, .desirable_weight = cfg.loss.desirable_weight, .undesirable_weight = cfg.loss.undesirable_weight});
  else
    go(losses::apo_zero_unpaired{.beta = cfg.loss.beta});
  return 0;
}

// The training set (none when only evaluating) and the eval set: data.eval, or data.eval_fraction
// split off the training set in a seeded order (no eval set when that leaves none).
template <class Set, class Tokenize>
std::pair<Set, std::optional<Set>> load_datasets(const train::run_config& cfg, bool evaluate_only, Tokenize&& tokenize) {
  Set train_set;
  if (!evaluate_only) train_set = tokenize(cfg.data.train);
  std::optional<Set> eval_set;
  if (cfg.data.eval) {
    eval_set = tokenize(*cfg.data.eval);
  } else if (!evaluate_only && cfg.data.eval_fraction > 0.0) {
    eval_set = split_eval(train_set, cfg.data.eval_fraction, std::uint64_t(cfg.training.seed));
    if (eval_set->size() == 0) eval_set.reset();
  }
  return {std::move(train_set), std::move(eval_set)};
}

// What a training or evaluation run reads: the tokenized data (pairs, or unpaired examples for
// KTO-style losses), its longest row (sizes the memory check) and whether only to evaluate.
template <class Set> struct run_inputs {
  Set& train;
  Set* eval;
  std::size_t longest_row;
  bool evaluate_only;
};

// A training or evaluation run on backend B. Each backend's instantiation is compiled once, in a
// translation unit of its own (train_eigen.cpp, train_cuda.cpp): they are the largest pieces of
// the program, and so they build in parallel with main.cpp and with each other.
template <class B>
int train_on(const train::run_config& cfg, const run_inputs<data::tokenized_preferences>& in, comm::any& world) {
  int rc = 0;
  with_policy<B>(cfg, [&](auto& policy) { rc = run_training(policy, cfg, in.train, in.eval, in.evaluate_only, world); },
                 in.longest_row, cfg.data.prefix_sharing ? 1 : 2, !in.evaluate_only);
  return rc;
}
template <class B>
int train_on(const train::run_config& cfg, const run_inputs<data::tokenized_unpaired>& in, comm::any& world) {
  int rc = 0;
  with_policy<B>(cfg, [&](auto& policy) { rc = run_unpaired_training(policy, cfg, in.train, in.eval, in.evaluate_only, world); },
                 in.longest_row, 2, !in.evaluate_only);
  return rc;
}

extern template int train_on<backends::eigen>(const train::run_config&, const run_inputs<data::tokenized_preferences>&, comm::any&);
extern template int train_on<backends::eigen>(const train::run_config&, const run_inputs<data::tokenized_unpaired>&, comm::any&);
#ifdef PREFOPT_CLI_CUDA
extern template int train_on<backends::cuda>(const train::run_config&, const run_inputs<data::tokenized_preferences>&, comm::any&);
extern template int train_on<backends::cuda>(const train::run_config&, const run_inputs<data::tokenized_unpaired>&, comm::any&);
#endif

// backend: "cuda" — one GPU, one process, where this program was built with CUDA and a device is
// visible; otherwise an error that says which of these is missing.
template <class Set> int on_cuda([[maybe_unused]] const train::run_config& cfg, [[maybe_unused]] const run_inputs<Set>& in,
                                 [[maybe_unused]] comm::any& world) {
  const std::string field = "config: field 'backend'";
#ifdef PREFOPT_CLI_CUDA
  if (world.size() > 1)
    throw config_error(field, "cuda trains in one process from the command line (under mpirun, use the eigen backend; "
                              "NCCL data parallelism is the library's comm::nccl)");
  require_cuda_device(field);
  return train_on<backends::cuda>(cfg, in, world);
#else
  no_cuda_backend(field);
#endif
}

inline int cmd_train(int argc, char** argv, bool evaluate_only) {
  const args a(argc, argv, 2, {evaluate_only ? "prefopt eval" : "prefopt train", train_about},
               {{"config", "FILE", "run configuration, JSON or YAML (prefopt's sections, or TRL's DPOConfig names)"},
                {"set", "KEY=VALUE...", "override one option (key.path=value, value in JSON); repeat for several"},
                {"data", "FILE", "eval: the held-out pairs (default: data.eval of the configuration)"},
                {"print-config", "", "print every option with its value (defaults: TRL's DPOConfig) and exit"}});
  if (a.flag("help")) return 0;
  train::run_config cfg = load_config(a);
  if (a.flag("print-config")) {
    std::cout << reflect::to_json(cfg).dump(2) << "\n";
    return 0;
  }
  if (evaluate_only && a.has("data")) cfg.data.eval = a.get("data");
  if (evaluate_only && cfg.data.train.empty()) cfg.data.train = cfg.data.eval.value_or("");
  train::validate(cfg);
  comm::any world = communicator();
  const std::string cfg_text = reflect::to_json(cfg).dump();
  comm::check_same(world, comm::hash_bytes(cfg_text.data(), cfg_text.size()), "config (run.json with --set)");
  apply_thread_setting(cfg.training.threads, std::cerr);
  text_pipeline pipeline;
  if (is_unpaired_loss(cfg.loss)) {
    auto sets = load_datasets<data::tokenized_unpaired>(
        cfg, evaluate_only, [&](const std::string& f) { return tokenize_unpaired_file(f, cfg, &pipeline, std::cerr); });
    auto& train_u = sets.first;
    auto& eval_u = sets.second;
    if (!train_u.weight.empty() || (eval_u && !eval_u->weight.empty()))
      throw config_error(cfg.data.train + ": column 'weight'", "per-example weights are not used; remove the column");
    comm::check_same(world, data_hash(train_u), cfg.data.train + ": the tokenized training data");
    const std::size_t longest_u = std::max(data::longest_row(train_u), eval_u ? data::longest_row(*eval_u) : 0);
    const run_inputs<data::tokenized_unpaired> in{train_u, eval_u ? &*eval_u : nullptr, longest_u, evaluate_only};
    if (cfg.backend == "cuda") return on_cuda(cfg, in, world);
    return train_on<backends::eigen>(cfg, in, world);
  }
  auto sets = load_datasets<data::tokenized_preferences>(
      cfg, evaluate_only, [&](const std::string& f) { return tokenize_file(f, cfg, &pipeline, std::cerr); });
  auto& train_data = sets.first;
  auto& eval_data = sets.second;
  if (!train_data.weight.empty() || (eval_data && !eval_data->weight.empty()))
    throw config_error(cfg.data.train + ": column 'weight'", "per-pair weights are not used by any loss; remove the column");
  comm::check_same(world, data_hash(train_data), cfg.data.train + ": the tokenized training data");
  const bool shared = cfg.data.prefix_sharing;
  const std::size_t longest = std::max(data::longest_row(train_data, shared), eval_data ? data::longest_row(*eval_data, shared) : 0);
  const run_inputs<data::tokenized_preferences> in{train_data, eval_data ? &*eval_data : nullptr, longest, evaluate_only};
  if (cfg.backend == "cuda") return on_cuda(cfg, in, world);
  return train_on<backends::eigen>(cfg, in, world);
}

} // namespace prefopt::cli
