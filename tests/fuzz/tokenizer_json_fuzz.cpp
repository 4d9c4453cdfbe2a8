// Fuzz target: a tokenizer.json, through data::tokenizer::from_file. A file that loads must then
// work: encoding sample texts gives ids below vocab_size whose tokens exist (id_to_token), and
// decode() accepts every id that encode() produced (a data_error there would be a finding).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "prefopt/data/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace prefopt;
  const auto path = fuzz::write_scratch("tokenizer.json", fuzz::as_text(data, size));
  std::optional<data::tokenizer> tok;
  if (!fuzz::reject_cleanly([&] { tok = data::tokenizer::from_file(path); })) return 0;
  static const std::string samples[] = {
      "Hello world", "  leading and trailing  ", "Ça coûte 12,50 € — n'est-ce pas ?", "中文 😀\r\n\tx",
      "<|endoftext|>x<|im_start|>user\n", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 1234567890 I'll've", ""};
  for (const auto& s : samples) {
    for (const bool special : {false, true}) {
      std::vector<std::int32_t> ids;
      // encode may reject (no unk token for an unknown piece is a data_error by contract).
      if (!fuzz::reject_cleanly([&] { ids = tok->encode(s, special); })) continue;
      for (const auto id : ids) {
        fuzz::check(id >= 0 && std::size_t(id) < tok->vocab_size(), "encode gives ids below vocab_size");
        (void)tok->id_to_token(id);  // a data_error here escapes: encode produced an unknown id
      }
      (void)tok->decode(ids, false);
      (void)tok->decode(ids, true);
    }
  }
  return 0;
}
