// The lexicon judge: mean weight of the lexicon words of each completion.
#include <doctest/doctest.h>

#include <cmath>

#include "prefopt/loop/lexicon_judge.hpp"

using namespace prefopt;
using prefopt::loop::lexicon_judge;

TEST_CASE("a lexicon judge scores the mean weight of a completion's lexicon words") {
  lexicon_judge j({{"brilliant", 1.0}, {"good", 0.5}, {"dull", -1.0}, {"long", 0.0}, {"don't", -0.5}});
  CHECK(lexicon_judge::words("The plot WAS brilliant, and don't-stop!") ==
        std::vector<std::string>{"the", "plot", "was", "brilliant", "and", "don't", "stop"});
  const std::vector<loop::judge_request> batch{
      {"the movie was", {" brilliant and good.", " dull but long", " nothing here", " Brilliant!brilliant"}},
      {"brilliant prompt", {" dull"}}};
  const auto s = j.score(batch);
  REQUIRE(s.size() == 2);
  CHECK(s[0] == std::vector<double>{0.75, -0.5, 0.0, 1.0});
  CHECK(s[1] == std::vector<double>{-1.0});  // the prompt is not scored
  CHECK(j.name() == "lexicon");
  CHECK_THROWS_AS(lexicon_judge({{"Two words", 1.0}}), config_error);
  CHECK_THROWS_AS(lexicon_judge({{"nan", std::nan("")}}), config_error);
}
