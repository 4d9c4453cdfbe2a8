// prefopt/data/collate.hpp — from dataset records to trainer batches: tokenization, truncation, batching.
//
// Tokenization follows TRL 1.16's DPOTrainer/KTOTrainer._prepare_dataset exactly (the tests compare
// ids with TRL's own output for GPT-2, Llama-3 and Qwen2 tokenizers):
//   text records     each completion gets `eos_token` appended unless it already ends with it; then
//                    prompt_ids = encode(prompt) and full_ids = encode(prompt + completion), both with
//                    add_special_tokens = true (TRL calls tokenizer(text), so Llama-3 gets its BOS).
//   message lists    prompt_ids = encode(render(prompt, add_generation_prompt)) and full_ids =
//                    encode(render(prompt + completion)), add_special_tokens = false (as
//                    apply_chat_template(tokenize=True) does; the template writes BOS itself). No
//                    EOS is added (the template ends the turn), except with gpt2-plain, which has no
//                    end of turn: its rendered prompt + completion gets `eos_token` as text gets it.
//                    A prompt that ends with an assistant message still gets the generation prompt,
//                    as in TRL 1.16 (the completion is a new assistant turn).
//   the split        n = the common prefix length (in ids) of prompt_ids with every full_ids (both
//                    completions of a pair); prompt = prompt_ids[:n], completion = full_ids[n:].
//                    n < |prompt_ids| when tokens merge across the boundary ("Fra" + "nce"): the
//                    report counts these "prompt cuts", as TRL warns about them.
//   pre-tokenized    ids are used exactly as given.
// Unpaired (KTO) data: a paired file is unpaired first as TRL's KTOTrainer does (formats.hpp unpair()).
//
// Truncation: three modes (collate_options::truncation), for max_length L, optional
// max_prompt_length P and max_completion_length C; first, in every mode, each completion keeps its
// first C tokens (TRL 0.x's max_completion_length).
//   keep_prompt_end  prefopt's rule, the default of run.json, with longest = the pair's longest completion:
//                    (a) with P set, the prompt keeps its last P tokens;
//                    (b) if |prompt| + longest > L, the prompt keeps its last
//                        max(L − longest, min(|prompt|, L / 2)) tokens (a long answer cannot squeeze
//                        the prompt below half of L);
//                    (c) each completion keeps its first L − |prompt| tokens.
//   keep_start       TRL 1.16's default (DPOTrainer): a pair whose prompt alone has L tokens or more is
//                    dropped (counted: dropped_prompt_fills, TRL's "fully truncated examples"); each
//                    row prompt + completion keeps its first L tokens, i.e. each completion keeps its
//                    first L − |prompt|. With P set the prompt first keeps its first P (TRL 0.x).
//   keep_end         TRL 1.16's keep_end (deprecated there): each row prompt + completion keeps its
//                    last L tokens; nothing is dropped. TRL cuts the two rows of a pair separately, so
//                    with completions of different lengths its rows keep different parts of the
//                    prompt: the pair then carries the rejected row's own prompt
//                    (tokenized_pair::rejected_prompt) and is packed as two rows in either layout
//                    (counted: keep_end_split). A completion of L tokens or more keeps no prompt in
//                    TRL's row; here the row's first kept token becomes its prompt (nothing predicts
//                    a row's first token, in TRL or here, so the log-probs are TRL's). With P set the
//                    prompt first keeps its last P.
// A pair whose prompt or a completion is empty, before or after truncation, is skipped and counted
// (collate_report), never passed on to become a NaN. A dataset left with no example is a data_error.
// Unpaired (KTO) examples take the same rules with one completion.
//
// Per-pair columns (preference_prob, score_chosen, score_rejected, cost, weight) are kept as
// vectors parallel to the pairs: empty when no kept record has the column, one value per pair
// otherwise; a column that some kept records have and others lack is a data_error naming a line.
//
// Batching: make_batch_plan() splits an epoch into minibatches of example indices from a seed;
// with length bucketing, indices are shuffled, cut into mega-batches of mega_batch_factor ×
// batch_size, sorted by length (longest first) within each, cut into batches, and the batch order
// is shuffled: batches hold examples of similar length, so a padded layout wastes little.
// padding_waste() measures that waste, Σ (row width − row length) / Σ row width, where a batch's
// rows are padded to its longest row. Shuffles use their own Fisher–Yates over std::mt19937_64 with
// unbiased rejection sampling, so a seed gives the same plan with every standard library.
// make_batch() packs pairs with models::pack_pairs (packed rows; optional pad_to_multiple_of).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <prefopt/core/error.hpp>
#include <prefopt/data/chat_template.hpp>
#include <prefopt/data/formats.hpp>
#include <prefopt/data/tokenizer.hpp>
#include <prefopt/models/token_batch.hpp>
#include <prefopt/train/batch.hpp>

namespace prefopt::data {

enum class truncation_mode { keep_prompt_end, keep_start, keep_end };  // the rules above
[[nodiscard]] constexpr std::string_view to_string(truncation_mode m) {
  return m == truncation_mode::keep_start ? "keep_start" : m == truncation_mode::keep_end ? "keep_end" : "keep_prompt_end";
}
// "keep_prompt_end", "keep_start", "keep_end"; config_error naming `where` for anything else.
[[nodiscard]] inline truncation_mode truncation_mode_from_name(std::string_view name, const std::string& where = "truncation_mode") {
  for (auto m : {truncation_mode::keep_prompt_end, truncation_mode::keep_start, truncation_mode::keep_end})
    if (name == to_string(m)) return m;
  throw config_error(where, "'" + std::string(name) + "' is not one of keep_prompt_end (prefopt), keep_start, keep_end (TRL)");
}

struct collate_options {
  // Appended to text completions (TRL: tokenizer.eos_token), e.g. config_special_token(
  // tokenizer_config, "eos_token"). Required for text records and the gpt2-plain template.
  std::string eos_token{};
  // Id of padding tokens (pad_to_multiple_of); default: eos_token's id when the tokenizer knows it, else 0.
  std::optional<std::int32_t> pad_token_id{};
  std::optional<std::size_t> max_length = 1024;  // TRL's default; nullopt: no truncation
  std::optional<std::size_t> max_prompt_length{};
  std::optional<std::size_t> max_completion_length{};
  truncation_mode truncation = truncation_mode::keep_prompt_end;
  std::size_t keep_lines = 5;  // line numbers the report keeps per kind
};

struct collate_report {
  std::size_t records = 0;  // examples in (after unpairing, for KTO data)
  std::size_t kept = 0;
  std::size_t skipped_empty_prompt = 0;      // empty prompt before truncation (e.g. "" or merged away)
  std::size_t skipped_empty_completion = 0;  // empty completion before truncation
  std::size_t skipped_by_truncation = 0;     // prompt or completion truncated to nothing
  std::size_t dropped_prompt_fills = 0;      // keep_start: the prompt alone has max_length tokens (TRL drops these)
  std::size_t keep_end_split = 0;            // keep_end: pairs whose two rows keep different prompt parts (two rows)
  std::size_t truncated_prompt = 0;          // kept examples whose prompt lost tokens
  std::size_t truncated_completion = 0;      // kept examples with a completion that lost tokens
  std::size_t prompt_cuts = 0;               // examples whose split moved into the tokenized prompt
  std::vector<std::size_t> skipped_lines{}, truncated_lines{}, prompt_cut_lines{};  // the first few

  [[nodiscard]] std::size_t skipped() const noexcept {
    return skipped_empty_prompt + skipped_empty_completion + skipped_by_truncation + dropped_prompt_fills;
  }
  // "60 records: 58 kept, 2 skipped (1 empty prompt, 0 empty completion, 1 truncated to nothing;
  //  lines 13, 40); truncated: 3 prompts, 5 completions (lines 7, 9); 12 prompt cuts (lines 3, 4)"
  [[nodiscard]] std::string summary() const;
};

// Tokenized preference pairs, ready for batching.
struct tokenized_preferences {
  std::string file;
  std::vector<models::tokenized_pair> pairs;
  std::vector<std::size_t> lines;  // each pair's line in the file
  std::vector<double> preference_prob, score_chosen, score_rejected, cost, weight;  // empty or one per pair
  std::vector<double> reference_chosen, reference_rejected;  // precomputed reference log-probs (train/reference_cache.hpp)
  std::int32_t pad_token_id = 0;
  collate_report report;

  [[nodiscard]] std::size_t size() const noexcept { return pairs.size(); }
};

struct tokenized_example {
  std::vector<std::int32_t> prompt, completion;
  bool label = false;  // true: desirable
};

// Tokenized unpaired (KTO) examples.
struct tokenized_unpaired {
  std::string file;
  std::vector<tokenized_example> examples;
  std::vector<std::size_t> lines;
  std::vector<double> weight;  // empty or one per example
  std::int32_t pad_token_id = 0;
  std::optional<std::size_t> max_length{};  // as collated (bounds the KL rows of make_unpaired_batch)
  collate_report report;

  [[nodiscard]] std::size_t size() const noexcept { return examples.size(); }
};

// One record as TRL tokenizes it (top of this file), without truncation. `chat` is required for
// message lists (config_error otherwise) and ignored for text. `where` prefixes error messages.
[[nodiscard]] inline models::tokenized_pair tokenize_pair(const preference_record& record, const tokenizer& tok,
                                                          const chat_template* chat, const collate_options& options,
                                                          const std::string& where = {});
[[nodiscard]] inline tokenized_example tokenize_example(const unpaired_record& record, const tokenizer& tok,
                                                        const chat_template* chat, const collate_options& options,
                                                        const std::string& where = {});

// The whole file: tokenized, truncated, empty ones skipped (and counted). tokenize_preferences needs
// paired records (text or tokenized); tokenize_unpaired takes unpaired records or unpairs pairs.
[[nodiscard]] inline tokenized_preferences tokenize_preferences(const preference_file& file, const tokenizer& tok,
                                                                const chat_template* chat,
                                                                const collate_options& options = {});
// Pre-tokenized records only (no tokenizer needed); text records are a config_error.
[[nodiscard]] inline tokenized_unpaired tokenize_unpaired(const preference_file& file, const collate_options& options);
[[nodiscard]] inline tokenized_preferences tokenize_preferences(const preference_file& file,
                                                                const collate_options& options = {});
[[nodiscard]] inline tokenized_unpaired tokenize_unpaired(const preference_file& file, const tokenizer& tok,
                                                          const chat_template* chat, const collate_options& options = {});

struct truncation {
  bool prompt = false, completion = false;  // whether each lost tokens
  bool dropped = false;                     // keep_start: the prompt alone fills max_length (left as it was)
  bool split = false;                       // keep_end: the rows keep different parts of the prompt (rejected_prompt set)
};
// The truncation rules above, in place, with options' max_length, max_prompt_length,
// max_completion_length and truncation. max_length nullopt: only the other two apply.
inline truncation truncate_pair(models::tokenized_pair& pair, const collate_options& options);
inline truncation truncate_example(tokenized_example& example, const collate_options& options);
// keep_prompt_end with these lengths.
inline truncation truncate_pair(models::tokenized_pair& pair, std::optional<std::size_t> max_length,
                                std::optional<std::size_t> max_prompt_length = std::nullopt);
inline truncation truncate_example(tokenized_example& example, std::optional<std::size_t> max_length,
                                   std::optional<std::size_t> max_prompt_length = std::nullopt);

struct batch_plan_options {
  std::size_t batch_size = 8;
  bool shuffle = true;            // false: file order (bucketing then sorts without shuffling)
  bool length_bucketing = false;
  std::size_t mega_batch_factor = 50;
  bool drop_last = false;         // leave out a final batch smaller than batch_size
};

struct batch_plan {
  std::vector<std::vector<std::size_t>> batches;
  [[nodiscard]] std::size_t size() const noexcept { return batches.size(); }
  [[nodiscard]] std::size_t examples() const noexcept {
    std::size_t n = 0;
    for (const auto& b : batches) n += b.size();
    return n;
  }
};

// One epoch's minibatches of indices into `lengths` (one length per example, see row_lengths()).
[[nodiscard]] inline batch_plan make_batch_plan(std::span<const std::size_t> lengths,
                                                const batch_plan_options& options, std::mt19937_64& rng);
// The same with a generator seeded from (seed, epoch) through std::seed_seq.
[[nodiscard]] inline batch_plan make_batch_plan(std::span<const std::size_t> lengths,
                                                const batch_plan_options& options, std::uint64_t seed,
                                                std::uint64_t epoch);

// Length of each example in tokens as one padded row holds it: prompt + the longer completion
// (two-row layout), prompt + both (prefix sharing), prompt + completion (unpaired).
[[nodiscard]] inline std::vector<std::size_t> row_lengths(const tokenized_preferences& data, bool prefix_sharing);
[[nodiscard]] inline std::vector<std::size_t> row_lengths(const tokenized_unpaired& data);

// Σ (row width − row length) / Σ row width over the plan's batches in a padded layout (each batch
// a rectangle as wide as its longest row; two-row layout: rows prompt+chosen and prompt+rejected).
[[nodiscard]] inline double padding_waste(const tokenized_preferences& data, const batch_plan& plan,
                                          bool prefix_sharing);

// The pairs `indices` as a trainer batch: sequences = models::pack_pairs (B chosen, then B
// rejected), per-pair columns gathered (empty where the dataset has none), no reference log-probs.
// Pad tokens (pad_to_multiple_of > 1) carry data.pad_token_id. shape_error for an empty or
// out-of-range index list. The weight column has no place in train::preference_batch; gather it
// with gather_column(data.weight, indices).
[[nodiscard]] inline train::preference_batch<models::token_batch>
make_batch(const tokenized_preferences& data, std::span<const std::size_t> indices, bool prefix_sharing,
           int pad_to_multiple_of = 0);

// column[indices[k]] for each k; empty for an empty column.
[[nodiscard]] inline std::vector<double> gather_column(const std::vector<double>& column,
                                                       std::span<const std::size_t> indices);

// Unpaired examples as a batch: sequence i = example indices[i] (one row each). With kl_rows, B more
// sequences B + i pair example i's prompt with example (i − 1 mod B)'s completion — TRL's mismatched
// KL completions, rotated within the batch — the completion cut to max_length − |prompt| tokens.
struct unpaired_batch {
  models::token_batch sequences{};
  std::size_t examples = 0;
  std::vector<char> desirable{};  // 1 = desirable (label true)
  std::vector<double> weight{};   // empty when the dataset has none
};
// kl_completions (when given, one per index): the examples whose completions the KL rows take,
// instead of the previous example of `indices` — a rank's shard of a larger batch takes its
// neighbours' completions from the whole batch, as one process would.
[[nodiscard]] inline unpaired_batch make_unpaired_batch(const tokenized_unpaired& data,
                                                        std::span<const std::size_t> indices, bool kl_rows,
                                                        int pad_to_multiple_of = 0,
                                                        std::span<const std::size_t> kl_completions = {});

} // namespace prefopt::data

#include <prefopt/data/collate_impl.hpp>
#include <prefopt/data/collate_batch_impl.hpp>
