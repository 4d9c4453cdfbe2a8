// tools/prefopt/iterate/rounds.hpp — `prefopt iterate`'s rounds (loop.mode "rounds") on backend B:
// for each round not yet complete, sample → judge → select → pairs → train → evaluate, each stage
// stored in <output.dir>/rounds/round-<r>/ (cmd_iterate.hpp says what each file holds) and reused
// by a restarted run. Every model of the round (the policy sampled from, the reward model judge,
// the trained policy and its reference, the KL's initial model) runs on B with the configuration's
// training.precision; the cuda instantiation is compiled in loop_cuda.cpp.
#pragma once

#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "stages.hpp"

namespace prefopt::cli::iterate {

template <class B>
int run_rounds(const B& backend, const train::run_config& cfg, const loop_settings& L, const text_pipeline& tp, const prompt_set& prompts,
               const std::optional<prompt_set>& eval_prompts) {
  namespace fs = std::filesystem;
  const bool lora = cfg.lora.has_value();
  const fs::path root(cfg.output.dir);
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
    std::vector<sampled> samples;
    if (fs::exists(dir / "samples.jsonl")) {
      samples = read_samples(dir / "samples.jsonl", prompts);
      std::cerr << "prefopt iterate: round " << r << ": samples reused from " << (dir / "samples.jsonl").string() << "\n";
    } else {
      samples = sample(backend, model_dir, adapter, prompts, L.samples_per_prompt, L.generation, *tp.tok, tp.options.eos_token, round_seed);
      io::write_atomically(dir / "samples.jsonl", std::string_view(samples_jsonl(prompts, samples)));
    }
    fault_point(r, "samples");
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
      scores = judge(backend, L.judge, cfg, prompts, samples);
      std::string out;
      for (std::size_t i = 0; i < scores.size(); ++i) out += nlohmann::json{{"line", prompts.lines[i]}, {"scores", scores[i]}}.dump() + "\n";
      io::write_atomically(dir / "scores.jsonl", std::string_view(out));
    }
    fault_point(r, "scores");
    // 3. active selection of the prompts, then their pairs
    const std::vector<std::size_t> kept = select_prompts(L.select, scores);
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
    if (selects_pairs(L.select)) {
      const std::size_t built = pairs.size();
      if (fs::exists(dir / "pairs.jsonl")) {
        selected_pairs = count_lines(dir / "pairs.jsonl");
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
          priority = loop::policy_priorities(implicit_margins(backend, policy, ref, prompts, samples, pairs), cfg.loss.beta);
        }
        std::vector<loop::scored_pair> keep;
        for (const std::size_t i : select_pairs(L.select, priority)) keep.push_back(pairs[i]);
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
    fault_point(r, "pairs");
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
    with_policy<B>(rc, [&](auto& policy) { run_training(policy, rc, train_data, nullptr, false, world, reference); },
                data::longest_row(train_data, shared), shared ? 1 : 2, true);
    // 5. evaluate and record
    const auto trained = lora ? std::pair<std::string, std::string>{cfg.model, (dir / "final").string()}
                              : std::pair<std::string, std::string>{(dir / "final").string(), ""};
    nlohmann::json m = {{"round", r}, {"prompts", scores.size()}, {"samples", scores.size() * std::size_t(L.samples_per_prompt)},
                        {"pairs", report.pairs}, {"ties", report.ties}, {"below_margin", report.below_margin},
                        {"train_pairs", train_data.size()}, {"judge", L.judge.type}};
    if (L.select.rule == "spread") m["select_rule"] = L.select.rule, m["selected_prompts"] = kept.size();
    if (selects_pairs(L.select)) m["select_rule"] = L.select.rule, m["selected_pairs"] = selected_pairs;
    std::vector<double> flat;
    for (const auto& s : scores) flat.insert(flat.end(), s.begin(), s.end());
    m["sample_score_mean"] = mean(flat);
    m["train_loss"] = last_logged(dir / "metrics.jsonl", "loss");
    if (eval_prompts) {
      const auto es = sample(backend, trained.first, trained.second, *eval_prompts, L.eval_samples_per_prompt, L.generation, *tp.tok,
                                      tp.options.eos_token, mix_seed(round_seed, 0x65766131));
      const auto sc = judge(backend, L.judge, cfg, *eval_prompts, es);
      std::vector<double> all, diff;
      for (const auto& s : sc) all.insert(all.end(), s.begin(), s.end());
      const auto initial = sequence_logps(backend, cfg.model, "", *eval_prompts, es);
      std::size_t k = 0;
      for (const auto& s : es)
        for (double lp : s.logp) diff.push_back(lp - initial[k++]);
      m["eval_prompts"] = eval_prompts->lines.size();
      m["eval_score_mean"] = mean(all);
      m["eval_kl_to_initial"] = mean(diff);
    }
    io::write_atomically(dir / "metrics.json", std::string_view(m.dump(2) + "\n"));
    io::write_atomically(dir / "complete", std::string_view("round " + std::to_string(r) + " complete\n"));
    std::cerr << "prefopt iterate: round " << r << " complete: " << m.dump() << "\n";
    fault_point(r, "");
  }
  std::cerr << "prefopt iterate: " << L.rounds << " rounds done; the last policy is " << (round_dir(L.rounds) / "final").string() << "\n";
  return 0;
}

} // namespace prefopt::cli::iterate

#ifdef PREFOPT_CLI_CUDA
namespace prefopt::cli::iterate {
extern template int run_rounds<backends::cuda>(const backends::cuda&, const train::run_config&, const loop_settings&, const text_pipeline&,
                                               const prompt_set&, const std::optional<prompt_set>&);
} // namespace prefopt::cli::iterate
#endif
