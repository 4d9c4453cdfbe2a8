// Pairs from scored samples: best-vs-worst, all pairs above a margin, ties skipped and counted.
#include <doctest/doctest.h>

#include "prefopt/loop/pairs.hpp"

using namespace prefopt::loop;

TEST_CASE("best vs worst: one pair per prompt, the first best and the first worst; ties skipped") {
  const std::vector<std::vector<double>> s{{0.5, 2.0, -1.0, 2.0, -1.0}, {1.0, 1.0, 1.0}, {3.0}, {0.0, 0.25}};
  pair_report r;
  const auto p = make_pairs(s, {.strategy = pair_strategy::best_vs_worst}, &r);
  REQUIRE(p.size() == 2);
  CHECK(p[0].prompt == 0);
  CHECK(p[0].chosen == 1);
  CHECK(p[0].rejected == 2);
  CHECK(p[0].score_chosen == 2.0);
  CHECK(p[0].score_rejected == -1.0);
  CHECK(p[1].prompt == 3);
  CHECK(p[1].chosen == 1);
  CHECK(p[1].rejected == 0);
  CHECK(r.prompts == 4);
  CHECK(r.pairs == 2);
  CHECK(r.ties == 1);
  CHECK(r.too_few == 1);
  CHECK(r.below_margin == 0);
  pair_report m;
  CHECK(make_pairs(s, {.strategy = pair_strategy::best_vs_worst, .margin = 0.5}, &m).size() == 1);
  CHECK(m.below_margin == 1);
}

TEST_CASE("all pairs: every two completions at least `margin` apart, the higher chosen") {
  const std::vector<std::vector<double>> s{{1.0, 3.0, 1.0, 1.5}};
  pair_report r;
  const auto p = make_pairs(s, {.strategy = pair_strategy::all_pairs, .margin = 0.5}, &r);
  // (0,1) gap 2; (0,2) tie; (0,3) gap 0.5; (1,2) gap 2; (1,3) gap 1.5; (2,3) gap 0.5
  REQUIRE(p.size() == 5);
  CHECK((p[0].chosen == 1 && p[0].rejected == 0));
  CHECK((p[1].chosen == 3 && p[1].rejected == 0));
  CHECK((p[2].chosen == 1 && p[2].rejected == 2));
  CHECK((p[3].chosen == 1 && p[3].rejected == 3));
  CHECK((p[4].chosen == 3 && p[4].rejected == 2));
  CHECK(r.ties == 1);
  CHECK(r.below_margin == 0);
  pair_report q;
  CHECK(make_pairs(s, {.strategy = pair_strategy::all_pairs, .margin = 1.0}, &q).size() == 3);
  CHECK(q.below_margin == 2);
  CHECK_THROWS_AS(make_pairs(s, {.margin = -1.0}), prefopt::config_error);
  CHECK(parse_pair_strategy("all_pairs", "x") == pair_strategy::all_pairs);
  CHECK_THROWS_WITH_AS(parse_pair_strategy("best", "run.json: field 'loop.pairs.strategy'"),
                       "run.json: field 'loop.pairs.strategy': 'best' is not one of best_vs_worst, all_pairs", prefopt::config_error);
}

TEST_CASE("records are TRL's preference format with the scores and, when given, the token ids") {
  const auto j = preference_record_json("P", "good", "bad", 2.0, -1.0);
  CHECK(j == nlohmann::json{{"prompt", "P"}, {"chosen", "good"}, {"rejected", "bad"}, {"score_chosen", 2.0}, {"score_rejected", -1.0}});
  const std::vector<std::int32_t> p{1, 2}, c{3}, r{4, 5};
  const auto k = preference_record_json("P", "good", "bad", 2.0, -1.0, &p, &c, &r);
  CHECK(k["prompt_input_ids"] == nlohmann::json{1, 2});
  CHECK(k["rejected_input_ids"] == nlohmann::json{4, 5});
}
