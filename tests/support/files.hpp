// Scratch directories and whole-file reads for the tests that write files.
#pragma once

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <unistd.h>

namespace prefopt::test {

// <tmp>/prefopt-test-<pid>-<name>, emptied of whatever an earlier run left there, not created:
// for code under test that creates its own output directory. The pid keeps test executables
// that run at the same time apart; `name` keeps the cases of one executable apart.
inline std::filesystem::path scratch_path(const std::string& name) {
  const auto p = std::filesystem::temp_directory_path() / ("prefopt-test-" + std::to_string(::getpid()) + "-" + name);
  std::filesystem::remove_all(p);
  return p;
}

// The same directory, created empty.
inline std::filesystem::path scratch_dir(const std::string& name) {
  const auto p = scratch_path(name);
  std::filesystem::create_directories(p);
  return p;
}

// A file's bytes as stored; a file that cannot be opened fails the test.
inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(in, "cannot open " << p.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

} // namespace prefopt::test
