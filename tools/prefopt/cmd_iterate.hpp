// tools/prefopt/cmd_iterate.hpp — `prefopt iterate`: iterative DPO rounds (sample → judge → pairs →
// train → evaluate), resumable. docs/loop.md describes the configuration and the outputs.
//
//   prefopt iterate --config run.json [--set key.path=value ...] [--print-config]
// run.json is `prefopt train`'s configuration (model, loss, reference, optimizer, training, output,
// lora; data.train/eval are not read) plus a "loop" section (loop_settings below). Round r (1..R)
// lives in <output.dir>/rounds/round-<r>/:
//   samples.jsonl   K completions per prompt from the current policy (ids, text, finish, log-prob)
//   scores.jsonl    the judge's score of each
//   pairs.jsonl     preference pairs (TRL format + scores + token ids), what the round trains on
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
// Fault injection for tests: PREFOPT_TEST_ITERATE_EXIT=<r> exits (status 75, as a crash would
// leave it) after round r is complete; <r>:<stage> after stage samples, scores or pairs of round r.
#pragma once

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "cmd_generate.hpp"
#include "cmd_reward.hpp"
#include "cmd_train.hpp"
#include "prefopt/loop/command_judge.hpp"
#include "prefopt/loop/lexicon_judge.hpp"
#include "prefopt/loop/pairs.hpp"
#include "prefopt/loop/pairwise.hpp"
#include "prefopt/loop/reward_model_judge.hpp"

namespace prefopt::cli {

struct loop_generation {
  BOOST_HANA_DEFINE_STRUCT(loop_generation,
    (int, max_new_tokens),
    (double, temperature),
    (int, top_k),
    (double, top_p),
    (double, min_p),
    (double, repetition_penalty),
    (int, batch_size));                        // prompts decoded together
};
struct loop_judge {
  BOOST_HANA_DEFINE_STRUCT(loop_judge,
    (std::string, type),                       // reward_model, command, pairwise_command, lexicon
    (std::optional<std::string>, model),       // reward_model: the reward model directory
    (std::optional<std::string>, tokenizer),   // reward_model: tokenizer.json (default: the model's, else the policy's)
    (std::vector<std::string>, command),       // command: argv (no shell; ["/bin/sh", "-c", "..."] for one)
    (double, timeout_s),                       // command: for one call of the command
    (int, batch_size),                         // reward_model: sequences scored together
    (std::optional<std::string>, lexicon));    // lexicon: a JSON file {"word": weight, ...}
};
struct loop_pairs {
  BOOST_HANA_DEFINE_STRUCT(loop_pairs,
    (std::string, strategy),                   // best_vs_worst, all_pairs
    (double, margin));
};
struct loop_settings {
  BOOST_HANA_DEFINE_STRUCT(loop_settings,
    (int, rounds),
    (std::string, prompts),                    // JSONL with a "prompt" column (text or messages)
    (std::optional<std::string>, eval_prompts),  // held-out prompts (none: no evaluation)
    (int, samples_per_prompt),                 // K
    (int, eval_samples_per_prompt),
    (loop_generation, generation),
    (loop_judge, judge),
    (loop_pairs, pairs),
    (int, keep_previous_rounds),               // also train on the pairs of this many earlier rounds
    (std::string, reference));                 // initial or previous
};
struct iterate_config {
  BOOST_HANA_DEFINE_STRUCT(iterate_config, (loop_settings, loop));
};
inline iterate_config default_iterate_config() {
  iterate_config c;
  c.loop = {2, "", std::nullopt, 4, 2, {32, 1.0, 0, 1.0, 0.0, 1.0, 16}, {"command", std::nullopt, std::nullopt, {}, 300.0, 16, std::nullopt},
            {"best_vs_worst", 0.0}, 0, "initial"};
  return c;
}

inline const char* iterate_help =
    "usage: prefopt iterate --config run.json [--set key.path=value ...] [--print-config]\n"
    "  R rounds of: sample K completions per prompt from the current policy, judge them, build\n"
    "  preference pairs, train (prefopt train's loss/reference/optimizer/training sections), evaluate\n"
    "  on held-out prompts (mean judge score, KL to the initial model). The \"loop\" section: rounds,\n"
    "  prompts, eval_prompts, samples_per_prompt, eval_samples_per_prompt, generation {...},\n"
    "  judge {type: reward_model|command|pairwise_command|lexicon, ...}, pairs {strategy, margin},\n"
    "  keep_previous_rounds, reference (initial|previous). A restarted run resumes where it stopped.\n";

namespace iterate {

struct prompt_set {
  std::vector<std::size_t> lines;
  std::vector<std::string> text;                  // as the policy sees it (rendered)
  std::vector<std::vector<std::int32_t>> ids;
};

struct sampled {  // one prompt's completions
  std::vector<std::vector<std::int32_t>> tokens;
  std::vector<std::string> text;
  std::vector<double> logp;
};

inline void fault_point(int round, const std::string& stage) {
  const char* at = std::getenv("PREFOPT_TEST_ITERATE_EXIT");
  if (!at) return;
  const std::string want = std::string(at), here = std::to_string(round) + (stage.empty() ? "" : ":" + stage);
  if (want != here) return;
  std::cerr << "prefopt iterate: PREFOPT_TEST_ITERATE_EXIT=" << want << ": stopping here\n";
  std::cerr.flush();
  std::_Exit(75);
}

// Whether any prompt of the file is a list of messages.
inline bool has_message_prompts(const std::string& path) {
  data::jsonl_reader reader(path);
  data::jsonl_line l;
  while (reader.next(l))
    if (l.value.is_object() && l.value.contains("prompt") && l.value["prompt"].is_array()) return true;
  return false;
}

inline prompt_set read_prompts(const std::string& path, const text_pipeline& tp) {
  prompt_set p;
  data::jsonl_reader reader(path);
  data::jsonl_line l;
  while (reader.next(l)) {
    const auto where = path + ":" + std::to_string(l.line);
    if (!l.value.is_object()) throw data_error(where, "expected a JSON object");
    const auto it = l.value.find("prompt");
    if (it == l.value.end()) throw data_error(where, "no 'prompt' field");
    std::string text;
    std::vector<std::int32_t> ids;
    if (it->is_string()) {
      text = it->get<std::string>();
      ids = tp.tok->encode(text, true);
    } else if (data::is_message_list(*it)) {
      if (!tp.chat) throw config_error(where + ": field 'prompt'", "conversational prompts need a chat template (data.chat_template)");
      const data::messages m = data::detail::parse_messages(*it, data::detail::record_place{path, l.line}, "prompt");
      if (m.back().role != "user") throw data_error(where + ": field 'prompt'", "must end with a user message");
      text = data::render(*tp.chat, m, true, false);
      ids = tp.tok->encode(text, false);
    } else {
      throw data_error(where + ": field 'prompt'", "expected a string or a list of {role, content} messages");
    }
    if (ids.empty()) throw data_error(where + ": field 'prompt'", "tokenizes to no token");
    p.lines.push_back(l.line), p.text.push_back(std::move(text)), p.ids.push_back(std::move(ids));
  }
  if (p.lines.empty()) throw data_error(path, "no prompt in the file");
  return p;
}

// K completions per prompt from the model at (model_dir, adapter); seeds from (seed, salt, line, k).
inline std::vector<sampled> sample(const std::string& model_dir, const std::string& adapter, const prompt_set& p, int k,
                                   const loop_generation& g, const data::tokenizer& tok, const std::string& eos_token,
                                   std::uint64_t seed) {
  models::sampling_options opt;
  opt.max_new_tokens = g.max_new_tokens, opt.temperature = g.temperature, opt.top_k = g.top_k, opt.top_p = g.top_p;
  opt.min_p = g.min_p, opt.repetition_penalty = g.repetition_penalty, opt.batch_rows = std::max(g.batch_size, 1);
  std::vector<sampled> out(p.lines.size());
  with_model(model_dir, adapter, [&](auto& model) {
    const int vocab = model.config().vocab_size;
    if (const auto e = detail::generation_eos(model_dir, vocab)) opt.eos_id = *e;
    else if (const auto id = tok.token_to_id(eos_token); id && *id < vocab) opt.eos_id = *id;
    std::vector<std::vector<std::int32_t>> prompts;
    for (std::size_t i = 0; i < p.lines.size(); ++i) {
      for (auto id : p.ids[i])
        if (id >= vocab) throw data_error("prompt " + std::to_string(p.lines[i]), "token id " + std::to_string(id) + " is outside the model's vocabulary");
      for (int j = 0; j < k; ++j) {
        prompts.push_back(p.ids[i]);
        opt.seeds.push_back(mix_seed(mix_seed(seed, std::uint64_t(p.lines[i])), std::uint64_t(j)));
      }
    }
    std::mt19937_64 unused(seed);
    const auto s = models::generate(model, prompts, unused, opt);
    for (std::size_t i = 0; i < p.lines.size(); ++i)
      for (int j = 0; j < k; ++j) {
        const auto& x = s[i * std::size_t(k) + std::size_t(j)];
        out[i].tokens.push_back(x.tokens);
        out[i].text.push_back(tok.decode(std::span<const std::int32_t>(x.tokens), true));
        out[i].logp.push_back(x.logp);
      }
  });
  return out;
}

inline std::string samples_jsonl(const prompt_set& p, const std::vector<sampled>& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i)
    out += nlohmann::json{{"line", p.lines[i]}, {"prompt", p.text[i]}, {"prompt_input_ids", p.ids[i]}, {"completions", s[i].text},
                          {"completion_input_ids", s[i].tokens}, {"logp", s[i].logp}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  return out;
}

inline std::vector<sampled> read_samples(const std::filesystem::path& f, const prompt_set& p) {
  std::vector<sampled> out;
  data::jsonl_reader r(f.string());
  data::jsonl_line l;
  while (r.next(l)) {
    sampled s;
    s.tokens = l.value.at("completion_input_ids").get<std::vector<std::vector<std::int32_t>>>();
    s.text = l.value.at("completions").get<std::vector<std::string>>();
    s.logp = l.value.at("logp").get<std::vector<double>>();
    out.push_back(std::move(s));
  }
  if (out.size() != p.lines.size()) throw format_error(f.string(), "holds " + std::to_string(out.size()) + " prompts, not " + std::to_string(p.lines.size()));
  return out;
}

// Summed completion log-probs of each (prompt, completion) under the model at (dir, adapter).
inline std::vector<double> sequence_logps(const std::string& dir, const std::string& adapter, const prompt_set& p,
                                          const std::vector<sampled>& s) {
  std::vector<double> out;
  with_model(dir, adapter, [&](auto& model) {
    for (std::size_t i = 0; i < s.size(); ++i) {
      models::token_batch b;
      for (std::size_t k = 0; k < s[i].tokens.size(); ++k) b.add_row(p.ids[i], {&s[i].tokens[k]}, {std::int32_t(k)});
      b.sequences = std::int32_t(s[i].tokens.size());
      models::sequence_logps r;
      model.forward(b, r, {.keep_activations = false});
      out.insert(out.end(), r.logp.begin(), r.logp.end());
    }
  });
  return out;
}

} // namespace iterate

namespace iterate {

// The judge's scores of every prompt's completions (one call: one process, or one model load).
inline std::vector<std::vector<double>> judge(const loop_judge& j, const train::run_config& cfg, const prompt_set& p,
                                              const std::vector<sampled>& s) {
  std::vector<loop::judge_request> batch;
  for (std::size_t i = 0; i < s.size(); ++i) batch.push_back({p.text[i], s[i].text});
  const auto timeout = std::chrono::milliseconds(std::llround(j.timeout_s * 1000.0));
  if (j.type == "command") return loop::command_judge({.argv = j.command, .timeout = timeout}).score(batch);
  if (j.type == "pairwise_command")
    return loop::round_robin{loop::pairwise_command_judge({.argv = j.command, .timeout = timeout})}.score(batch);
  if (j.type == "lexicon") {
    const nlohmann::json w = read_json_file(*j.lexicon);
    if (!w.is_object()) throw config_error(*j.lexicon, "a lexicon is a JSON object {\"word\": weight, ...}");
    std::map<std::string, double> weights;
    for (const auto& [word, v] : w.items()) {
      if (!v.is_number()) throw config_error(*j.lexicon + ": field '" + word + "'", "expected a number");
      weights[word] = v.get<double>();
    }
    return loop::lexicon_judge(std::move(weights), "lexicon " + *j.lexicon).score(batch);
  }
  if (j.type != "reward_model")
    throw config_error("config: field 'loop.judge.type'", "'" + j.type + "' is not one of reward_model, command, pairwise_command, lexicon");
  train::run_config rc = cfg;  // the reward model's own tokenizer and EOS token when it has them
  rc.model = *j.model;
  if (j.tokenizer) rc.data.tokenizer = *j.tokenizer;
  else if (std::filesystem::exists(std::filesystem::path(*j.model) / "tokenizer.json")) rc.data.tokenizer.reset();
  const text_pipeline tp = open_text_pipeline(rc, false, true);
  std::vector<std::vector<double>> out;
  with_reward_model(*j.model, 0, [&](auto& rm, bool) {
    loop::reward_model_judge rj(rm, *tp.tok, tp.options, std::size_t(std::max(j.batch_size, 1)), "reward model " + *j.model);
    out = rj.score(batch);
  });
  return out;
}

inline void validate(const loop_settings& l) {
  auto bad = [](const std::string& f, const std::string& why) { throw config_error("config: field 'loop." + f + "'", why); };
  if (l.rounds < 1) bad("rounds", "must be >= 1");
  if (l.prompts.empty()) bad("prompts", "is required (a JSONL file with a \"prompt\" column)");
  if (l.samples_per_prompt < 2) bad("samples_per_prompt", "must be >= 2 (pairs need two completions)");
  if (l.eval_samples_per_prompt < 1) bad("eval_samples_per_prompt", "must be >= 1");
  if (l.keep_previous_rounds < 0) bad("keep_previous_rounds", "must be >= 0");
  if (l.reference != "initial" && l.reference != "previous") bad("reference", "'" + l.reference + "' is not one of initial, previous");
  if (!(l.judge.timeout_s > 0.0)) bad("judge.timeout_s", "must be > 0");
  if ((l.judge.type == "command" || l.judge.type == "pairwise_command") && l.judge.command.empty()) bad("judge.command", "is required for a command judge");
  if (l.judge.type == "reward_model" && !l.judge.model) bad("judge.model", "is required for a reward_model judge");
  if (l.judge.type == "lexicon" && !l.judge.lexicon) bad("judge.lexicon", "is required for a lexicon judge");
  (void)loop::parse_pair_strategy(l.pairs.strategy, "config: field 'loop.pairs.strategy'");
  if (!(l.pairs.margin >= 0.0)) bad("pairs.margin", "must be >= 0");
}

inline double mean(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / double(v.size());
}

// The last logged value of `key` in a metrics.jsonl (NaN when none).
inline double last_logged(const std::filesystem::path& f, const std::string& key) {
  double v = std::nan("");
  std::ifstream in(f);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains(key) && j[key].is_number()) v = j[key].get<double>();
  }
  return v;
}

} // namespace iterate

inline int cmd_iterate(int argc, char** argv) {
  namespace fs = std::filesystem;
  const args a(argc, argv, 2, {"config", "set"}, {"print-config", "help"});
  if (a.flag("help")) {
    std::cout << iterate_help;
    return 0;
  }
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
  apply_thread_setting(cfg.training.threads, std::cerr);
  const bool conversational = iterate::has_message_prompts(L.prompts) || (L.eval_prompts && iterate::has_message_prompts(*L.eval_prompts));
  const text_pipeline tp = open_text_pipeline(cfg, conversational, true);
  const iterate::prompt_set prompts = iterate::read_prompts(L.prompts, tp);
  std::optional<iterate::prompt_set> eval_prompts;
  if (L.eval_prompts) eval_prompts = iterate::read_prompts(*L.eval_prompts, tp);
  const fs::path root(cfg.output.dir);
  nlohmann::json effective = reflect::to_json(cfg);
  effective["loop"] = reflect::to_json(ic)["loop"];
  // A folder holding another configuration's rounds is not continued (loop.rounds may grow):
  // output.overwrite=true removes those rounds and starts afresh.
  if (fs::exists(root / "iterate_config.json")) {
    nlohmann::json before = read_json_file(root / "iterate_config.json"), now = effective;
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
    // 3. pairs
    loop::pair_report report;
    const auto pairs = loop::make_pairs(scores, {loop::parse_pair_strategy(L.pairs.strategy, "loop.pairs.strategy"), L.pairs.margin}, &report);
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
    nlohmann::json m = {{"round", r}, {"prompts", report.prompts}, {"samples", report.prompts * std::size_t(L.samples_per_prompt)},
                        {"pairs", report.pairs}, {"ties", report.ties}, {"below_margin", report.below_margin},
                        {"train_pairs", train_data.size()}, {"judge", L.judge.type}};
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
