// Paths to golden data committed under tests/data (produced by tools/reference/*.py).
#pragma once
#include <filesystem>
#include <string>

namespace prefopt::test {
inline std::filesystem::path data_path(const std::string& relative) {
  return std::filesystem::path(PREFOPT_TEST_DATA_DIR) / relative;
}
} // namespace prefopt::test
