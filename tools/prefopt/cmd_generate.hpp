// tools/prefopt/cmd_generate.hpp — `prefopt generate`: completions of a prompt dataset, KV-cached.
//
// Reads TRL's prompt column: "prompt" as text (tokenized with the model's tokenizer, special tokens
// added as transformers' tokenizer() does) or as a list of {role, content} messages (rendered with
// the chat template and the generation prompt, TRL's maybe_apply_chat_template, with the record's
// tools and chat_template_kwargs columns as the dataset reader takes them), or
// "prompt_input_ids" (ids used as given). Samples K completions per prompt with models::generate
// (temperature, top-k, top-p, min-p, repetition penalty, max_new_tokens, EOS, stop strings) and
// writes one JSON line per prompt: {"line", "prompt", "completions": [{"text", "token_ids",
// "finish_reason", "logp"}]}. Completion k of the prompt on line i is drawn with the seed
// mix_seed(mix_seed(--seed, i), k): the same output whatever --batch-size. Stop strings are found
// in the decoded continuation (kept in the output, as transformers' stop_strings does).
// --backend cuda generates on one GPU, --precision bf16 with training.precision's bf16, on either
// backend; the samplers run on the host over each step's downloaded logits (models/generate.hpp),
// so both backends draw the same tokens wherever their logits agree.
#pragma once

#include <cstdio>
#include <iostream>
#include <optional>

#include "args.hpp"
#include "backend_choice.hpp"
#include "model_loader.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/data/chat_template.hpp"
#include "prefopt/data/formats.hpp"
#include "prefopt/data/jsonl.hpp"
#include "prefopt/data/tokenizer.hpp"
#include "prefopt/io/atomic_file.hpp"
#include "prefopt/models/generate.hpp"
#include "session.hpp"

namespace prefopt::cli {

inline const cli::command_info generate_info{
    "prefopt generate",
    "Samples K completions per prompt (TRL's prompt column: text, messages, or prompt_input_ids).\n"
    "--temperature 0 is greedy. EOS: --eos-id, else generation_config.json, else the tokenizer's eos_token."};

namespace detail {

inline double number_option(const args& a, const std::string& k, double fallback) {
  if (!a.has(k)) return fallback;
  try {
    std::size_t used = 0;
    const double v = std::stod(a.get(k), &used);
    if (used != a.get(k).size()) throw std::invalid_argument("");
    return v;
  } catch (const std::exception&) {
    throw config_error("--" + k, "expects a number, got '" + a.get(k) + "'");
  }
}

// generation_config.json's eos_token_id (an id or a list: the first), if it lies in the vocabulary.
inline std::optional<std::int32_t> generation_eos(const std::filesystem::path& dir, int vocab) {
  const auto f = dir / "generation_config.json";
  if (!std::filesystem::exists(f)) return std::nullopt;
  const auto j = read_json_file(f);
  auto e = j.find("eos_token_id");
  if (e == j.end()) return std::nullopt;
  const nlohmann::json& v = e->is_array() && !e->empty() ? e->front() : *e;
  if (!v.is_number_integer()) return std::nullopt;
  const auto id = v.get<long long>();
  return id >= 0 && id < vocab ? std::optional<std::int32_t>(std::int32_t(id)) : std::nullopt;
}

} // namespace detail

// One prompt of the data file: the raw JSON (echoed back) and, after tokenization, its ids.
struct prompt_row {
  std::size_t line;
  nlohmann::json prompt;
  std::vector<std::int32_t> ids;
  data::detail::template_inputs inputs{};  // a conversational prompt's tools and chat_template_kwargs
};

// What one `prefopt generate` run samples: the prompts (tokenized), K each, and the options.
struct generate_job {
  std::filesystem::path model;
  std::string adapter, data_path;
  std::vector<prompt_row> rows;
  long n = 1;
  models::sampling_options options;  // without seeds, eos_id and stop: set per model
  std::optional<std::int32_t> eos_id;  // --eos-id
  std::uint64_t seed = 0;
  std::vector<std::string> stops;
  std::optional<data::tokenizer> tok;
  std::string eos_token;
};

struct generate_result {
  std::string jsonl;
  std::size_t produced = 0;
};

// The completions of every prompt as JSON lines, generated on `backend` (eigen here; cuda in
// loop_cuda.cpp, its own translation unit, where this program is built with the CUDA backend).
template <class B> generate_result generate_completions(const B& backend, const generate_job& job) {
  generate_result res;
  models::sampling_options opt = job.options;
  const auto& tok = job.tok;
  with_model(job.model, job.adapter, [&](auto& model) {
    const int vocab = model.config().vocab_size, positions = model.config().max_positions;
    if (job.eos_id) opt.eos_id = *job.eos_id;
    else if (const auto e = detail::generation_eos(job.model, vocab)) opt.eos_id = *e;
    else if (tok && !job.eos_token.empty())
      if (const auto id = tok->token_to_id(job.eos_token); id && *id < vocab) opt.eos_id = *id;
    std::vector<std::vector<std::int32_t>> prompts;
    for (const auto& r : job.rows) {
      const auto where = job.data_path + ":" + std::to_string(r.line);
      for (auto id : r.ids)
        if (id >= vocab) throw data_error(where, "token id " + std::to_string(id) + " is outside the model's vocabulary of " + std::to_string(vocab));
      if (int(r.ids.size()) >= positions)
        throw data_error(where, std::to_string(r.ids.size()) + " prompt tokens leave no room under max_positions " + std::to_string(positions));
      for (long k = 0; k < job.n; ++k) {
        prompts.push_back(r.ids);
        opt.seeds.push_back(mix_seed(mix_seed(job.seed, std::uint64_t(r.line)), std::uint64_t(k)));
      }
    }
    if (!job.stops.empty())
      opt.stop = [&](std::size_t, const std::vector<std::int32_t>& t) {
        const std::string text = tok->decode(std::span<const std::int32_t>(t), false);
        for (const auto& s : job.stops)
          if (text.find(s) != std::string::npos) return true;
        return false;
      };
    std::mt19937_64 unused(job.seed);
    const auto samples = models::generate(model, prompts, unused, opt);
    for (std::size_t i = 0; i < job.rows.size(); ++i) {
      nlohmann::json comps = nlohmann::json::array();
      for (long k = 0; k < job.n; ++k) {
        const auto& s = samples[i * std::size_t(job.n) + std::size_t(k)];
        nlohmann::json c = {{"token_ids", s.tokens}, {"finish_reason", models::name(s.finish)}, {"logp", s.logp}};
        if (tok) c["text"] = tok->decode(std::span<const std::int32_t>(s.tokens), true);
        comps.push_back(std::move(c));
        ++res.produced;
      }
      res.jsonl += nlohmann::json{{"line", job.rows[i].line}, {"prompt", job.rows[i].prompt}, {"completions", comps}}.dump() + "\n";
    }
  }, 0.0, backend);
  return res;
}

#ifdef PREFOPT_CLI_CUDA
extern template generate_result generate_completions<backends::cuda>(const backends::cuda&, const generate_job&);
#endif

inline int cmd_generate(int argc, char** argv) {
  const args a(argc, argv, 2, generate_info,
               {{"model", "DIR", "model directory (config.json, model.safetensors, tokenizer.json); required"},
                {"adapter", "DIR", "a PEFT LoRA adapter to apply"},
                {"no-adapter", "", "generate with the adapter switched off"},
                {"data", "FILE", "prompts, JSONL (.gz too); required"},
                {"out", "FILE", "where the completions go, JSONL; required"},
                {"n", "K", "completions per prompt (default 1)"},
                {"max-new-tokens", "N", "tokens generated at most per completion (default 64)"},
                {"temperature", "T", "sampling temperature; 0: greedy (default 1)"},
                {"top-k", "K", "keep the K most likely tokens; 0: all (default 0)"},
                {"top-p", "P", "nucleus sampling mass (default 1)"},
                {"min-p", "P", "drop tokens below P times the top probability (default 0)"},
                {"repetition-penalty", "R", "Hugging Face's repetition penalty (default 1)"},
                {"stop", "TEXT...", "stop string; repeat the option for several"},
                {"eos-id", "ID", "end-of-sequence token id"},
                {"seed", "S", "seed of the sampling (default 0)"},
                {"batch-size", "N", "prompts per batch (default 16)"},
                {"no-cache", "", "recompute every token without the KV cache"},
                {"tokenizer", "FILE", "tokenizer.json when the model directory has none"},
                {"chat-template", "NAME", "chat template for conversational prompts"},
                {"backend", "NAME", "eigen (the CPU, default) or cuda (one NVIDIA GPU, where prefopt was built with CUDA)"},
                {"precision", "P", "fp32 (default) or bf16: matrix products and attention on bf16-rounded inputs, as training.precision"}});
  if (a.flag("help")) return 0;
  const std::string model_dir = a.require("model"), data_path = a.require("data"), out_path = a.require("out");
  const long n = a.integer("n", 1), batch = a.integer("batch-size", 16);
  if (n <= 0) throw config_error("--n", "must be > 0");
  if (batch <= 0) throw config_error("--batch-size", "must be > 0");
  models::sampling_options opt;
  opt.max_new_tokens = int(a.integer("max-new-tokens", 64));
  opt.temperature = detail::number_option(a, "temperature", 1.0);
  opt.top_k = int(a.integer("top-k", 0));
  opt.top_p = detail::number_option(a, "top-p", 1.0);
  opt.min_p = detail::number_option(a, "min-p", 0.0);
  opt.repetition_penalty = detail::number_option(a, "repetition-penalty", 1.0);
  opt.batch_rows = int(batch);
  opt.use_cache = !a.flag("no-cache");
  opt.adapters = !a.flag("no-adapter");
  const auto seed = std::uint64_t(a.integer("seed", 0));
  const std::vector<std::string>& stops = a.all("stop");
  for (const auto& s : stops)
    if (s.empty()) throw config_error("--stop", "an empty stop string would end every completion at once");

  const precision prec = parse_precision(a.get("precision", "fp32"), "--precision");
  std::vector<prompt_row> rows;
  data::jsonl_reader reader(data_path);
  data::jsonl_line l;
  bool any_text = false, any_messages = false;
  while (reader.next(l)) {
    const auto where = data_path + ":" + std::to_string(l.line);
    if (!l.value.is_object()) throw data_error(where, "expected a JSON object");
    if (auto ids = l.value.find("prompt_input_ids"); ids != l.value.end()) {
      if (!ids->is_array() || ids->empty()) throw data_error(where + ": field 'prompt_input_ids'", "expected a non-empty list of token ids");
      std::vector<std::int32_t> v;
      for (const auto& x : *ids) {
        if (!x.is_number_integer() || x.get<long long>() < 0 || x.get<long long>() > INT32_MAX)
          throw data_error(where + ": field 'prompt_input_ids'", "expected token ids (non-negative integers)");
        v.push_back(std::int32_t(x.get<long long>()));
      }
      rows.push_back({l.line, *ids, std::move(v)});
      continue;
    }
    auto p = l.value.find("prompt");
    if (p == l.value.end()) throw data_error(where, "no 'prompt' (or 'prompt_input_ids') field");
    if (p->is_string()) any_text = true;
    else if (data::is_message_list(*p)) any_messages = true;
    else throw data_error(where + ": field 'prompt'", "expected a string or a list of {role, content} messages");
    rows.push_back({l.line, *p, {}});
    if (p->is_array()) rows.back().inputs = data::detail::parse_template_inputs(l.value, {data_path, l.line}, l.text);
  }
  if (rows.empty()) throw data_error(data_path, "no prompt in the file");
  if (any_text && any_messages) throw data_error(data_path, "mixes text and conversational prompts");

  const train::run_config cfg = data_flags(a);
  const bool need_text = any_text || any_messages || !stops.empty();
  std::optional<data::tokenizer> tok;
  std::optional<data::chat_template> chat;
  std::string eos_token;
  const std::filesystem::path tok_file = cfg.data.tokenizer ? std::filesystem::path(*cfg.data.tokenizer)
                                                            : std::filesystem::path(model_dir) / "tokenizer.json";
  if (need_text) {  // the tokenizer, chat template and EOS token as prefopt train reads them
    const text_pipeline tp = open_text_pipeline(cfg, any_messages, true);
    tok = tp.tok;
    chat = tp.chat;
    eos_token = tp.options.eos_token;
  } else if (std::filesystem::exists(tok_file)) {  // token ids in and out; the tokenizer only writes "text"
    tok = data::tokenizer::from_file(tok_file);
  }
  for (auto& r : rows) {
    if (!r.ids.empty()) continue;
    const auto where = data_path + ":" + std::to_string(r.line);
    if (r.prompt.is_string()) {
      r.ids = tok->encode(r.prompt.get<std::string>(), true);
    } else {
      const data::detail::record_place at{data_path, r.line};
      const data::messages m = data::detail::parse_messages(r.prompt, at, "prompt");
      if (m.back().role == "system") throw data_error(where + ": field 'prompt'", "ends with a system message");
      const bool cont = m.back().role == "assistant";
      r.ids = tok->encode(data::detail::at_record(where, [&] {
                            return data::render(*chat, m, !cont, cont, r.inputs.tools, r.inputs.chat_template_kwargs);
                          }), false);
    }
    if (r.ids.empty()) throw data_error(where + ": field 'prompt'", "tokenizes to no token");
  }

  generate_job job{.model = model_dir, .adapter = a.get("adapter"), .data_path = data_path, .rows = std::move(rows), .n = n,
                   .options = opt, .eos_id = std::nullopt, .seed = seed, .stops = stops, .tok = std::move(tok), .eos_token = eos_token};
  if (a.has("eos-id")) job.eos_id = std::int32_t(a.integer("eos-id", -1));
  const generate_result res = on_backend(a.get("backend", "eigen"), prec, "--backend", [&](const auto& be) { return generate_completions(be, job); });
  io::write_atomically(out_path, std::string_view(res.jsonl));
  std::fprintf(stderr, "prefopt generate: %zu completions of %zu prompts written to %s\n", res.produced, job.rows.size(), out_path.c_str());
  return 0;
}

} // namespace prefopt::cli
