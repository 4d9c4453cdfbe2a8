// Annotators' votes and scores as a soft label (data/annotators.hpp, read by data/formats.hpp),
// and that label reaching the probabilistic loss.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "prefopt/data/annotators.hpp"
#include "prefopt/data/collate.hpp"
#include "prefopt/data/formats.hpp"
#include "prefopt/losses/evaluate.hpp"
#include "prefopt/losses/probabilistic.hpp"

namespace fs = std::filesystem;
using namespace prefopt;
using data::annotator_votes;

namespace {
fs::path temp_file(const std::string& name, const std::string& text) {
  const auto dir = fs::temp_directory_path() / "prefopt_annotators_test";
  fs::create_directories(dir);
  const auto path = dir / name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// The message of the data_error reading `lines` raises.
std::string error_of(const std::string& name, const std::string& lines) {
  const auto path = temp_file(name, lines);
  try {
    (void)data::read_preference_file(path);
  } catch (const data_error& e) {
    return std::string(e.what()).substr(path.string().size());
  }
  return "no error";
}
} // namespace

TEST_CASE("scores become votes: one per annotator for the higher side, half each on a tie") {
  const std::vector<double> c{5, 3, 4, 7}, r{4, 3, 6, 1};
  CHECK(data::votes_of_scores(c, r) == annotator_votes{2.5, 1.5});
  CHECK_THROWS_AS(data::votes_of_scores(c, std::vector<double>{1}), data_error);
  CHECK_THROWS_AS(data::votes_of_scores(std::vector<double>{}, std::vector<double>{}), data_error);
}

TEST_CASE("soft label: (v_c + α) / (v_c + v_r + 2α)") {
  CHECK(data::soft_label({3, 1}) == 0.75);
  CHECK(data::soft_label({3, 1}, 1.0) == doctest::Approx(4.0 / 6.0));
  CHECK(data::soft_label({0, 0}, 0.5) == 0.5);
  CHECK(data::soft_label({5, 0}) == 1.0);  // unanimous, unsmoothed: DPO's hard label
  CHECK(data::soft_label({5, 0}, 1.0) == doctest::Approx(6.0 / 7.0));
  CHECK_THROWS_AS(data::soft_label({0, 0}), data_error);
  CHECK_THROWS_AS(data::soft_label({1, 0}, -0.1), config_error);
  CHECK_THROWS_AS(data::soft_label({1, 0}, NAN), config_error);
}

TEST_CASE("a JSONL file with votes, scores and plain labels; relabel with smoothing") {
  const auto path = temp_file("mixed.jsonl",
                              R"({"prompt": "p", "chosen": "a", "rejected": "b", "chosen_votes": 3, "rejected_votes": 1})"
                              "\n"
                              R"({"prompt": "p", "chosen": "a", "rejected": "b", "chosen_scores": [5, 3, 4], "rejected_scores": [4, 3, 6.5]})"
                              "\n"
                              R"({"prompt": "p", "chosen": "a", "rejected": "b", "preference_prob": 0.9})"
                              "\n"
                              R"({"prompt": "p", "chosen": "a", "rejected": "b"})"
                              "\n");
  auto file = data::read_preference_file(path);
  const auto& recs = file.pairs();
  REQUIRE(recs.size() == 4);
  CHECK(recs[0].preference_prob == 0.75);
  CHECK(recs[0].votes == annotator_votes{3, 1});
  CHECK(recs[1].preference_prob == 0.5);
  CHECK(recs[1].votes == annotator_votes{1.5, 1.5});
  CHECK(recs[2].preference_prob == 0.9);
  CHECK_FALSE(recs[2].votes);
  CHECK_FALSE(recs[3].preference_prob);
  data::relabel_file(file, 1.0);
  CHECK(file.pairs()[0].preference_prob == doctest::Approx(4.0 / 6.0));
  CHECK(file.pairs()[1].preference_prob == 0.5);
  CHECK(file.pairs()[2].preference_prob == 0.9);  // a stated label is not the annotators'
  CHECK_FALSE(file.pairs()[3].preference_prob);
  CHECK_THROWS_AS(data::relabel_file(file, -1.0), config_error);
}

TEST_CASE("bad annotator columns are errors naming file, line and field") {
  const std::string pair = R"("prompt": "p", "chosen": "a", "rejected": "b")";
  CHECK(error_of("a.jsonl", "{" + pair + ", \"preference_prob\": 0.5}\n{" + pair + ", \"chosen_votes\": 2}\n") ==
        ":2: field 'rejected_votes': missing (chosen_votes needs rejected_votes)");
  CHECK(error_of("b.jsonl", "{" + pair + R"(, "chosen_votes": -1, "rejected_votes": 2})") ==
        ":1: field 'chosen_votes': -1 is out of range (must be >= 0)");
  CHECK(error_of("c.jsonl", "{" + pair + R"(, "chosen_votes": 0, "rejected_votes": 0})") ==
        ":1: field 'chosen_votes': no votes on either side: no label");
  CHECK(error_of("d.jsonl", "{" + pair + R"(, "chosen_scores": [1, "x"], "rejected_scores": [1, 2]})") ==
        ":1: field 'chosen_scores[1]': expected a number, got a string");
  CHECK(error_of("e.jsonl", "{" + pair + R"(, "chosen_scores": [1, 2], "rejected_scores": [1]})") ==
        ":1: field 'rejected_scores': 1 scores but 2 in chosen_scores: one per annotator on each side");
  CHECK(error_of("f.jsonl", "{" + pair + R"(, "chosen_scores": [], "rejected_scores": []})") ==
        ":1: field 'chosen_scores': empty: no annotator's score");
  CHECK(error_of("g.jsonl", "{" + pair + R"(, "chosen_scores": 3, "rejected_scores": [1]})") ==
        ":1: field 'chosen_scores': expected a list of numbers (one score per annotator), got a number");
  CHECK(error_of("h.jsonl", "{" + pair + R"(, "preference_prob": 0.5, "chosen_votes": 1, "rejected_votes": 2})") ==
        ":1: field 'preference_prob': given together with annotators' votes or scores; keep one");
  CHECK(error_of("i.jsonl",
                 "{" + pair + R"(, "chosen_votes": 1, "rejected_votes": 2, "chosen_scores": [1], "rejected_scores": [0]})") ==
        ":1: field 'chosen_scores': given together with chosen_votes; keep one way of stating the annotators");
}

TEST_CASE("the annotators' label reaches the probabilistic loss through collation") {
  const auto path = temp_file("tokenized.jsonl",
                              R"({"prompt_input_ids": [1, 2], "chosen_input_ids": [3], "rejected_input_ids": [4], "chosen_votes": 4, "rejected_votes": 1})"
                              "\n"
                              R"({"prompt_input_ids": [1], "chosen_input_ids": [5, 6], "rejected_input_ids": [7], "chosen_scores": [0.1, 0.9], "rejected_scores": [0.2, 0.3]})"
                              "\n");
  auto file = data::read_preference_file(path);
  data::relabel_file(file, 0.5);
  const auto t = data::tokenize_preferences(file);
  REQUIRE(t.preference_prob.size() == 2);
  CHECK(t.preference_prob[0] == doctest::Approx(4.5 / 6.0));
  CHECK(t.preference_prob[1] == doctest::Approx(1.5 / 3.0));
  // −(p·logσ(βh) + (1 − p)·logσ(−βh)), h the reference-adjusted margin.
  pair_batch<double> b{.policy_chosen = {-1.0, -2.0}, .policy_rejected = {-1.5, -1.0}, .reference_chosen = {-1.2, -2.0},
                       .reference_rejected = {-1.2, -1.5}, .chosen_tokens = {1, 2}, .rejected_tokens = {1, 1}};
  b.preference_prob = t.preference_prob;
  const double beta = 0.5;
  const auto r = evaluate(losses::probabilistic{.beta = beta, .source = losses::label_source::column}, b);
  auto log_sigmoid = [](double x) { return -std::log1p(std::exp(-x)); };
  double expected = 0.0;
  for (std::size_t i = 0; i < 2; ++i) {
    const double h = (b.policy_chosen[i] - b.reference_chosen[i]) - (b.policy_rejected[i] - b.reference_rejected[i]);
    const double p = t.preference_prob[i];
    expected -= p * log_sigmoid(beta * h) + (1 - p) * log_sigmoid(-beta * h);
  }
  CHECK(r.loss == doctest::Approx(expected / 2.0).epsilon(1e-12));
}
