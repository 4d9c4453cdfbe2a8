// The smallest program a user writes: one DPO loss evaluation, one backend op, and the data path
// (a tokenizer with an NFC normalizer and a split pattern, a gzip stream), which links the core's
// own dependencies (zlib, Oniguruma, utf8proc) through prefopt::prefopt.
#include <cstdio>
#include <sstream>
#include <prefopt/backends/eigen.hpp>
#include <prefopt/data/tokenizer.hpp>
#include <prefopt/io/gzip.hpp>
#include <prefopt/losses.hpp>

int main() {
  prefopt::pair_batch<double> b{.policy_chosen = {-1.0}, .policy_rejected = {-2.0},
                                .reference_chosen = {-1.5}, .reference_rejected = {-1.5}};
  const auto r = prefopt::evaluate(prefopt::losses::sigmoid{.beta = 0.1}, b);
  prefopt::backends::eigen be;
  auto buf = be.allocate<float>(3);
  be.fill(buf.span(), 2.0f);
  std::printf("loss %.6f, sum of squares %.1f\n", r.loss, be.sum_squares(buf.span()));

  const auto tok = prefopt::data::tokenizer::from_json(nlohmann::json::parse(R"({
    "normalizer": {"type": "NFC"}, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3}, "merges": ["a b"]}})"));
  const auto ids = tok.encode("ab a");
  std::istringstream empty;
  prefopt::io::gzip_reader gz(empty, "empty.gz");
  const bool data_ok = ids == std::vector<std::int32_t>{2, 3, 0} && gz.at_end();
  std::printf("tokens %zu, gzip at end %d\n", ids.size(), gz.at_end() ? 1 : 0);
  return r.loss > 0.0 && be.sum_squares(buf.span()) == 12.0 && data_ok ? 0 : 1;
}
