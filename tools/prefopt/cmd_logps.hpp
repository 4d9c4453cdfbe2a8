// tools/prefopt/cmd_logps.hpp — `prefopt logps`: reference log-probs for a dataset of pairs.
//
// For every pair of the dataset — pre-tokenized (prompt_input_ids, chosen_input_ids,
// rejected_input_ids: used exactly as given, nothing appended) or text in TRL's formats (tokenized
// with the model's tokenizer.json and chat template as `prefopt train` does) — writes one JSON line
// {"line", "chosen_logps", "rejected_logps", "chosen_tokens", "rejected_tokens"}: sums over
// completion tokens. A malformed line is reported with its number and skipped (--strict: stop);
// the count of skipped lines is printed. --backend cuda scores on one GPU, --precision bf16 with
// training.precision's bf16 (core/bf16.hpp), on either backend.
#pragma once

#include <cstdio>
#include <fstream>
#include <iostream>

#include "args.hpp"
#include "backend_choice.hpp"
#include "logps_score.hpp"
#include "model_loader.hpp"
#include "prefopt/data/formats.hpp"
#include "session.hpp"
#include "prefopt/io/atomic_file.hpp"

namespace prefopt::cli {

inline const cli::command_info logps_info{
    "prefopt logps", "Writes chosen_logps / rejected_logps (sums over completion tokens) and token counts per line."};

inline int cmd_logps(int argc, char** argv) {
  const args a(argc, argv, 2, logps_info,
               {{"model", "DIR", "model directory (config.json, model.safetensors); required"},
                {"adapter", "DIR", "a PEFT LoRA adapter to apply"},
                {"data", "FILE", "preference pairs, JSONL in a TRL format (.gz too); required"},
                {"out", "FILE", "where the log-probs go, JSONL; required"},
                {"batch-size", "N", "pairs per forward pass (default 8)"},
                {"prefix-sharing", "", "pack prompt, chosen and rejected in one row (same numbers, less work)"},
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
  std::size_t read_skipped = 0;
  const data::tokenized_preferences d = tokenize_file(data_path, cfg, nullptr, std::cerr, &read_skipped);
  const std::size_t skipped_reading = read_skipped + d.report.skipped();
  const std::filesystem::path model_dir = a.require("model");
  const auto vocab = models::transformer_config::from_file(model_dir / "config.json").vocab_size;
  logps_job job;
  job.model = model_dir;
  job.adapter = a.get("adapter");
  job.batch = std::size_t(batch);
  job.prefix_sharing = a.flag("prefix-sharing");
  std::size_t out_of_vocab = 0;  // and empty sequences
  for (std::size_t i = 0; i < d.size(); ++i) {
    const auto& r = d.pairs[i];
    std::int32_t bad = -1;
    for (const auto* ids : {&r.prompt, &r.chosen, &r.rejected})
      for (auto id : *ids)
        if (id >= vocab) bad = id;
    const bool empty = r.prompt.empty() || r.chosen.empty() || r.rejected.empty();
    if (bad < 0 && !empty) {
      job.pairs.push_back(d.pairs[i]);  // the pair itself: keep_end truncation can give its rejected row a prompt of its own
      job.lines.push_back(d.lines[i]);
      continue;
    }
    const data_error e(data_path + ":" + std::to_string(d.lines[i]),
                       empty ? std::string("an empty prompt or completion has no completion log-prob")
                             : "token id " + std::to_string(bad) + " is outside the model's vocabulary of " + std::to_string(vocab));
    if (a.flag("strict")) throw e;
    std::cerr << "prefopt logps: skipped " << e.what() << "\n";
    ++out_of_vocab;
  }
  const precision p = parse_precision(a.get("precision", "fp32"), "--precision");
  const std::string out = on_backend(a.get("backend", "eigen"), p, "--backend", [&](const auto& be) { return score_pairs(be, job); });
  io::write_atomically(out_path, std::string_view(out));
  std::fprintf(stderr, "prefopt logps: %zu pairs written to %s; %zu lines skipped (%zu at reading, %zu with ids outside the vocabulary)\n",
               d.size() - out_of_vocab, out_path.c_str(), skipped_reading + out_of_vocab, skipped_reading, out_of_vocab);
  return 0;
}

} // namespace prefopt::cli
