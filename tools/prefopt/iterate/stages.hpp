// tools/prefopt/iterate/stages.hpp — `prefopt iterate`'s configuration (the "loop" section) and
// the stages of a round: reading prompts, sampling K completions per prompt from a model folder,
// storing and reading samples, judging them (command, pairwise command, reward model, lexicon),
// and the completions' log-probs under another model (the KL estimate). iterate/rounds.hpp runs
// them; the stages that run a model do so on the backend they are given (the configuration's
// backend and training.precision).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "cmd_generate.hpp"
#include "cmd_reward.hpp"
#include "cmd_train.hpp"
#include "prefopt/loop/active_selection.hpp"
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
struct loop_select {
  BOOST_HANA_DEFINE_STRUCT(loop_select,
    (std::string, rule),                       // none, spread (prompts), policy, reward (pairs)
    (double, fraction));                       // the share of prompts or pairs kept, ⌈fraction·n⌉
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
    (std::string, reference),                  // initial or previous
    (loop_select, select),                     // active selection of each round's prompts
    (std::string, mode),                       // rounds, online
    (int, online_steps),                       // online: DPO steps, each on freshly sampled pairs
    (double, missing_eos_penalty));            // online: TRL's, off a completion without the end token
};
struct iterate_config {
  BOOST_HANA_DEFINE_STRUCT(iterate_config, (loop_settings, loop));
};
inline iterate_config default_iterate_config() {
  iterate_config c;
  loop_settings& l = c.loop;  // field by field: one aggregate initializer draws g++ 12's -Wmaybe-uninitialized
  l.rounds = 2, l.samples_per_prompt = 4, l.eval_samples_per_prompt = 2;
  l.generation = {32, 1.0, 0, 1.0, 0.0, 1.0, 16};
  l.judge.type = "command", l.judge.timeout_s = 300.0, l.judge.batch_size = 16;
  l.pairs.strategy = "best_vs_worst", l.pairs.margin = 0.0;
  l.keep_previous_rounds = 0, l.reference = "initial";
  l.select.rule = "none", l.select.fraction = 1.0;
  l.mode = "rounds", l.online_steps = 100, l.missing_eos_penalty = 0.0;
  return c;
}

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
      const auto in = data::detail::parse_template_inputs(l.value, data::detail::record_place{path, l.line}, l.text);
      text = data::detail::at_record(where, [&] { return data::render(*tp.chat, m, true, false, in.tools, in.chat_template_kwargs); });
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

// K completions per prompt from the model at (model_dir, adapter) on `backend`; seeds from (seed,
// salt, line, k).
template <class B>
std::vector<sampled> sample(const B& backend, const std::string& model_dir, const std::string& adapter, const prompt_set& p, int k,
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
  }, 0.0, backend);
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

// Summed completion log-probs of each (prompt, completion) under the model at (dir, adapter), on `backend`.
template <class B>
std::vector<double> sequence_logps(const B& backend, const std::string& dir, const std::string& adapter, const prompt_set& p,
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
  }, 0.0, backend);
  return out;
}

} // namespace iterate

namespace iterate {

// The judge's scores of every prompt's completions (one call: one process, or one model load; a
// reward model on `backend`).
template <class B>
std::vector<std::vector<double>> judge(const B& backend, const loop_judge& j, const train::run_config& cfg, const prompt_set& p,
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
      weights[word] = v.template get<double>();
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
  with_reward_model(backend, *j.model, 0, [&](auto& rm, bool) {
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
  if (l.select.rule != "none" && l.select.rule != "spread" && l.select.rule != "policy" && l.select.rule != "reward")
    bad("select.rule", "'" + l.select.rule + "' is not one of none, spread, policy, reward");
  if (!(l.select.fraction > 0.0 && l.select.fraction <= 1.0)) bad("select.fraction", "must lie in (0, 1]");
  if (l.mode != "rounds" && l.mode != "online") bad("mode", "'" + l.mode + "' is not one of rounds, online");
  if (l.online_steps < 1) bad("online_steps", "must be >= 1");
  if (!(l.missing_eos_penalty >= 0.0) || !std::isfinite(l.missing_eos_penalty)) bad("missing_eos_penalty", "must be finite and >= 0");
  if (l.mode == "online") {
    if (l.select.rule != "none") bad("select.rule", "selects the prompts of a round; loop.mode online has no rounds");
    if (l.reference != "initial") bad("reference", "loop.mode online trains against the initial model");
    if (l.keep_previous_rounds != 0) bad("keep_previous_rounds", "loop.mode online has no rounds");
  }
}

// The prompts (indices, ascending) whose samples the round turns into pairs: all of them (rules none,
// policy, reward), or with
// rule spread the ⌈fraction·n⌉ whose K scores spread most (loop::spread_priorities, ties in
// prompt order).
inline std::vector<std::size_t> select_prompts(const loop_select& s, const std::vector<std::vector<double>>& scores) {
  std::vector<std::size_t> kept(scores.size());
  std::iota(kept.begin(), kept.end(), std::size_t(0));
  if (s.rule != "spread") return kept;
  const std::vector<double> priority = loop::spread_priorities(scores);
  kept = loop::select_top(priority, {.fraction = s.fraction});
  std::sort(kept.begin(), kept.end());
  return kept;
}

// Whether the rule ranks a round's pairs (policy, reward) rather than its prompts (spread).
inline bool selects_pairs(const loop_select& s) { return s.rule == "policy" || s.rule == "reward"; }

// h of each pair, (log π_θ − log π_ref)(chosen) − (log π_θ − log π_ref)(rejected), the completions'
// summed log-probs under the model folders `policy` and `reference` ({directory, adapter}); every
// margin is 0 without a forward pass when the two are the same model.
template <class B>
std::vector<double> implicit_margins(const B& backend, const std::pair<std::string, std::string>& policy,
                                            const std::pair<std::string, std::string>& reference, const prompt_set& p,
                                            const std::vector<sampled>& s, const std::vector<loop::scored_pair>& pairs) {
  std::vector<double> h(pairs.size(), 0.0);
  if (policy == reference || pairs.empty()) return h;
  std::vector<std::size_t> first(s.size() + 1, 0);  // offset of each prompt's completions in the flat log-probs
  for (std::size_t i = 0; i < s.size(); ++i) first[i + 1] = first[i] + s[i].tokens.size();
  const std::vector<double> lp = sequence_logps(backend, policy.first, policy.second, p, s);
  const std::vector<double> lr = sequence_logps(backend, reference.first, reference.second, p, s);
  if (lp.size() != first.back() || lr.size() != first.back())
    throw shape_error("active selection: log-probs", "expected " + std::to_string(first.back()) + " completions");
  for (std::size_t k = 0; k < pairs.size(); ++k) {
    const std::size_t c = first[pairs[k].prompt] + pairs[k].chosen, r = first[pairs[k].prompt] + pairs[k].rejected;
    h[k] = (lp[c] - lr[c]) - (lp[r] - lr[r]);
  }
  return h;
}

// The pairs (indices, ascending: the round's order) kept by rule policy or reward: the ⌈fraction·n⌉
// of highest priority (loop::policy_priorities or reward_priorities), equal priorities in pair order.
inline std::vector<std::size_t> select_pairs(const loop_select& s, const std::vector<double>& priority) {
  std::vector<std::size_t> kept = loop::select_top(priority, {.fraction = s.fraction});
  std::sort(kept.begin(), kept.end());
  return kept;
}

inline std::size_t count_lines(const std::filesystem::path& f) {
  std::ifstream in(f, std::ios::binary);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) n += !line.empty();
  return n;
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

} // namespace prefopt::cli
