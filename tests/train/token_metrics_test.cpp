// TRL's token metrics (train/token_metrics.hpp) where TRL 1.16 logs them besides the plain DPO
// step (tests/train/trl_metrics_test.cpp): a DPO run with gradient accumulation, KTOTrainer and
// RewardTrainer. Expected values: tests/data/train/trl_metrics_{dpo_ga,kto,reward}.json, made by
// tools/reference/train_make_trl_metrics_reference.py, which runs TRL's trainers on the tiny GPT-2
// of tests/data/models/gpt2 (the reward model of tests/data/reward/gpt2), in order, for 2 steps
// and one evaluation, and keeps every value TRL logged. prefopt runs the same model, data and
// configuration here and must log the same numbers (2e-5, as trl_metrics_test.cpp).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

// The backends first: train/progress.hpp's terminal headers define NCC, a name xtensor-blas's
// LAPACK declarations use.
#include "support/backends.hpp"
// (the rest)
#include "prefopt/losses.hpp"
#include "prefopt/models/reward_io.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/train/kto_trainer.hpp"
#include "prefopt/train/reward_trainer.hpp"
#include "prefopt/train/runner.hpp"
#include "support/data.hpp"

using namespace prefopt;

namespace {
using B = backends::eigen;
using model = models::gpt2<B>;

nlohmann::json golden(const std::string& name) {
  std::ifstream in(test::data_path("train/" + name));
  REQUIRE(in);
  return nlohmann::json::parse(in);
}

std::vector<std::int32_t> ids(const nlohmann::json& v) { return v.get<std::vector<std::int32_t>>(); }

data::tokenized_preferences pairs_of(const nlohmann::json& list) {
  data::tokenized_preferences d;
  for (const auto& p : list) {
    d.pairs.push_back({ids(p.at("prompt_ids")), ids(p.at("chosen_ids")), ids(p.at("rejected_ids"))});
    d.lines.push_back(d.pairs.size());
  }
  return d;
}

// Every value of TRL's row must be in prefopt's (with the key as prefopt names it) and agree to
// tol (absolute, or relative for values above 1); prefopt logs no key TRL does not.
void check_row(const nlohmann::json& want, const std::map<std::string, double>& got, const std::string& prefix = "",
               double tol = 2e-5) {
  for (const auto& item : want.items()) {  // not a structured binding: CAPTURE cannot name one (clang 14)
    const std::string key = item.key();
    if (key == "step") continue;
    CAPTURE(key);
    const std::string name = key.substr(prefix.size());
    REQUIRE(got.count(name) == 1);
    const double w = item.value().get<double>(), g = got.at(name);
    CHECK(std::abs(g - w) <= tol * std::max(1.0, std::abs(w)));
    if (std::getenv("PREFOPT_TRL_METRICS_DIFF")) MESSAGE(key << " " << g - w);
  }
  for (const auto& kv : got) {
    const std::string key = prefix + kv.first;
    CAPTURE(key);
    CHECK(want.contains(key));
  }
}
} // namespace

TEST_CASE("DPO with gradient accumulation logs TRL's values: each token metric the mean of the micro-batches' ratios") {
  using dpo = train::trainer<model, losses::sigmoid, optim::adamw, train::reference::frozen<model>>;
  const nlohmann::json g = golden("trl_metrics_dpo_ga.json");
  const auto cfg = g.at("config");
  REQUIRE(cfg.at("gradient_accumulation_steps") == 2);
  REQUIRE(cfg.at("per_device_train_batch_size") == 2);
  REQUIRE(g.at("train_rows").size() == 2);
  const auto train_data = pairs_of(g.at("train_pairs")), eval_data = pairs_of(g.at("eval_pairs"));
  auto policy = models::from_pretrained<model>(B{}, test::data_path("models/gpt2"));
  auto ref = models::from_pretrained<model>(B{}, test::data_path("models/gpt2"));
  dpo t(policy, {.beta = cfg.at("beta").get<double>()},
        {.lr = cfg.at("learning_rate").get<double>(), .weight_decay = cfg.at("weight_decay").get<double>()}, {&ref},
        {.max_grad_norm = cfg.at("max_grad_norm").get<double>()});
  for (std::size_t s = 0; s < 2; ++s) {
    CAPTURE(s);
    const std::vector<std::size_t> a{4 * s, 4 * s + 1}, b{4 * s + 2, 4 * s + 3};
    const std::vector<train::preference_batch<models::token_batch>> micro{data::make_batch(train_data, a, true),
                                                                          data::make_batch(train_data, b, true)};
    const auto r = t.step(std::span<const train::preference_batch<models::token_batch>>(micro));
    REQUIRE(!r.skipped);
    check_row(g.at("train_rows")[s], r.metrics);
  }
  const std::vector<std::size_t> all{0, 1, 2, 3};
  auto eval = t.evaluate_batch(data::make_batch(eval_data, all, true));
  eval["num_tokens"] = t.num_tokens();  // the runner adds it as eval_num_tokens, as TRL does
  check_row(g.at("eval_row"), eval, "eval_");
}

TEST_CASE("KTO logs TRL's KTOTrainer metrics with TRL's values (kl, rewards/*, logps/*, entropy, logits/*, num_tokens)") {
  using kto = train::kto_trainer<model, losses::kto, optim::adamw, model>;
  const nlohmann::json g = golden("trl_metrics_kto.json");
  const auto cfg = g.at("config");
  REQUIRE(cfg.at("loss_type") == "kto");
  REQUIRE(g.at("train_rows").size() == 2);
  auto examples = [](const nlohmann::json& list) {
    data::tokenized_unpaired d;
    for (const auto& e : list) {
      d.examples.push_back({ids(e.at("prompt_ids")), ids(e.at("completion_ids")), e.at("label").get<bool>()});
      d.lines.push_back(d.examples.size());
    }
    // TRL's KL completion of example k is the completion of example k - 1 of its batch of 4, as
    // make_unpaired_batch builds its KL rows
    for (std::size_t k = 0; k < list.size(); ++k)
      REQUIRE(ids(list[k].at("KL_completion_ids")) == d.examples[k / 4 * 4 + (k + 3) % 4].completion);
    return d;
  };
  const auto train_data = examples(g.at("train_examples")), eval_data = examples(g.at("eval_examples"));
  auto policy = models::from_pretrained<model>(B{}, test::data_path("models/gpt2"));
  auto ref = models::from_pretrained<model>(B{}, test::data_path("models/gpt2"));
  kto t(policy,
        {.beta = cfg.at("beta").get<double>(), .desirable_weight = cfg.at("desirable_weight").get<double>(),
         .undesirable_weight = cfg.at("undesirable_weight").get<double>()},
        {.lr = cfg.at("learning_rate").get<double>(), .weight_decay = cfg.at("weight_decay").get<double>()},
        {.model = &ref}, {.max_grad_norm = cfg.at("max_grad_norm").get<double>()});
  for (std::size_t s = 0; s < 2; ++s) {
    CAPTURE(s);
    const std::vector<std::size_t> idx{4 * s, 4 * s + 1, 4 * s + 2, 4 * s + 3};
    const auto r = t.step(data::make_unpaired_batch(train_data, idx, true));
    REQUIRE(!r.skipped);
    check_row(g.at("train_rows")[s], r.metrics);
  }
  const std::vector<std::size_t> all{0, 1, 2, 3};
  auto eval = t.evaluate_batch(data::make_unpaired_batch(eval_data, all, true));
  eval["num_tokens"] = t.num_tokens();  // the runner adds it as eval_num_tokens, as TRL does
  check_row(g.at("eval_row"), eval, "eval_");

  SUBCASE("token_metrics = false: num_tokens only") {
    auto p2 = models::from_pretrained<model>(B{}, test::data_path("models/gpt2"));
    kto u(p2, {.beta = 0.1}, {.lr = 1e-3}, {.model = &ref}, {.token_metrics = false});
    const std::vector<std::size_t> idx{0, 1, 2, 3};
    const auto r = u.step(data::make_unpaired_batch(train_data, idx, true));
    for (const char* key : {"entropy", "logits/chosen", "logits/rejected"}) CHECK(r.metrics.count(key) == 0);
    CHECK(r.metrics.at("num_tokens") == g.at("train_rows")[0].at("num_tokens").get<double>());
  }
}

TEST_CASE("prefopt reward's trainer with gradient accumulation logs TRL's RewardTrainer values (each metric the mean "
          "over the micro-batches)") {
  const nlohmann::json g = golden("trl_metrics_reward.json");
  const auto cfg = g.at("config");
  REQUIRE(cfg.at("gradient_accumulation_steps") == 2);
  REQUIRE(cfg.at("per_device_train_batch_size") == 2);
  auto rm = models::load_reward_model<model>(B{}, test::data_path("reward/gpt2"));
  REQUIRE(rm.pad_token_id() == 300);
  auto batch = [&](const nlohmann::json& list, std::size_t from, std::size_t n) {
    std::vector<models::tokenized_pair> pairs;
    for (std::size_t i = from; i < from + n; ++i) {
      const auto& p = list[i];
      const auto prompt = ids(p.at("prompt_ids")), chosen = ids(p.at("chosen_ids")), rejected = ids(p.at("rejected_ids"));
      // TRL's chosen_ids / rejected_ids are prompt + completion
      REQUIRE(std::equal(prompt.begin(), prompt.end(), chosen.begin()));
      REQUIRE(std::equal(prompt.begin(), prompt.end(), rejected.begin()));
      pairs.push_back({prompt, {chosen.begin() + std::ptrdiff_t(prompt.size()), chosen.end()},
                       {rejected.begin() + std::ptrdiff_t(prompt.size()), rejected.end()}});
    }
    train::reward_pair_batch b;
    b.sequences = models::pack_reward_pairs(pairs, rm.pad_token_id());
    return b;
  };
  // 5e-5 here: before any update the values agree to 1e-6, after one 2e-5 (all scores shifted
  // alike: the margin agrees to 3e-6). Adam's first update moves every weight by about ±lr whatever
  // its gradient's size, so the rounding differences of small gradients reach the weights at full
  // size; the reward model's gradient is ~25 times the DPO model's (grad_norm 26 before clipping).
  const double tol = 5e-5;
  train::training_args args;
  args.max_grad_norm = cfg.at("max_grad_norm").get<double>();
  const train::bradley_terry loss{.center_rewards_coefficient = cfg.at("center_rewards_coefficient").get<double>()};
  train::reward_trainer t(rm, loss, optim::adamw{.lr = cfg.at("learning_rate").get<double>(), .weight_decay = 0.0}, args);
  for (std::size_t s = 0; s < 2; ++s) {
    CAPTURE(s);
    const std::vector<train::reward_pair_batch> micro{batch(g.at("train_pairs"), 4 * s, 2), batch(g.at("train_pairs"), 4 * s + 2, 2)};
    const auto r = t.step(std::span<const train::reward_pair_batch>(micro));
    REQUIRE(!r.skipped);
    check_row(g.at("train_rows")[s], r.metrics, "", tol);
  }
  auto eval = t.evaluate_batch(batch(g.at("eval_pairs"), 0, 4));
  eval["num_tokens"] = t.num_tokens();  // the runner adds it as eval_num_tokens, as TRL does
  check_row(g.at("eval_row"), eval, "eval_", tol);
}

TEST_CASE("the runner's logged row is the mean over the window's micro-batch values, as TRL's (a step with fewer "
          "micro-batches weighs less); loss stays a mean over steps, grad_norm and learning_rate the last step's") {
  namespace fs = std::filesystem;
  const nlohmann::json g = golden("trl_metrics_reward.json");
  data::tokenized_preferences d;
  for (std::size_t i = 0; i < 6; ++i) {
    const auto& p = g.at("train_pairs")[i];
    const auto prompt = ids(p.at("prompt_ids")), chosen = ids(p.at("chosen_ids")), rejected = ids(p.at("rejected_ids"));
    d.pairs.push_back({prompt, {chosen.begin() + std::ptrdiff_t(prompt.size()), chosen.end()},
                       {rejected.begin() + std::ptrdiff_t(prompt.size()), rejected.end()}});
    d.lines.push_back(i + 1);
  }
  const fs::path dir = fs::temp_directory_path() / ("prefopt-token-metrics-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  // 3 micro-batches of 2 pairs, 2 per step: step 1 has two, step 2 (the epoch's end) one
  auto rm = models::load_reward_model<model>(B{}, test::data_path("reward/gpt2"));
  train::reward_trainer t(rm, {}, optim::adamw{.lr = 1e-3});
  const train::reward_dataset set{&d, {}, rm.pad_token_id()};
  std::ostringstream log;
  train::runner r(t, set, static_cast<const train::reward_dataset*>(nullptr),
                  {.max_steps = 2, .batch_size = 2, .gradient_accumulation_steps = 2, .logging_steps = 2, .eval_steps = 0,
                   .save_steps = 0, .output_dir = dir, .tensorboard = false, .log = &log});
  r.run();
  std::ifstream in(dir / "metrics.jsonl");
  std::string line;
  REQUIRE(std::getline(in, line));
  const auto row = nlohmann::json::parse(line);
  fs::remove_all(dir);

  // the same steps by hand, on the same batches
  auto rm2 = models::load_reward_model<model>(B{}, test::data_path("reward/gpt2"));
  train::reward_trainer t2(rm2, {}, optim::adamw{.lr = 1e-3});
  const auto lengths = lengths_of(set, false);
  const auto plan = data::make_batch_plan(lengths, {.batch_size = 2, .shuffle = true, .length_bucketing = true}, 42, 0);
  REQUIRE(plan.size() == 3);
  const std::vector<train::reward_pair_batch> first{batch_of(t2, set, plan.batches[0], false, 0),
                                                    batch_of(t2, set, plan.batches[1], false, 0)};
  const auto s1 = t2.step(std::span<const train::reward_pair_batch>(first)).metrics;
  const auto s2 = t2.step(batch_of(t2, set, plan.batches[2], false, 0)).metrics;
  for (const char* key : {"accuracy", "margin", "min_reward", "mean_reward", "max_reward"}) {
    CAPTURE(key);
    CHECK(row.at(key).get<double>() == doctest::Approx((2.0 * s1.at(key) + s2.at(key)) / 3.0).epsilon(1e-12));
  }
  CHECK(row.at("loss").get<double>() == doctest::Approx((s1.at("loss") + s2.at("loss")) / 2.0).epsilon(1e-12));
  CHECK(row.at("num_tokens").get<double>() == s2.at("num_tokens"));
  // grad_norm and learning_rate: the window's last step's, as the Hugging Face Trainer logs them.
  for (const char* key : {"grad_norm", "learning_rate"}) {
    CAPTURE(key);
    CHECK(row.at(key).get<double>() == doctest::Approx(s2.at(key)).epsilon(1e-12));
  }
  CHECK(s1.at("grad_norm") != doctest::Approx(s2.at("grad_norm")).epsilon(1e-3));  // the mean would differ
}
