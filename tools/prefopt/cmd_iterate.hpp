// tools/prefopt/cmd_iterate.hpp — `prefopt iterate`: iterative DPO rounds (sample → judge → pairs →
// train → evaluate), resumable. docs/loop.md describes the configuration and the outputs.
//
//   prefopt iterate --config run.json [--set key.path=value ...] [--print-config]
// run.json is `prefopt train`'s configuration (model, loss, reference, optimizer, training, output,
// lora; data.train/eval are not read) plus a "loop" section (loop_settings in iterate/stages.hpp).
// Round r (1..R) lives in <output.dir>/rounds/round-<r>/:
//   samples.jsonl   K completions per prompt from the current policy (token ids, text, log-prob)
//   scores.jsonl    the judge's score of each
//   pairs.jsonl     preference pairs (TRL format + scores + token ids), what the round trains on;
//                   with loop.select spread, only from the prompts the selection kept; with
//                   policy or reward, only the pairs it kept
//   train_pairs.jsonl  with keep_previous_rounds > 0: these pairs and the earlier rounds'
//   checkpoint-*/, metrics.jsonl, metrics.csv   the round's DPO training (prefopt train's files)
//   final/          the trained model (or LoRA adapter): the next round's policy
//   metrics.json    counts, mean judge score of the samples, held-out score and KL to the initial model
//   complete        written last (atomically): the round is done
// <output.dir>/iterate_config.json keeps the effective configuration: a folder holding another
// configuration's rounds is refused (loop.rounds may grow) unless output.overwrite is set.
// Each file is written atomically once its stage is done, so a restarted run skips complete
// rounds, reuses the stored stages of an incomplete one and resumes its training from the newest
// checkpoint. Every draw is seeded by (training.seed, round, prompt line, sample), so a run is
// reproducible for a given seed and thread count, interrupted or not.
// Every model of a run (sampled policy, reward-model judge, trained policy and reference, the KL's
// initial model) runs on run.json's backend (eigen or cuda) with training.precision, as prefopt
// train reads them; the rounds are iterate/rounds.hpp.
// loop.mode "online" runs online DPO instead (iterate/online.hpp): metrics.jsonl, metrics.csv and
// final/ in <output.dir>, no rounds, no resume.
// Fault injection for tests: PREFOPT_TEST_ITERATE_EXIT=<r> exits (status 75, as a crash would
// leave it) after round r is complete; <r>:<stage> after stage samples, scores or pairs of round r.
#pragma once

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "backend_choice.hpp"
#include "iterate/online.hpp"
#include "iterate/rounds.hpp"
#include "iterate/stages.hpp"

namespace prefopt::cli {

inline const cli::command_info iterate_info{
    "prefopt iterate",
    "R rounds of: sample K completions per prompt from the current policy, judge them, build\n"
    "preference pairs, train (prefopt train's loss/reference/optimizer/training sections), evaluate\n"
    "on held-out prompts (mean judge score, KL to the initial model). The \"loop\" section: rounds,\n"
    "prompts, eval_prompts, samples_per_prompt, eval_samples_per_prompt, generation {...},\n"
    "judge {type: reward_model|command|pairwise_command|lexicon, ...}, pairs {strategy, margin},\n"
    "keep_previous_rounds, reference (initial|previous), select {rule: none|spread|policy|reward, fraction}.\n"
    "A restarted run resumes where it stopped. mode online (online_steps, missing_eos_penalty): online\n"
    "DPO, two samples per prompt judged and trained on at every step (TRL's OnlineDPOTrainer); it does\n"
    "not resume."};

inline int cmd_iterate(int argc, char** argv) {
  namespace fs = std::filesystem;
  const args a(argc, argv, 2, iterate_info,
               {{"config", "FILE", "run configuration, JSON: prefopt train's sections plus \"loop\""},
                {"set", "KEY=VALUE...", "override one option (key.path=value, value in JSON); repeat for several"},
                {"print-config", "", "print every option with its value and exit"}});
  if (a.flag("help")) return 0;
  train::run_config cfg = train::default_run_config();
  iterate_config ic = default_iterate_config();
  cfg.data.train = "(pairs of each round)";
  if (a.has("config")) {
    const std::string path = a.get("config");
    nlohmann::json j = read_json_file(path);
    try {
      if (j.is_object() && j.contains("loop")) reflect::from_json(nlohmann::json{{"loop", j["loop"]}}, ic), j.erase("loop");
      reflect::from_json(j, cfg);
    } catch (const config_error& e) {
      throw config_error(path + ": " + e.where(), e.why());
    }
  }
  for (const auto& s : a.all("set")) {
    if (s.rfind("loop.", 0) == 0) reflect::apply_override(ic, s);
    else reflect::apply_override(cfg, s);
  }
  if (a.flag("print-config")) {
    nlohmann::json j = reflect::to_json(cfg);
    j["loop"] = reflect::to_json(ic)["loop"];
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  const loop_settings& L = ic.loop;
  iterate::validate(L);
  train::validate(cfg);
  if (is_unpaired_loss(cfg.loss)) throw config_error("config: field 'loss.type'", "prefopt iterate trains on pairs; unpaired losses are not supported");
  const bool lora = cfg.lora.has_value();
  if (lora && L.reference == "previous")
    throw config_error("config: field 'loop.reference'", "previous needs full fine-tuning: LoRA's reference is the base model (adapters off)");
  if (cfg.adapter) throw config_error("config: field 'adapter'", "prefopt iterate starts from a model directory (set lora to train adapters)");
  // With LoRA, rounds after the first continue the previous round's adapter, whose default reference
  // would be a frozen copy of that adapter (TRL's, for one continued run); the loop's reference is
  // the initial model, the base with the adapters off, in every round.
  if (lora && cfg.reference.strategy == "auto") cfg.reference.strategy = "adapter_disabled";
  if (lora && cfg.reference.strategy != "adapter_disabled" && cfg.reference.strategy != "none")
    throw config_error("config: field 'reference.strategy'", "'" + cfg.reference.strategy + "' with LoRA in prefopt iterate: "
                       "the reference is the base model with the adapters off (adapter_disabled, the default)");
  // The backend and precision of every model the run loads, as prefopt train reads them.
  const std::string backend_field = "config: field 'backend'";
  const precision prec = parse_precision(cfg.training.precision, "config: field 'training.precision'");
  check_backend(cfg.backend, backend_field);
  apply_thread_setting(cfg.training.threads, std::cerr);
  const bool conversational = iterate::has_message_prompts(L.prompts) || (L.eval_prompts && iterate::has_message_prompts(*L.eval_prompts));
  const text_pipeline tp = open_text_pipeline(cfg, conversational, true);
  const iterate::prompt_set prompts = iterate::read_prompts(L.prompts, tp);
  std::optional<iterate::prompt_set> eval_prompts;
  if (L.eval_prompts) eval_prompts = iterate::read_prompts(*L.eval_prompts, tp);
  const fs::path root(cfg.output.dir);
  nlohmann::json effective = reflect::to_json(cfg);
  effective["loop"] = reflect::to_json(ic)["loop"];
  if (L.mode == "online") {
    if (cfg.training.resume)
      throw config_error("config: field 'training.resume'", "an online run (loop.mode online) does not checkpoint or resume");
    if (cfg.training.gradient_accumulation_steps != 1)
      throw config_error("config: field 'training.gradient_accumulation_steps'", "loop.mode online takes one step per batch of prompts (1)");
    if (fs::exists(root / "iterate_config.json") || fs::exists(root / "final") || fs::exists(root / "metrics.jsonl")) {
      if (!cfg.output.overwrite)
        throw config_error(root.string(), "holds an earlier run's outputs and an online run does not resume; choose another "
                                          "output.dir, or set output.overwrite=true to replace them");
      for (const char* f : {"final", "merged", "rounds", "runs", "metrics.jsonl", "metrics.csv"}) fs::remove_all(root / f);
      std::cerr << "prefopt iterate: output.overwrite: removed an earlier run's outputs from " << root.string() << "\n";
    }
    fs::create_directories(root);
    io::write_atomically(root / "iterate_config.json", std::string_view(effective.dump(2) + "\n"));
    on_backend(cfg.backend, prec, backend_field, [&](const auto& be) { iterate::run_online(be, cfg, L, tp, prompts); });
    return 0;
  }
  // A folder holding another configuration's rounds is not continued (loop.rounds may grow):
  // output.overwrite=true removes those rounds and starts afresh.
  if (fs::exists(root / "iterate_config.json")) {
    nlohmann::json before = read_json_file(root / "iterate_config.json"), now = effective;
    // Keys added to the loop section since a run was started take their defaults there.
    const nlohmann::json defaults = reflect::to_json(default_iterate_config())["loop"];
    if (before.contains("loop") && before["loop"].is_object())
      for (const auto& [key, value] : defaults.items())
        if (!before["loop"].contains(key)) before["loop"][key] = value;
    before["loop"].erase("rounds"), now["loop"].erase("rounds");
    for (auto* j : {&before, &now}) (*j)["training"].erase("resume"), (*j)["output"].erase("overwrite"), (*j)["output"].erase("dir");
    if (before != now) {
      if (!cfg.output.overwrite)
        throw config_error(root.string(), "holds the rounds of a run with another configuration (iterate_config.json); choose "
                                          "another output.dir, or set output.overwrite=true to remove them and start afresh");
      fs::remove_all(root / "rounds");
      std::cerr << "prefopt iterate: output.overwrite: removed the rounds of an earlier run from " << root.string() << "\n";
    }
  }
  fs::create_directories(root / "rounds");
  io::write_atomically(root / "iterate_config.json", std::string_view(effective.dump(2) + "\n"));
  return on_backend(cfg.backend, prec, backend_field, [&](const auto& be) { return iterate::run_rounds(be, cfg, L, tp, prompts, eval_prompts); });
}

} // namespace prefopt::cli
