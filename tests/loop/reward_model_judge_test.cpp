// A reward model as a judge: each completion scored on the prompt + completion + EOS ids, batched.
#include <doctest/doctest.h>

#include <cmath>

#include "prefopt/backends/eigen.hpp"
#include "prefopt/loop/reward_model_judge.hpp"
#include "prefopt/models/reward_io.hpp"
#include "support/data.hpp"

using namespace prefopt;

TEST_CASE("a reward model judge scores prompt + completion + EOS at its last token, whatever the batch") {
  using B = backends::eigen;
  auto rm = models::load_reward_model<models::gpt2<B>>(B{}, test::data_path("reward/gpt2"));
  const auto tok = data::tokenizer::from_file(test::data_path("tokenizer/charlevel/tokenizer.json"));
  data::collate_options o;
  o.eos_token = "!";
  o.max_length = std::nullopt;
  const std::vector<loop::judge_request> batch{{"the war", {" was long", " ended", " ou"}}, {"li", {" yes"}}};
  loop::reward_model_judge one(rm, tok, o, 1, "rm");
  loop::reward_model_judge many(rm, tok, o, 16, "rm");
  const auto a = one.score(batch), b = many.score(batch);
  REQUIRE(a.size() == 2);
  REQUIRE(a[0].size() == 3);
  REQUIRE(a[1].size() == 1);
  const auto eos = *tok.token_to_id("!");
  for (std::size_t i = 0; i < batch.size(); ++i)
    for (std::size_t k = 0; k < batch[i].completions.size(); ++k) {
      auto ids = tok.encode(batch[i].prompt, true);
      const auto c = tok.encode(batch[i].completions[k], false);
      ids.insert(ids.end(), c.begin(), c.end());
      ids.push_back(eos);
      CHECK(one.sequence(batch[i].prompt, batch[i].completions[k]) == ids);
      const double want = rm.forward(rm.pack({ids}), {.keep_activations = false})[0];
      CHECK(a[i][k] == doctest::Approx(want).epsilon(1e-5));
      CHECK(b[i][k] == doctest::Approx(want).epsilon(1e-5));
    }
  CHECK(a[0][0] != a[0][1]);
  CHECK_THROWS_AS(loop::reward_model_judge(rm, tok, data::collate_options{.eos_token = ""}), config_error);
}
