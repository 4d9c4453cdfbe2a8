// The judge interface: a callable as a scoring judge, and the checks every judge's answer passes.
#include <doctest/doctest.h>

#include <limits>

#include "prefopt/loop/judge.hpp"

using prefopt::loop::callable_judge;
using prefopt::loop::judge_error;
using prefopt::loop::judge_request;

TEST_CASE("a callable scores each request's completions") {
  callable_judge by_length("length", [](const std::string& prompt, const std::vector<std::string>& cs) {
    std::vector<double> s;
    for (const auto& c : cs) s.push_back(double(c.size()) - double(prompt.size()));
    return s;
  });
  const std::vector<judge_request> batch{{"ab", {"x", "xyz"}}, {"", {"hello"}}};
  const auto scores = by_length.score(batch);
  REQUIRE(scores.size() == 2);
  CHECK(scores[0] == std::vector<double>{-1.0, 1.0});
  CHECK(scores[1] == std::vector<double>{5.0});
  CHECK(by_length.name() == "length");
}

TEST_CASE("a judge that answers the wrong count or a non-finite score is an error naming it") {
  const std::vector<judge_request> batch{{"p", {"a", "b"}}};
  callable_judge short_answer("short", [](const std::string&, const std::vector<std::string>&) {
    return std::vector<double>{1.0};
  });
  CHECK_THROWS_WITH_AS(short_answer.score(batch), "judge 'short': request 0 has 2 completions but 1 scores",
                       judge_error);
  callable_judge nan_answer("nan", [](const std::string&, const std::vector<std::string>&) {
    return std::vector<double>{0.0, std::numeric_limits<double>::quiet_NaN()};
  });
  CHECK_THROWS_WITH_AS(nan_answer.score(batch), "judge 'nan': request 0, completion 1: score is not a finite number",
                       judge_error);
  CHECK_THROWS_AS(prefopt::loop::check_scores("x", batch, {}), judge_error);
}
