// Paths to golden data committed under tests/data (produced by tools/reference/*.py).
// The directories are compiled into support/paths.cpp alone, so a test's object file does not
// depend on where the source tree lives (compiler caches share it across checkouts).
#pragma once
#include <filesystem>
#include <string>

namespace prefopt::test {
std::filesystem::path data_dir();    // tests/data of this source tree
std::filesystem::path source_dir();  // the source tree's root
inline std::filesystem::path data_path(const std::string& relative) { return data_dir() / relative; }
} // namespace prefopt::test
