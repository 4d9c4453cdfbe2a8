// Hostile JSON in safetensors files and indexes: nesting 100 000 levels deep (in a tensor's
// `shape`, in the index's weight_map), a number beyond a double, a NUL byte — each a format_error
// naming the file, never a stack overflow or a bare nlohmann-json exception. Files are built here.
#include <doctest/doctest.h>

#include <fstream>
#include <string>

#include "io_test_support.hpp"
#include "prefopt/io/safetensors.hpp"
#include "prefopt/io/safetensors_index.hpp"

using prefopt::test::crafted_file;
using prefopt::test::temp_dir;

namespace {

std::string deep_arrays(std::size_t levels) { return std::string(levels, '[') + std::string(levels, ']'); }

template <class F> std::string format_error_of(F&& f) {
  try {
    f();
  } catch (const prefopt::format_error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not a format_error: ") + e.what();
  }
  return "(no exception)";
}

std::string open_crafted(const temp_dir& dir, const std::string& header) {
  const auto path = dir / "model.safetensors";
  prefopt::test::write_bytes(path, crafted_file(header, 8));
  return format_error_of([&] { prefopt::io::safetensors_file f(path); });
}

} // namespace

TEST_CASE("safetensors header: a shape nested 100 000 levels deep is a format_error naming the file") {
  const temp_dir dir;
  const auto msg = open_crafted(dir, R"({"w": {"dtype": "F32", "shape": )" + deep_arrays(100000) + R"(, "data_offsets": [0, 8]}})");
  CHECK(msg.starts_with((dir / "model.safetensors").string() + ": header nests arrays and objects deeper than 256 levels"));
}

TEST_CASE("safetensors header: 1e400 is a format_error naming the file, not a bare parser exception") {
  const temp_dir dir;
  const auto msg = open_crafted(dir, R"({"w": {"dtype": "F32", "shape": [1e400], "data_offsets": [0, 8]}})");
  CHECK(msg.starts_with((dir / "model.safetensors").string() + ": header holds a number out of the range of a double"));
}

TEST_CASE("safetensors header: a shape entry that is not an integer is quoted briefly") {
  const temp_dir dir;
  const auto msg = open_crafted(dir, R"({"w": {"dtype": "F32", "shape": [")" + std::string(500, 'x') + R"("], "data_offsets": [0, 8]}})");
  CHECK(msg.find("'shape' holds \"xxxx") != std::string::npos);
  CHECK(msg.find("...") != std::string::npos);
  CHECK(msg.size() < 300);
}

TEST_CASE("safetensors index: nesting 100 000 levels deep and a NUL byte are format_errors naming the file") {
  const temp_dir dir;
  const auto path = dir / "model.safetensors.index.json";
  std::ofstream(path, std::ios::binary) << R"({"metadata": {}, "weight_map": {"w": )" + deep_arrays(100000) + "}}";
  auto msg = format_error_of([&] { prefopt::io::safetensors_index index(path); });
  CHECK(msg.starts_with(path.string() + ": the index nests arrays and objects deeper than 256 levels"));
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << R"({"weight_map": {"w": "a.safetensors"}})" << '\0' << R"(, "x": 1})";
  }
  msg = format_error_of([&] { prefopt::io::safetensors_index index(path); });
  CHECK(msg.starts_with(path.string() + ": the index is not valid JSON: NUL byte at offset"));
}
