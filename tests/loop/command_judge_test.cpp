// The external-command judges: the protocol on stdin/stdout, and every way a command can fail —
// each a judge_error naming the command — with no zombie, no leaked descriptor and no SIGPIPE.
#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

#include "prefopt/loop/command_judge.hpp"

using namespace prefopt::loop;
using namespace std::chrono_literals;

namespace {

// A /bin/sh script in a fresh temporary folder; returns the argv that runs it.
std::vector<std::string> script(const std::string& name, const std::string& body) {
  const auto dir = std::filesystem::temp_directory_path() / ("prefopt_judge_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / (name + ".sh");
  std::ofstream(file) << body;
  return {"/bin/sh", file.string()};
}

std::size_t open_fds() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

bool no_children() {
  int status = 0;
  return ::waitpid(-1, &status, WNOHANG) < 0 && errno == ECHILD;
}

const std::vector<judge_request> two_requests{{"Say hi", {"hi", "hello \"there\"\n"}}, {"", {"x", "y"}}};

} // namespace

TEST_CASE("a scoring command reads one JSON line per request and answers one array per line") {
  // Each answer: the length of the request line it read, and its ordinal.
  command_judge j({.argv = script("lengths", "i=0\nwhile IFS= read -r line; do i=$((i+1)); echo \"[${#line}, $i.5]\"; done\n")});
  const auto before = open_fds();
  const auto s = j.score(two_requests);
  REQUIRE(s.size() == 2);
  const std::string lines = detail::request_lines(two_requests);
  const auto first = lines.find('\n');
  CHECK(s[0] == std::vector<double>{double(first), 1.5});
  CHECK(s[1] == std::vector<double>{double(lines.size() - first - 2), 2.5});
  CHECK(lines.substr(0, first) ==
        R"({"completions":["hi","hello \"there\"\n"],"prompt":"Say hi"})");
  CHECK(open_fds() == before);
  CHECK(no_children());
  CHECK(j.name().find("lengths.sh") != std::string::npos);
}

TEST_CASE("a command that fails is a judge_error that names it and says how") {
  const auto before = open_fds();
  auto fails = [&](const std::string& name, const std::string& body, const std::string& want,
                   std::chrono::milliseconds timeout = 10s) {
    command_judge j({.argv = script(name, body), .timeout = timeout, .name = name});
    try {
      (void)j.score(two_requests);
      FAIL("no error from " << name);
    } catch (const judge_error& e) {
      const std::string what = e.what();
      CHECK_MESSAGE(what.find("judge '" + name + "'") == 0, what);
      CHECK_MESSAGE(what.find(want) != std::string::npos, what);
    }
  };
  fails("exit3", "cat > /dev/null; echo '[1, 2]'; exit 3\n", "exited with status 3 after 1 of 2 answer lines");
  fails("malformed", "cat > /dev/null; echo '[1, 2]'; echo 'not json'\n", "output line 2: not JSON: 'not json'");
  fails("wrong_count", "cat > /dev/null; echo '[1]'; echo '[1, 2]'\n", "output line 1: 1 scores for 2 completions");
  fails("not_number", "cat > /dev/null; echo '[1, 2]'; echo '[1, \"x\"]'\n", "output line 2: score 1 is not a number: \"x\"");
  fails("not_array", "cat > /dev/null; echo '3'; echo '[1, 2]'\n", "output line 1: expected a JSON array of numbers, got 3");
  fails("early_eof", "read -r line; echo '[1, 2]'\n", "output ended (EOF) after 1 of 2 answer lines");
  fails("extra", "cat > /dev/null; echo '[1, 2]'; echo '[1, 2]'; echo '[1, 2]'\n", "output line 3: more answer lines than the 2 requests");
  const auto start = std::chrono::steady_clock::now();
  fails("slow", "exec sleep 30\n", "timed out after 300 ms (killed) with 0 of 2 answer lines", 300ms);
  CHECK(std::chrono::steady_clock::now() - start < 10s);
  command_judge missing({.argv = {"/nonexistent/prefopt-judge"}});
  CHECK_THROWS_AS((void)missing.score(two_requests), judge_error);
  CHECK(open_fds() == before);
  CHECK(no_children());
}

TEST_CASE("a command that never reads its stdin does not kill the caller with SIGPIPE") {
  // 4 MiB of requests, far beyond a pipe's buffer; the command answers without reading and exits.
  std::vector<judge_request> big(1, judge_request{"p", {std::string(4 << 20, 'a')}});
  command_judge j({.argv = script("no_read", "echo '[7]'\n")});
  CHECK(j.score(big) == std::vector<std::vector<double>>{{7.0}});
  command_judge k({.argv = script("no_read_fail", "exit 5\n"), .name = "k"});
  CHECK_THROWS_WITH_AS((void)k.score(big), "judge 'k': exited with status 5 after 0 of 1 answer lines", judge_error);
  CHECK(no_children());
}

TEST_CASE("a pairwise command answers 0, 1 or -1 per request") {
  pairwise_command_judge j({.argv = script("pairwise", "i=0\nwhile read -r line; do echo $(( i % 3 - 1 )); i=$((i+1)); done\n")});
  const std::vector<judge_request> three{{"a", {"1", "2"}}, {"b", {"3", "4"}}, {"c", {"5", "6"}}};
  CHECK(j.compare(three) == std::vector<int>{-1, 0, 1});
  pairwise_command_judge bad({.argv = script("pairwise_bad", "cat > /dev/null; echo 2\n"), .name = "bad"});
  CHECK_THROWS_WITH_AS((void)bad.compare(std::vector<judge_request>{{"a", {"1", "2"}}}),
                       "judge 'bad': output line 1: expected 0, 1 or -1, got 2", judge_error);
  CHECK_THROWS_WITH_AS((void)bad.compare(std::vector<judge_request>{{"a", {"1", "2", "3"}}}),
                       "judge 'bad': request 0 has 3 completions; a pairwise judge compares exactly 2", judge_error);
  CHECK(no_children());
}
