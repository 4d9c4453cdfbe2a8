// Pairwise judges: round-robin wins as K-way scores, and a scoring judge as a pairwise one.
#include <doctest/doctest.h>

#include "prefopt/loop/pairwise.hpp"

using namespace prefopt::loop;

namespace {
// Scores a completion by its length.
callable_judge by_length() {
  return callable_judge("length", [](const std::string&, const std::vector<std::string>& cs) {
    std::vector<double> s;
    for (const auto& c : cs) s.push_back(double(c.size()));
    return s;
  });
}
} // namespace

TEST_CASE("a scoring judge as a pairwise one: the higher score wins, equal scores tie") {
  pairwise_from_scores p(by_length());
  const std::vector<judge_request> batch{{"p", {"aaa", "a"}}, {"q", {"a", "aa"}}, {"r", {"ab", "cd"}}};
  CHECK(p.compare(batch) == std::vector<int>{0, 1, -1});
  CHECK(p.name() == "pairwise by length");
  CHECK_THROWS_WITH_AS(p.compare(std::vector<judge_request>{{"p", {"a"}}}),
                       "judge 'pairwise by length': request 0 has 1 completions; a pairwise judge compares exactly 2",
                       judge_error);
}

TEST_CASE("round robin: each completion's wins against the others, a tie worth one half") {
  round_robin rr{pairwise_from_scores(by_length())};
  const std::vector<judge_request> batch{{"p", {"bb", "a", "cccc", "dd"}}, {"q", {"x"}}, {"r", {}}};
  const auto s = rr.score(batch);
  REQUIRE(s.size() == 3);
  // "bb": beats "a", loses to "cccc", ties "dd" -> 1.5; "a": 0; "cccc": 3; "dd": 1.5.
  CHECK(s[0] == std::vector<double>{1.5, 0.0, 3.0, 1.5});
  CHECK(s[1] == std::vector<double>{0.0});
  CHECK(s[2].empty());
  CHECK(rr.name() == "round robin of pairwise by length");
}

TEST_CASE("a pairwise judge that answers wrong is an error naming it") {
  struct liar {
    std::vector<int> compare(std::span<const judge_request> b) { return std::vector<int>(b.size(), 2); }
    std::string name() const { return "liar"; }
  };
  round_robin rr(liar{});
  CHECK_THROWS_WITH_AS(rr.score(std::vector<judge_request>{{"p", {"a", "b"}}}), "judge 'liar': request 0: answer 2 is not 0, 1 or -1",
                       judge_error);
  struct short_answer {
    std::vector<int> compare(std::span<const judge_request>) { return {}; }
    std::string name() const { return "short"; }
  };
  round_robin rs(short_answer{});
  CHECK_THROWS_WITH_AS(rs.score(std::vector<judge_request>{{"p", {"a", "b"}}}), "judge 'short': 0 answers for 1 requests", judge_error);
}
