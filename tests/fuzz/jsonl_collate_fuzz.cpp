// Fuzz target: a JSONL dataset in any of TRL's formats (standard, conversational, implicit prompt,
// unpaired, pre-tokenized) read by data::read_preference_file, then collated as training does:
// tokenized with the committed GPT-2 test tokenizer (conversations through a built-in chat
// template), truncated, planned into batches and packed. The input's size picks the variant (read
// policy, template, max_length, prefix sharing, unpairing), so the corpus explores them all
// without a header that would shift the JSON. Gzip input (magic 1f 8b) is decompressed as ever. Checked on every packed batch: the token batch is
// self-consistent (rows, positions and predictions within bounds), as a model relies on it.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "fuzz_support.hpp"
#include "prefopt/data/collate.hpp"

namespace {

using namespace prefopt;

const data::tokenizer& gpt2() {
  static const auto tok = data::tokenizer::from_file(fuzz::test_data("tokenizer/gpt2/tokenizer.json"));
  return tok;
}

void check_batch(const models::token_batch& b) {
  const auto n = b.tokens.size();
  fuzz::check(b.positions.size() == n && b.segment.size() == n, "positions and segments per token");
  fuzz::check(!b.row_offsets.empty() && b.row_offsets.front() == 0 && std::size_t(b.row_offsets.back()) == n,
              "row offsets cover the tokens");
  for (std::size_t r = 1; r < b.row_offsets.size(); ++r)
    fuzz::check(b.row_offsets[r - 1] <= b.row_offsets[r], "row offsets ascend");
  const auto h = b.predict_from.size();
  fuzz::check(b.predict_token.size() == h && b.predict_sequence.size() == h, "one target per prediction");
  for (std::size_t i = 0; i < h; ++i) {
    fuzz::check(b.predict_from[i] >= 0 && std::size_t(b.predict_from[i]) < n, "prediction inside the batch");
    fuzz::check(b.predict_sequence[i] >= 0 && b.predict_sequence[i] < b.sequences, "prediction of a sequence");
  }
}

data::chat_template pick_template(std::size_t v) {
  switch (v % 4) {
  case 0: return data::chatml_template();
  case 1: return data::qwen2_5_template();
  case 2: return data::llama3_template();
  default: return data::gpt2_plain_template();
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = fuzz::write_scratch("train.jsonl", fuzz::as_text(data, size));
  const std::size_t v = size;
  fuzz::reject_cleanly([&] {
    const auto file = data::read_preference_file(
        path, {.policy = v % 2 == 0 ? data::on_error::skip : data::on_error::stop, .keep_errors = 3});
    fuzz::check(file.size() > 0 && file.size() == file.report.records, "records counted");
    const auto chat = pick_template(v / 2);
    data::collate_options options{.eos_token = "<|endoftext|>"};
    options.max_length = v % 3 == 0 ? std::optional<std::size_t>{} : v % 3 == 1 ? std::optional<std::size_t>{12} : 1024;
    if (v % 7 == 0) options.max_prompt_length = 3;
    const data::batch_plan_options plan_options{.batch_size = 1 + v % 4, .length_bucketing = v % 2 == 1,
                                                .mega_batch_factor = 2};
    const bool prefix_sharing = v % 3 != 2;
    const int pad = v % 4 == 0 ? 8 : 0;
    if (data::is_unpaired(file.format) || v % 11 == 0) {
      const auto set = data::tokenize_unpaired(file, gpt2(), &chat, options);
      const auto lengths = data::row_lengths(set);
      const auto plan = data::make_batch_plan(lengths, plan_options, 1, 0);
      fuzz::check(plan.examples() == set.size(), "the plan holds every example once");
      for (const auto& b : plan.batches) check_batch(data::make_unpaired_batch(set, b, true, pad).sequences);
    } else {
      const auto set = data::tokenize_preferences(file, gpt2(), &chat, options);
      fuzz::check(set.report.kept == set.size() && set.size() > 0, "kept pairs counted");
      const auto lengths = data::row_lengths(set, prefix_sharing);
      const auto plan = data::make_batch_plan(lengths, plan_options, 1, 0);
      fuzz::check(plan.examples() == set.size(), "the plan holds every pair once");
      for (const auto& b : plan.batches) check_batch(data::make_batch(set, b, prefix_sharing, pad).sequences);
    }
  });
  return 0;
}
