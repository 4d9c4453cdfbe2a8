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

#include "iterate/online.hpp"
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
    iterate::run_online(cfg, L, tp, prompts);
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
  const auto seed = std::uint64_t(cfg.training.seed);
  auto round_dir = [&](int r) { return root / "rounds" / ("round-" + std::to_string(r)); };
  // The policy a round samples from: the initial model, or the previous round's final/ (a whole
  // model, or an adapter on the initial model).
  auto policy_of = [&](int r) -> std::pair<std::string, std::string> {
    if (r == 1) return {cfg.model, ""};
    const auto prev = (round_dir(r - 1) / "final").string();
    return lora ? std::pair<std::string, std::string>{cfg.model, prev} : std::pair<std::string, std::string>{prev, ""};
  };
  comm::any world = comm::none{};
  for (int r = 1; r <= L.rounds; ++r) {
    const fs::path dir = round_dir(r);
    if (fs::exists(dir / "complete")) {
      std::cerr << "prefopt iterate: round " << r << " is complete; skipped\n";
      continue;
    }
    fs::create_directories(dir);
    const auto policy = policy_of(r);
    const std::string& model_dir = policy.first;
    const std::string& adapter = policy.second;
    const std::uint64_t round_seed = mix_seed(seed, std::uint64_t(r));
    // 1. samples
    std::vector<iterate::sampled> samples;
    if (fs::exists(dir / "samples.jsonl")) {
      samples = iterate::read_samples(dir / "samples.jsonl", prompts);
      std::cerr << "prefopt iterate: round " << r << ": samples reused from " << (dir / "samples.jsonl").string() << "\n";
    } else {
      samples = iterate::sample(model_dir, adapter, prompts, L.samples_per_prompt, L.generation, *tp.tok, tp.options.eos_token, round_seed);
      io::write_atomically(dir / "samples.jsonl", std::string_view(iterate::samples_jsonl(prompts, samples)));
    }
    iterate::fault_point(r, "samples");
    // 2. scores
    std::vector<std::vector<double>> scores;
    if (fs::exists(dir / "scores.jsonl")) {
      data::jsonl_reader in((dir / "scores.jsonl").string());
      data::jsonl_line l;
      while (in.next(l)) scores.push_back(l.value.at("scores").get<std::vector<double>>());
      loop::check_scores("stored scores " + (dir / "scores.jsonl").string(), [&] {
        std::vector<loop::judge_request> b;
        for (std::size_t i = 0; i < samples.size(); ++i) b.push_back({prompts.text[i], samples[i].text});
        return b;
      }(), scores);
    } else {
      scores = iterate::judge(L.judge, cfg, prompts, samples);
      std::string out;
      for (std::size_t i = 0; i < scores.size(); ++i) out += nlohmann::json{{"line", prompts.lines[i]}, {"scores", scores[i]}}.dump() + "\n";
      io::write_atomically(dir / "scores.jsonl", std::string_view(out));
    }
    iterate::fault_point(r, "scores");
    // 3. active selection of the prompts, then their pairs
    const std::vector<std::size_t> kept = iterate::select_prompts(L.select, scores);
    std::vector<std::vector<double>> kept_scores;
    for (const std::size_t i : kept) kept_scores.push_back(scores[i]);
    if (L.select.rule == "spread")
      std::cerr << "prefopt iterate: round " << r << ": active selection (" << L.select.rule << ", fraction " << L.select.fraction
                << ") kept " << kept.size() << " of " << scores.size() << " prompts\n";
    loop::pair_report report;
    auto pairs = loop::make_pairs(kept_scores, {loop::parse_pair_strategy(L.pairs.strategy, "loop.pairs.strategy"), L.pairs.margin}, &report);
    for (auto& p : pairs) p.prompt = kept[p.prompt];
    // Rules policy and reward keep the pairs the policy or the judge is least sure of; a restarted
    // round whose pairs.jsonl is stored counts the pairs kept there.
    std::size_t selected_pairs = pairs.size();
    if (iterate::selects_pairs(L.select)) {
      const std::size_t built = pairs.size();
      if (fs::exists(dir / "pairs.jsonl")) {
        selected_pairs = iterate::count_lines(dir / "pairs.jsonl");
      } else {
        std::vector<double> priority;
        if (L.select.rule == "reward") {
          std::vector<double> chosen, rejected;
          for (const auto& p : pairs) chosen.push_back(p.score_chosen), rejected.push_back(p.score_rejected);
          priority = loop::reward_priorities(chosen, rejected);
        } else {
          // π_ref: the round's reference, the initial model (with LoRA the base, adapters off) or
          // with reference previous the round's starting policy.
          const std::pair<std::string, std::string> ref{lora || L.reference == "initial" ? cfg.model : model_dir, ""};
          priority = loop::policy_priorities(iterate::implicit_margins(policy, ref, prompts, samples, pairs), cfg.loss.beta);
        }
        std::vector<loop::scored_pair> keep;
        for (const std::size_t i : iterate::select_pairs(L.select, priority)) keep.push_back(pairs[i]);
        pairs = std::move(keep);
        selected_pairs = pairs.size();
      }
      std::cerr << "prefopt iterate: round " << r << ": active selection (" << L.select.rule << ", fraction " << L.select.fraction
                << ") kept " << selected_pairs << " of " << built << " pairs\n";
    }
    if (!fs::exists(dir / "pairs.jsonl")) {
      std::string out;
      for (const auto& p : pairs) {
        const auto& s = samples[p.prompt];
        out += loop::preference_record_json(prompts.text[p.prompt], s.text[p.chosen], s.text[p.rejected], p.score_chosen, p.score_rejected,
                                            &prompts.ids[p.prompt], &s.tokens[p.chosen], &s.tokens[p.rejected])
                   .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
      }
      io::write_atomically(dir / "pairs.jsonl", std::string_view(out));
    }
    std::cerr << "prefopt iterate: round " << r << ": " << report.pairs << " pairs from " << report.prompts << " prompts ("
              << report.ties << " ties, " << report.below_margin << " below the margin skipped)\n";
    iterate::fault_point(r, "pairs");
    if (pairs.empty()) throw data_error((dir / "pairs.jsonl").string(), "round " + std::to_string(r) + " gave no preference pair (every score tied or below loop.pairs.margin)");
    // 4. train
    fs::path train_file = dir / "pairs.jsonl";
    if (L.keep_previous_rounds > 0) {
      std::string all;
      for (int q = std::max(1, r - L.keep_previous_rounds); q <= r; ++q) {
        std::ifstream in(round_dir(q) / "pairs.jsonl", std::ios::binary);
        all += std::string(std::istreambuf_iterator<char>(in), {});
      }
      train_file = dir / "train_pairs.jsonl";
      io::write_atomically(train_file, std::string_view(all));
    }
    train::run_config rc = cfg;
    rc.model = model_dir;
    if (lora && r > 1) rc.adapter = adapter, rc.lora.reset();
    rc.data.train = train_file.string();
    rc.data.eval.reset();
    rc.data.eval_fraction = 0.0;
    rc.output.dir = dir.string();
    rc.training.resume = true;
    rc.training.seed = int(std::uint32_t(round_seed) >> 1);
    text_pipeline pipeline;
    data::tokenized_preferences train_data = tokenize_file(rc.data.train, rc, &pipeline, std::cerr);
    const std::string reference = lora ? std::string() : L.reference == "initial" ? cfg.model : model_dir;
    const bool shared = rc.data.prefix_sharing;
    with_policy(rc, [&](auto& policy) { run_training(policy, rc, train_data, nullptr, false, world, reference); },
                data::longest_row(train_data, shared), shared ? 1 : 2, true);
    // 5. evaluate and record
    const auto trained = lora ? std::pair<std::string, std::string>{cfg.model, (dir / "final").string()}
                              : std::pair<std::string, std::string>{(dir / "final").string(), ""};
    nlohmann::json m = {{"round", r}, {"prompts", scores.size()}, {"samples", scores.size() * std::size_t(L.samples_per_prompt)},
                        {"pairs", report.pairs}, {"ties", report.ties}, {"below_margin", report.below_margin},
                        {"train_pairs", train_data.size()}, {"judge", L.judge.type}};
    if (L.select.rule == "spread") m["select_rule"] = L.select.rule, m["selected_prompts"] = kept.size();
    if (iterate::selects_pairs(L.select)) m["select_rule"] = L.select.rule, m["selected_pairs"] = selected_pairs;
    std::vector<double> flat;
    for (const auto& s : scores) flat.insert(flat.end(), s.begin(), s.end());
    m["sample_score_mean"] = iterate::mean(flat);
    m["train_loss"] = iterate::last_logged(dir / "metrics.jsonl", "loss");
    if (eval_prompts) {
      const auto es = iterate::sample(trained.first, trained.second, *eval_prompts, L.eval_samples_per_prompt, L.generation, *tp.tok,
                                      tp.options.eos_token, mix_seed(round_seed, 0x65766131));
      const auto sc = iterate::judge(L.judge, cfg, *eval_prompts, es);
      std::vector<double> all, diff;
      for (const auto& s : sc) all.insert(all.end(), s.begin(), s.end());
      const auto initial = iterate::sequence_logps(cfg.model, "", *eval_prompts, es);
      std::size_t k = 0;
      for (const auto& s : es)
        for (double lp : s.logp) diff.push_back(lp - initial[k++]);
      m["eval_prompts"] = eval_prompts->lines.size();
      m["eval_score_mean"] = iterate::mean(all);
      m["eval_kl_to_initial"] = iterate::mean(diff);
    }
    io::write_atomically(dir / "metrics.json", std::string_view(m.dump(2) + "\n"));
    io::write_atomically(dir / "complete", std::string_view("round " + std::to_string(r) + " complete\n"));
    std::cerr << "prefopt iterate: round " << r << " complete: " << m.dump() << "\n";
    iterate::fault_point(r, "");
  }
  std::cerr << "prefopt iterate: " << L.rounds << " rounds done; the last policy is " << (round_dir(L.rounds) / "final").string() << "\n";
  return 0;
}

} // namespace prefopt::cli
