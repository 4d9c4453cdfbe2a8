// tests/fuzz/fuzz_support.hpp — what every libFuzzer target shares.
//
// A target feeds its input to one parser. prefopt::error (and its subclasses) is the parser's
// documented answer to bad input: a clean rejection, so reject_cleanly() swallows it. Anything
// else — another exception, an ASan/UBSan report, a failed check() — is a finding: the exception
// escapes LLVMFuzzerTestOneInput, std::terminate aborts, and libFuzzer saves the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include <unistd.h>

#include "prefopt/core/error.hpp"

namespace prefopt::fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Runs fn; prefopt::error is a clean rejection (returns false), anything else propagates.
template <class Fn> bool reject_cleanly(Fn&& fn) {
  try {
    fn();
    return true;
  } catch (const prefopt::error&) {
    return false;
  }
}

// A property of the parsed result that must hold: abort with a message (libFuzzer saves the input).
inline void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "prefopt fuzz: property violated: %s\n", what);
    std::abort();
  }
}

// A scratch directory of this process (libFuzzer's -jobs/-fork run several at once), removed at exit.
inline const std::filesystem::path& scratch_dir() {
  struct owned {
    std::filesystem::path dir;
    owned() {
      const char* tmp = std::getenv("TMPDIR");
      dir = std::filesystem::path(tmp && *tmp ? tmp : "/tmp") / ("prefopt-fuzz-" + std::to_string(::getpid()));
      std::filesystem::create_directories(dir);
    }
    ~owned() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  };
  static const owned scratch;
  return scratch.dir;
}

// Writes the input to `name` in the scratch directory, for parsers that read files.
inline std::filesystem::path write_scratch(const std::string& name, std::string_view bytes) {
  auto path = scratch_dir() / name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) {
    std::fprintf(stderr, "prefopt fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

inline std::filesystem::path test_data(const std::string& relative) {
  return std::filesystem::path(PREFOPT_TEST_DATA_DIR) / relative;
}

} // namespace prefopt::fuzz
