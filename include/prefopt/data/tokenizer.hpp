// prefopt/data/tokenizer.hpp — byte-level BPE tokenizer read from a Hugging Face tokenizer.json.
//
// Gives the same ids as the Hugging Face `tokenizers` library (checked against it for GPT-2,
// Llama-3 and Qwen2 style files, see tests/data/tokenizer_test.cpp) for the components those
// families use: added tokens (special or not, with single_word/lstrip/rstrip/normalized), the NFC
// normalizer (utf8proc), ByteLevel and Split pre-tokenizers (patterns run by Oniguruma, as the
// library runs them), a BPE model (merges as "a b" or ["a", "b"],
// ignore_merges), TemplateProcessing/ByteLevel post-processors and the ByteLevel decoder.
// Anything else in the file is a format_error naming the file and the JSON path.
//
//   auto tok = prefopt::data::tokenizer::from_file("tokenizer.json");
//   std::vector<std::int32_t> ids = tok.encode("Hello world", /*add_special_tokens=*/true);
//   std::string text = tok.decode(ids, /*skip_special_tokens=*/true);
//
// Differences from the library, all on input the library would also treat as suspect:
//   * encode requires valid UTF-8 (a Rust string always is) and throws data_error otherwise;
//   * decode and id_to_token throw data_error for an id that is not in the vocabulary (the
//     library silently skips it in decode);
//   * "truncation" and "padding" in the file are ignored (the collator truncates and pads);
//   * Unicode data is that of the system's Oniguruma and utf8proc (Debian 12: 14.0 and 15.0), so
//     characters assigned in later versions may differ;
//   * a pattern longer than 16 KiB is refused, and a pattern search over Oniguruma's retry limits
//     (ten million steps at one position, as the library; ten million plus 64 per byte in one
//     search) throws data_error naming the file and the pattern (regex.hpp).
// Added-token ids follow the library's rule, not the "id" written in the file: a token the
// vocabulary already has keeps that id, a new one gets the next free id (they agree for files
// the library wrote).
//
// Thread safety: a tokenizer is immutable after loading except for an internal word cache that
// is guarded by a mutex, so encode/decode may be called from several threads at once. Copies
// share the loaded tables and the cache.
#pragma once

#include <prefopt/core/error.hpp>
#include <prefopt/data/detail/tokenizer_json.hpp>
#include <prefopt/data/detail/tokenizer_pipeline.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace prefopt::data {

class tokenizer {
public:
  // Reads and checks a tokenizer.json; throws io_error when the file cannot be read and
  // format_error (naming the file and the JSON path) when its content is invalid or unsupported.
  static tokenizer from_file(const std::filesystem::path& tokenizer_json);
  // The same from parsed JSON; source_name is used in error messages.
  static tokenizer from_json(const nlohmann::json& j, std::string source_name = "tokenizer.json");

  // Token ids of `text` (UTF-8). With add_special_tokens the post-processor runs (e.g. Llama-3's
  // template prepends <|begin_of_text|>).
  [[nodiscard]] std::vector<std::int32_t> encode(std::string_view text, bool add_special_tokens = false) const;
  // Text of `ids`; skip_special_tokens leaves out tokens whose content is a special token.
  [[nodiscard]] std::string decode(std::span<const std::int32_t> ids, bool skip_special_tokens = false) const;

  // Id of a token (added tokens first, then the model's vocabulary), in vocabulary spelling
  // (byte-level characters, e.g. "Ġthe").
  [[nodiscard]] std::optional<std::int32_t> token_to_id(std::string_view token) const;
  // The token with this id; throws data_error when no token has it. An added token with
  // normalized = true is given in normalized form, as the library gives it.
  [[nodiscard]] std::string id_to_token(std::int32_t id) const;
  // Largest id + 1, added tokens included.
  [[nodiscard]] std::size_t vocab_size() const noexcept;
  // Whether the token with this id is a special token (false for unknown ids).
  [[nodiscard]] bool is_special(std::int32_t id) const;

private:
  explicit tokenizer(std::shared_ptr<const detail::tokenizer_state> state)
      : state_(std::move(state)), cache_(std::make_shared<detail::word_cache>()) {}

  [[nodiscard]] const std::string* content_of(std::int32_t id) const;

  std::shared_ptr<const detail::tokenizer_state> state_;
  std::shared_ptr<detail::word_cache> cache_;
};

} // namespace prefopt::data

#include <prefopt/data/tokenizer_impl.hpp>
