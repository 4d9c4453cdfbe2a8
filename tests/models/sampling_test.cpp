// The logits processors of models/sampling.hpp against transformers' own
// (tests/data/generate/processors.json from tools/reference/generate_make_reference.py: one row of
// random logits through RepetitionPenalty, Temperature, TopK, TopP and MinP with several
// parameters), plus hand-computed cases: ties at the k-th value kept, the top token always kept.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "prefopt/models/sampling.hpp"
#include "support/data.hpp"

using namespace prefopt::models;

TEST_CASE("each processor equals transformers' on a fixed row of logits") {
  std::ifstream in(prefopt::test::data_path("generate/processors.json"));
  const auto j = nlohmann::json::parse(in);
  const auto z0 = j["logits"].get<std::vector<double>>();
  const auto ids = j["input_ids"].get<std::vector<std::int32_t>>();
  REQUIRE(j["cases"].size() == 13);
  for (const auto& c : j["cases"]) {
    const std::string name = c["processor"];
    const double p = c["param"];
    CAPTURE(name);
    CAPTURE(p);
    std::vector<double> z = z0;
    if (name == "repetition_penalty") sampling::repetition_penalty(z, ids, p);
    else if (name == "temperature") sampling::temperature(z, p);
    else if (name == "top_k") sampling::top_k(z, int(p));
    else if (name == "top_p") sampling::top_p(z, p);
    else if (name == "min_p") sampling::min_p(z, p);
    else FAIL("unknown processor " << name);
    const auto& want = c["out"];
    REQUIRE(want.size() == z.size());
    for (std::size_t v = 0; v < z.size(); ++v) {
      CAPTURE(v);
      if (want[v].is_null()) CHECK(z[v] == sampling::removed);
      else CHECK(z[v] == doctest::Approx(want[v].get<double>()).epsilon(1e-6));
    }
  }
}

TEST_CASE("hand-computed processor cases") {
  SUBCASE("repetition penalty: negative scores multiplied, positive divided, each id once") {
    std::vector<double> z{2.0, -2.0, 1.0, 0.0};
    sampling::repetition_penalty(z, std::vector<std::int32_t>{0, 1, 1, 3, 0}, 2.0);
    CHECK(z == std::vector<double>{1.0, -4.0, 1.0, 0.0});
  }
  SUBCASE("top-k keeps ties at the k-th value") {
    std::vector<double> z{1.0, 3.0, 2.0, 2.0, 0.0};
    sampling::top_k(z, 2);
    CHECK(z == std::vector<double>{sampling::removed, 3.0, 2.0, 2.0, sampling::removed});
  }
  SUBCASE("top-p: p = (0.5, 0.3, 0.2), top_p 0.75 keeps the two likeliest; a tiny top_p keeps the top one") {
    const std::vector<double> base{std::log(0.2), std::log(0.5), std::log(0.3)};
    std::vector<double> z = base;
    sampling::top_p(z, 0.75);  // ascending cumsum 0.2 ≤ 0.25 removed, 0.5 > 0.25 kept
    CHECK(z[0] == sampling::removed);
    CHECK(z[1] == base[1]);
    CHECK(z[2] == base[2]);
    z = base;
    sampling::top_p(z, 1e-9);
    CHECK(z[0] == sampling::removed);
    CHECK(z[2] == sampling::removed);
    CHECK(z[1] == base[1]);
  }
  SUBCASE("min-p: below p·max prob removed") {
    std::vector<double> z{std::log(0.5), std::log(0.3), std::log(0.15), std::log(0.05)};
    sampling::min_p(z, 0.4);  // floor 0.2
    CHECK(z[0] != sampling::removed);
    CHECK(z[1] != sampling::removed);
    CHECK(z[2] == sampling::removed);
    CHECK(z[3] == sampling::removed);
  }
  SUBCASE("draws never pick a removed token; argmax takes the lowest id on ties") {
    std::mt19937_64 rng(3);
    const std::vector<double> z{sampling::removed, 0.0, sampling::removed, 0.0};
    for (int i = 0; i < 200; ++i) {
      const int v = sampling::draw(z, rng);
      CHECK((v == 1 || v == 3));
    }
    CHECK(sampling::argmax(std::vector<double>{1.0, 2.0, 2.0}) == 1);
  }
}
