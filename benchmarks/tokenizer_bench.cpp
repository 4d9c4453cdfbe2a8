// tokenizer_bench — encode throughput of prefopt::data::tokenizer on a corpus of strings.
//
//   tokenizer_bench <tokenizer.json> <strings.jsonl> [rounds=5] [passes=10]
//
// strings.jsonl holds one JSON string per line (tests/data/tokenizer/strings.jsonl). Each round
// makes `passes` passes over the corpus, encoding every string on its own (add_special_tokens =
// false, one thread), as
// tokenizer_bench.py does with the Hugging Face tokenizers library. Prints one JSON line per
// round: {"bytes", "tokens", "wall_s", "cpu_s", "mb_per_s"} (MB/s over process CPU time, so that
// other work on a shared machine counts less), the token count showing that both sides did the
// same work. benchmarks/tokenizer_run.py runs both sides interleaved.
#include <prefopt/data/tokenizer.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <exception>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) try {
  if (argc < 3) {
    std::cerr << "usage: tokenizer_bench <tokenizer.json> <strings.jsonl> [rounds] [passes]\n";
    return 2;
  }
  const auto tok = prefopt::data::tokenizer::from_file(argv[1]);
  std::ifstream in(argv[2]);
  if (!in) throw prefopt::io_error(argv[2], "cannot open for reading");
  std::vector<std::string> texts;
  std::size_t bytes = 0;
  for (std::string line; std::getline(in, line);) {
    texts.push_back(nlohmann::json::parse(line).get<std::string>());
    bytes += texts.back().size();
  }
  const int rounds = argc > 3 ? std::stoi(argv[3]) : 5;
  const int passes = argc > 4 ? std::stoi(argv[4]) : 10;
  (void)tok.encode(texts.front());  // first-call set-up (Oniguruma's tables) outside the rounds
  for (int r = 0; r < rounds; ++r) {
    std::size_t tokens = 0;
    const auto w0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    for (int p = 0; p < passes; ++p)
      for (const auto& t : texts) tokens += tok.encode(t).size();
    const double cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
    const std::size_t total = bytes * static_cast<std::size_t>(passes);
    std::printf("{\"bytes\": %zu, \"tokens\": %zu, \"wall_s\": %.4f, \"cpu_s\": %.4f, \"mb_per_s\": %.3f}\n", total,
                tokens, wall, cpu, static_cast<double>(total) / cpu / 1e6);
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "tokenizer_bench: " << e.what() << "\n";
  return 1;
}
