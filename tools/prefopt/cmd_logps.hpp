// tools/prefopt/cmd_logps.hpp — `prefopt logps`: reference log-probs for a dataset of pairs.
//
// For every pair of the dataset — pre-tokenized (prompt_input_ids, chosen_input_ids,
// rejected_input_ids: used exactly as given, nothing appended) or text in TRL's formats (tokenized
// with the model's tokenizer.json and chat template as `prefopt train` does) — writes one JSON line
// {"line", "chosen_logps", "rejected_logps", "chosen_tokens", "rejected_tokens"}: sums over
// completion tokens. A malformed line is reported with its number and skipped (--strict: stop);
// the count of skipped lines is printed.
#pragma once

#include <cstdio>
#include <fstream>
#include <iostream>

#include "args.hpp"
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
                {"max-length", "N", "truncate text pairs to N tokens (default: no truncation)"}});
  if (a.flag("help")) return 0;
  const std::string data_path = a.require("data"), out_path = a.require("out");
  const long batch = a.integer("batch-size", 8);
  if (batch <= 0) throw config_error("--batch-size", "must be > 0");
  train::run_config cfg = data_flags(a);
  std::size_t read_skipped = 0;
  const data::tokenized_preferences d = tokenize_file(data_path, cfg, nullptr, std::cerr, &read_skipped);
  std::vector<data::tokenized_pair_record> owned(d.size());
  for (std::size_t i = 0; i < d.size(); ++i) owned[i] = {d.pairs[i].prompt, d.pairs[i].chosen, d.pairs[i].rejected, {}, {}, {}, {}, {}, d.lines[i]};
  const auto& records = owned;
  const std::size_t skipped_reading = read_skipped + d.report.skipped();
  std::string out;
  std::size_t out_of_vocab = 0;  // and empty sequences
  with_model(a.require("model"), a.get("adapter"), [&](auto& model) {
    const auto vocab = model.config().vocab_size;
    std::vector<const data::tokenized_pair_record*> valid;
    for (const auto& r : records) {
      std::int32_t bad = -1;
      for (const auto* ids : {&r.prompt, &r.chosen, &r.rejected})
        for (auto id : *ids)
          if (id >= vocab) bad = id;
      const bool empty = r.prompt.empty() || r.chosen.empty() || r.rejected.empty();
      if (bad < 0 && !empty) {
        valid.push_back(&r);
        continue;
      }
      const data_error e(data_path + ":" + std::to_string(r.line),
                         empty ? std::string("an empty prompt or completion has no completion log-prob")
                               : "token id " + std::to_string(bad) + " is outside the model's vocabulary of " + std::to_string(vocab));
      if (a.flag("strict")) throw e;
      std::cerr << "prefopt logps: skipped " << e.what() << "\n";
      ++out_of_vocab;
    }
    for (std::size_t start = 0; start < valid.size(); start += std::size_t(batch)) {
      const std::size_t end = std::min(valid.size(), start + std::size_t(batch));
      std::vector<models::tokenized_pair> pairs;
      // The pair itself (keep_end truncation can give its rejected row a prompt of its own).
      for (std::size_t i = start; i < end; ++i) pairs.push_back(d.pairs[std::size_t(valid[i] - owned.data())]);
      models::sequence_logps lp;
      model.forward(models::pack_pairs(pairs, a.flag("prefix-sharing")), lp, {.keep_activations = false});
      const std::size_t n = pairs.size();
      for (std::size_t i = 0; i < n; ++i) {
        const nlohmann::json row = {{"line", valid[start + i]->line},
                                    {"chosen_logps", lp.logp[i]},
                                    {"rejected_logps", lp.logp[n + i]},
                                    {"chosen_tokens", lp.tokens[i]},
                                    {"rejected_tokens", lp.tokens[n + i]}};
        out += row.dump() + "\n";
      }
    }
  });
  io::write_atomically(out_path, std::string_view(out));
  std::fprintf(stderr, "prefopt logps: %zu pairs written to %s; %zu lines skipped (%zu at reading, %zu with ids outside the vocabulary)\n",
               records.size() - out_of_vocab, out_path.c_str(), skipped_reading + out_of_vocab, skipped_reading, out_of_vocab);
  return 0;
}

} // namespace prefopt::cli
