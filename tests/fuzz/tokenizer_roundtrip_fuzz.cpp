// Fuzz target: encode/decode with the committed GPT-2 and Llama-3 test tokenizers (byte-level BPE,
// no normalizer). Valid UTF-8 must round-trip exactly: decode(encode(text)) == text, with and
// without special tokens. The same bytes read as token ids go to decode(), where an id outside the
// vocabulary is a data_error (a clean rejection) and anything else must not fail.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "prefopt/data/tokenizer.hpp"

namespace {
const prefopt::data::tokenizer& family(std::size_t i) {
  using prefopt::data::tokenizer;
  static const tokenizer gpt2 = tokenizer::from_file(prefopt::fuzz::test_data("tokenizer/gpt2/tokenizer.json"));
  static const tokenizer llama3 = tokenizer::from_file(prefopt::fuzz::test_data("tokenizer/llama3/tokenizer.json"));
  return i % 2 == 0 ? gpt2 : llama3;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace prefopt;
  const std::string text(fuzz::as_text(data, size));
  for (std::size_t f = 0; f < 2; ++f) {
    const auto& tok = family(f);
    std::vector<std::int32_t> ids;
    // Invalid UTF-8 is a data_error by contract.
    if (fuzz::reject_cleanly([&] { ids = tok.encode(text, false); })) {
      fuzz::check(tok.decode(ids) == text, "decode(encode(text)) == text");
      const auto with_special = tok.encode(text, true);
      (void)tok.decode(with_special, true);
      for (const auto id : ids) fuzz::check(std::size_t(id) < tok.vocab_size(), "ids below vocab_size");
    }
    std::vector<std::int32_t> raw(size / 4);
    if (!raw.empty()) std::memcpy(raw.data(), data, raw.size() * 4);
    for (auto& id : raw) id = static_cast<std::int32_t>(static_cast<std::uint32_t>(id) % (tok.vocab_size() + 8));
    fuzz::reject_cleanly([&] { (void)tok.decode(raw, f == 0); });
  }
  return 0;
}
