// TRL's logged DPO metrics (train/token_metrics.hpp) against TRL itself. Expected values:
// tests/data/train/trl_metrics.json, made by tools/reference/train_make_trl_metrics_reference.py,
// which runs trl 1.16.0's DPOTrainer on the tiny GPT-2 of tests/data/models/gpt2 for 2 steps of
// 4 pairs (in order; sigmoid, beta 0.1, AdamW lr 1e-3 constant, max_grad_norm 1) and then
// evaluates 4 held-out pairs: every value TRL logged (its trainer.state.log_history), the token
// metrics included (entropy, logits/chosen, logits/rejected, mean_token_accuracy, num_tokens and
// their eval_ forms). prefopt's trainer runs the same model, pairs and configuration here.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

// The backends first: train/progress.hpp's terminal headers define NCC, a name xtensor-blas's
// LAPACK declarations use.
#include "support/backends.hpp"
// (the rest)
#include "prefopt/losses.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/train/runner.hpp"
#include "support/data.hpp"

using namespace prefopt;

namespace {
nlohmann::json golden() {
  std::ifstream in(test::data_path("train/trl_metrics.json"));
  REQUIRE(in);
  return nlohmann::json::parse(in);
}

data::tokenized_preferences pairs_of(const nlohmann::json& list) {
  data::tokenized_preferences d;
  for (const auto& p : list) {
    d.pairs.push_back({p.at("prompt_ids").get<std::vector<std::int32_t>>(), p.at("chosen_ids").get<std::vector<std::int32_t>>(),
                       p.at("rejected_ids").get<std::vector<std::int32_t>>()});
    d.lines.push_back(d.pairs.size());
  }
  return d;
}

// Every value of TRL's row must be in prefopt's (with the key as prefopt names it) and agree to
// 2e-5 (absolute, or relative for values above 1).
void check_row(const nlohmann::json& want, const std::map<std::string, double>& got, const std::string& prefix = "") {
  for (const auto& item : want.items()) {  // not a structured binding: CAPTURE cannot name one (clang 14)
    const std::string key = item.key();
    const auto& v = item.value();
    if (key == "step") continue;
    CAPTURE(key);
    const std::string name = key.substr(prefix.size());
    REQUIRE(got.count(name) == 1);
    const double w = v.get<double>(), g = got.at(name);
    CHECK(std::abs(g - w) <= 2e-5 * std::max(1.0, std::abs(w)));
    if (std::getenv("PREFOPT_TRL_METRICS_DIFF")) MESSAGE(key << " " << g - w);
  }
}
} // namespace

TEST_CASE_TEMPLATE("DPO step and evaluation log TRL's metrics with TRL's values (entropy, logits/*, "
                   "mean_token_accuracy, num_tokens)",
                   B, PREFOPT_CPU_BACKENDS) {
  using model = models::gpt2<B>;
  using dpo = train::trainer<model, losses::sigmoid, optim::adamw, train::reference::frozen<model>>;
  const nlohmann::json g = golden();
  const auto cfg = g.at("config");
  REQUIRE(g.at("train_rows").size() == 2);
  const auto train_data = pairs_of(g.at("train_pairs")), eval_data = pairs_of(g.at("eval_pairs"));
  const std::vector<std::size_t> first{0, 1, 2, 3}, second{4, 5, 6, 7};
  // The layout of a batch changes nothing TRL sees: prompt shared or repeated, rows padded or not
  // (num_tokens counts a shared prompt once per sequence, and never padding).
  struct layout {
    bool prefix_sharing;
    int pad;
  };
  for (const layout lay : {layout{true, 0}, layout{false, 0}, layout{true, 8}}) {
    CAPTURE(lay.prefix_sharing);
    CAPTURE(lay.pad);
    auto policy = models::from_pretrained<model>(B{}, test::data_path("models/gpt2"));
    auto ref = models::from_pretrained<model>(B{}, test::data_path("models/gpt2"));
    dpo t(policy, {.beta = cfg.at("beta").get<double>()},
          {.lr = cfg.at("learning_rate").get<double>(), .weight_decay = cfg.at("weight_decay").get<double>()}, {&ref},
          {.max_grad_norm = cfg.at("max_grad_norm").get<double>()});
    for (std::size_t s = 0; s < 2; ++s) {
      CAPTURE(s);
      const auto r = t.step(data::make_batch(train_data, s == 0 ? first : second, lay.prefix_sharing, lay.pad));
      REQUIRE(!r.skipped);
      check_row(g.at("train_rows")[s], r.metrics);
    }
    auto eval = t.evaluate_batch(data::make_batch(eval_data, first, lay.prefix_sharing, lay.pad));
    eval["num_tokens"] = t.num_tokens();  // the runner adds it as eval_num_tokens, as TRL does
    check_row(g.at("eval_row"), eval, "eval_");
  }
}

TEST_CASE("token_metrics = false: no entropy, logits/* or mean_token_accuracy (the head skips them); num_tokens stays") {
  using B = backends::eigen;
  using model = models::gpt2<B>;
  using dpo = train::trainer<model, losses::sigmoid, optim::adamw, train::reference::frozen<model>>;
  const nlohmann::json g = golden();
  const auto d = pairs_of(g.at("train_pairs"));
  auto policy = models::from_pretrained<model>(B{}, test::data_path("models/gpt2"));
  auto ref = models::from_pretrained<model>(B{}, test::data_path("models/gpt2"));
  dpo t(policy, {.beta = 0.1}, {.lr = 1e-3}, {&ref}, {.token_metrics = false});
  const std::vector<std::size_t> idx{0, 1, 2, 3};
  const auto r = t.step(data::make_batch(d, idx, true));
  for (const char* key : {"entropy", "logits/chosen", "logits/rejected", "mean_token_accuracy"}) CHECK(r.metrics.count(key) == 0);
  CHECK(r.metrics.at("num_tokens") == g.at("train_rows")[0].at("num_tokens").get<double>());
  CHECK(r.metrics.at("loss") == doctest::Approx(g.at("train_rows")[0].at("loss").get<double>()).epsilon(2e-5));
}

TEST_CASE("gradient accumulation: each token metric is the mean of the micro-batches' ratios (TRL's averaging), "
          "num_tokens counts every micro-batch") {
  using B = backends::eigen;
  using model = models::gpt2<B>;
  using dpo = train::trainer<model, losses::sigmoid, optim::adamw, train::reference::frozen<model>>;
  const nlohmann::json g = golden();
  const auto d = pairs_of(g.at("train_pairs"));
  auto step = [&](const std::vector<std::vector<std::size_t>>& parts) {
    auto policy = models::from_pretrained<model>(B{}, test::data_path("models/gpt2"));
    auto ref = models::from_pretrained<model>(B{}, test::data_path("models/gpt2"));
    dpo t(policy, {.beta = 0.1}, {.lr = 1e-3}, {&ref});
    std::vector<train::preference_batch<models::token_batch>> micro;
    for (const auto& p : parts) micro.push_back(data::make_batch(d, p, true));
    return t.step(std::span<const train::preference_batch<models::token_batch>>(micro)).metrics;
  };
  const std::vector<std::size_t> a{0, 1, 2}, b{3, 4, 5, 6, 7};
  const auto whole = step({{0, 1, 2, 3, 4, 5, 6, 7}}), first = step({a}), second = step({b});
  const auto split = step({a, b});
  for (const char* key : {"entropy", "logits/chosen", "logits/rejected", "mean_token_accuracy"}) {
    CAPTURE(key);
    CHECK(split.at(key) == doctest::Approx((first.at(key) + second.at(key)) / 2.0).epsilon(1e-6));
  }
  // the micro-batches have different token counts: the token-weighted ratio is another number
  CHECK(std::abs(split.at("mean_token_accuracy") - whole.at("mean_token_accuracy")) > 1e-3);
  CHECK(split.at("num_tokens") == whole.at("num_tokens"));
  CHECK(split.at("num_tokens") == first.at("num_tokens") + second.at("num_tokens"));
  CHECK(whole.at("num_tokens") == g.at("train_rows")[1].at("num_tokens").get<double>());  // TRL's count after both batches
}

TEST_CASE("the runner logs num_tokens as its count at the logged step (not a window mean), eval_num_tokens as the "
          "training count, and a resumed run continues the count") {
  using B = backends::eigen;
  using model = models::gpt2<B>;
  using dpo = train::trainer<model, losses::sigmoid, optim::adamw, train::reference::frozen<model>>;
  namespace fs = std::filesystem;
  const nlohmann::json g = golden();
  const auto d = pairs_of(g.at("train_pairs")), held_out = pairs_of(g.at("eval_pairs"));
  // Both steps together see all 8 pairs, whatever the order: TRL's count after step 2.
  const double total = g.at("train_rows")[1].at("num_tokens").get<double>();
  const fs::path root = fs::temp_directory_path() / ("prefopt-trl-metrics-" + std::to_string(::getpid()));
  fs::remove_all(root);
  auto run = [&](const fs::path& dir, bool resume, int save_steps) {
    auto policy = models::from_pretrained<model>(B{}, test::data_path("models/gpt2"));
    auto ref = models::from_pretrained<model>(B{}, test::data_path("models/gpt2"));
    dpo t(policy, {.beta = 0.1}, {.lr = 1e-3}, {&ref});
    std::ostringstream log;
    train::runner<dpo> r(t, d, &held_out,
                         {.max_steps = 2, .batch_size = 4, .logging_steps = 2, .eval_steps = 2, .save_steps = save_steps,
                          .save_total_limit = 0, .output_dir = dir, .tensorboard = false, .resume = resume, .log = &log});
    r.run();
    std::ifstream in(dir / "metrics.jsonl");
    std::vector<nlohmann::json> rows;
    for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
    return rows;
  };
  const auto rows = run(root / "straight", false, 1);
  REQUIRE(rows.size() == 2);  // the training row of step 2 (steps 1-2 averaged), then the evaluation row
  CHECK(rows[0].at("step") == 2);
  CHECK(rows[0].at("num_tokens").get<double>() == total);
  for (const char* key : {"entropy", "logits/chosen", "logits/rejected", "mean_token_accuracy"}) CHECK(rows[0].contains(key));
  CHECK(rows[1].at("eval_num_tokens").get<double>() == total);
  for (const char* key : {"eval_entropy", "eval_logits/chosen", "eval_logits/rejected", "eval_mean_token_accuracy"})
    CHECK(rows[1].contains(key));
  // checkpoint-1 holds the count of step 1; resumed from it, the run logs the same rows
  const fs::path resumed = root / "resumed";
  fs::create_directories(resumed);
  fs::copy(root / "straight" / "checkpoint-1", resumed / "checkpoint-1", fs::copy_options::recursive);
  fs::copy(root / "straight" / "metrics.jsonl", resumed / "metrics.jsonl");  // rows past step 1: cut on resume
  CHECK(run(resumed, true, 1) == rows);
  fs::remove_all(root);
}
