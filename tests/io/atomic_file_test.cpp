// Tests of include/prefopt/io/atomic_file.hpp. Expected behaviour: the target holds the old
// content or the new, never a part; no temporary file is left behind on success or failure.
// Failures are real ones: an exception from the body, EFBIG from a lowered RLIMIT_FSIZE, rename
// over a directory, a missing directory.
#include <doctest/doctest.h>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "io_test_support.hpp"
#include "prefopt/io/atomic_file.hpp"

using namespace prefopt::io;
using prefopt::test::temp_dir;

namespace {
std::string text_of(const std::filesystem::path& p) {
  const auto b = prefopt::test::read_bytes(p);
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}
unsigned mode_of(const std::filesystem::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}
} // namespace

TEST_CASE("writes a new file and leaves nothing else in the directory") {
  temp_dir dir;
  const auto target = dir / "out.bin";
  std::filesystem::path temporary;
  write_atomically(target, [&](atomic_output& out) {
    temporary = out.temporary_path();
    CHECK(temporary.parent_path() == dir.path());
    CHECK(temporary.filename().string().rfind(".out.bin.tmp-", 0) == 0);
    CHECK(std::filesystem::exists(temporary));
    CHECK(!std::filesystem::exists(target)); // nothing visible under the target name yet
    out.write(std::string_view("hello "));
    const std::vector<std::byte> big(3 << 20, std::byte{'x'}); // larger than the write buffer
    out.write(big);
    out.write(std::string_view("!"));
    CHECK(out.size() == 6 + (3u << 20) + 1);
  });
  const std::string got = text_of(target);
  CHECK(got.size() == 6 + (3u << 20) + 1);
  CHECK(got.substr(0, 7) == "hello x");
  CHECK(got.back() == '!');
  CHECK(dir.entries() == std::vector<std::string>{"out.bin"});
  CHECK(!std::filesystem::exists(temporary));
  const mode_t mask = ::umask(0);
  ::umask(mask);
  CHECK(mode_of(target) == (0666u & ~static_cast<unsigned>(mask)));
}

TEST_CASE("replaces an existing file, keeping its permission bits") {
  temp_dir dir;
  const auto target = dir / "state.json";
  write_atomically(target, std::string_view("old"));
  REQUIRE(::chmod(target.c_str(), 0640) == 0);
  write_atomically(target, std::as_bytes(std::span(std::string_view("new content"))));
  CHECK(text_of(target) == "new content");
  CHECK(mode_of(target) == 0640u);
  CHECK(dir.entries() == std::vector<std::string>{"state.json"});
}

TEST_CASE("an exception from the body midway leaves the old file and removes the temporary") {
  temp_dir dir;
  const auto target = dir / "model.safetensors";
  write_atomically(target, std::string_view("old content"));
  std::filesystem::path temporary;
  CHECK_THROWS_WITH_AS(write_atomically(target,
                                        [&](atomic_output& out) {
                                          temporary = out.temporary_path();
                                          out.write(std::vector<std::byte>(2 << 20, std::byte{1})); // on disk already
                                          throw std::runtime_error("tensor 7 has the wrong size");
                                        }),
                       "tensor 7 has the wrong size", std::runtime_error);
  CHECK(text_of(target) == "old content");
  CHECK(!std::filesystem::exists(temporary));
  CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});

  // With no old file, nothing at all is left.
  CHECK_THROWS_AS(write_atomically(dir / "fresh.bin", [](atomic_output& out) {
                    out.write(std::string_view("partial"));
                    throw std::logic_error("stop");
                  }),
                  std::logic_error);
  CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});
}

TEST_CASE("a write refused by the system (file size limit) is io_error; the old file stays") {
  temp_dir dir;
  const auto target = dir / "ckpt.bin";
  write_atomically(target, std::string_view("previous checkpoint"));
  {
    const prefopt::test::file_size_limit limit(64 * 1024);
    try {
      write_atomically(target, [](atomic_output& out) { out.write(std::vector<std::byte>(4 << 20, std::byte{2})); });
      FAIL("the write past the file size limit succeeded");
    } catch (const prefopt::io_error& e) {
      CHECK(e.where() == target.string());
      CHECK(std::string(e.why()).find("cannot write") != std::string::npos);
    }
  }
  CHECK(text_of(target) == "previous checkpoint");
  CHECK(dir.entries() == std::vector<std::string>{"ckpt.bin"});
}

TEST_CASE("a rename that fails (target is a directory) is io_error and leaves no temporary") {
  temp_dir dir;
  std::filesystem::create_directories(dir / "taken" / "inside");
  CHECK_THROWS_AS(write_atomically(dir / "taken", std::string_view("data")), prefopt::io_error);
  CHECK(std::filesystem::is_directory(dir / "taken" / "inside"));
  CHECK(dir.entries() == std::vector<std::string>{"taken"});
}

TEST_CASE("a missing directory is io_error naming the target") {
  temp_dir dir;
  const auto target = dir / "no" / "such" / "dir.bin";
  try {
    write_atomically(target, std::string_view("x"));
    FAIL("wrote into a missing directory");
  } catch (const prefopt::io_error& e) {
    CHECK(e.where() == target.string());
  }
  CHECK(dir.entries().empty());
}

TEST_CASE("a target without a directory part is written in the working directory") {
  temp_dir dir;
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  try {
    write_atomically("plain.txt", std::string_view("here"));
  } catch (...) {
    std::filesystem::current_path(cwd);
    throw;
  }
  std::filesystem::current_path(cwd);
  CHECK(text_of(dir / "plain.txt") == "here");
  CHECK(dir.entries() == std::vector<std::string>{"plain.txt"});
}
