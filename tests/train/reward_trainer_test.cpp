// train/reward_trainer.hpp under train::runner: a reward run checkpoints what it needs (the model or
// the adapter with the score head, both optimizer groups, the token count) and a run resumed from
// a mid-run checkpoint on a model with other starting weights ends bit-equal to the uninterrupted
// run, full and LoRA. (Losses, gradients and scores: tests/models/reward_model_test.cpp.)
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>

#include "prefopt/models/lora.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/train/reward_trainer.hpp"
#include "prefopt/train/runner.hpp"
#include "prefopt/backends/eigen.hpp"
#include "support/tiny_transformer.hpp"
#include "support/files.hpp"

using namespace prefopt;
namespace fs = std::filesystem;

namespace {

using B = backends::eigen;
using body = models::gpt2<B>;

data::tokenized_preferences pairs(std::size_t n) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<std::int32_t> tok(1, 49), len(1, 5);
  data::tokenized_preferences d;
  for (std::size_t i = 0; i < n; ++i) {
    models::tokenized_pair p;
    for (int k = len(rng); k > 0; --k) p.prompt.push_back(tok(rng));
    for (int k = len(rng); k > 0; --k) p.chosen.push_back(tok(rng));
    for (int k = len(rng); k > 0; --k) p.rejected.push_back(tok(rng));
    d.pairs.push_back(std::move(p));
    d.lines.push_back(i + 1);
  }
  return d;
}

// A tiny GPT-2 reward model whose weights and head are drawn from `seed`.
models::reward_model<body> full_model(std::uint64_t seed) {
  models::reward_model<body> rm(body(B{}, test::tiny_transformer(models::architecture::gpt2)), 0);
  test::randomize_trainable(rm.body(), seed);
  std::vector<float> head(rm.head_parameters().size());
  models::detail::normal_source n(seed + 1);
  for (auto& x : head) x = float(0.2 * n());
  rm.backend().upload(std::span<const float>(head), rm.head_parameters());
  return rm;
}

template <class RM> std::vector<float> trainable(RM& rm) {
  std::vector<float> w(rm.body_parameters().size() + rm.head_parameters().size());
  rm.backend().download(rm.body_parameters(), std::span<float>(w).first(rm.body_parameters().size()));
  rm.backend().download(rm.head_parameters(), std::span<float>(w).subspan(rm.body_parameters().size()));
  return w;
}

// Trains rm for 6 steps (batch 2, checkpoints every 2) in `dir`; returns the trained weights.
template <class RM> std::vector<float> run(RM& rm, const data::tokenized_preferences& d, const fs::path& dir, bool resume) {
  train::training_args args;
  args.schedule = {.kind = optim::schedule_kind::linear, .total_steps = 6};
  train::reward_trainer t(rm, {.center_rewards_coefficient = 0.01}, optim::adamw{.lr = 1e-2}, args);
  const train::reward_dataset set{&d, {}, rm.pad_token_id()};
  std::ostringstream log;
  train::runner r(t, set, &set,
                  {.max_steps = 6, .batch_size = 2, .logging_steps = 1, .eval_steps = 3, .save_steps = 2, .save_total_limit = 0,
                   .output_dir = dir, .tensorboard = false, .resume = resume, .log = &log});
  const auto s = r.run();
  CHECK(s.steps == 6);
  CHECK(s.resumed == resume);
  return trainable(rm);
}

// Runs once straight, then resumes a copy of that folder from checkpoint-4 on a model made with
// other weights: the result and the metrics files must be the same.
template <class Make> void check_resume(Make&& make, const std::string& name) {
  const auto d = pairs(9);
  const fs::path a = test::scratch_path(name + "-a"), b = test::scratch_path(name + "-b");
  auto first = make(1);
  const auto want = run(first, d, a, false);
  auto fresh = make(1);
  CHECK(want != trainable(fresh));  // training moved the weights
  fs::copy(a, b, fs::copy_options::recursive);
  fs::remove_all(b / "checkpoint-6");
  const auto st = train::read_checkpoint_state(b / "checkpoint-4");
  CHECK(st.global_step == 4);
  REQUIRE(st.loss_state.size() == 1);
  CHECK(st.loss_state[0] > 0.0);  // the tokens seen so far (num_tokens)
  auto other = make(7);
  CHECK(run(other, d, b, true) == want);
  CHECK(test::read_file(a / "metrics.jsonl") == test::read_file(b / "metrics.jsonl"));
  CHECK(test::read_file(a / "metrics.csv") == test::read_file(b / "metrics.csv"));
  fs::remove_all(a);
  fs::remove_all(b);
}

} // namespace

TEST_CASE("reward run: resumed from a checkpoint, the weights and metrics equal the uninterrupted run's (full model)") {
  check_resume([](std::uint64_t seed) { return full_model(seed); }, "full");
  const fs::path dir = test::scratch_path("full-layout");
  auto rm = full_model(1);
  const auto d = pairs(9);
  run(rm, d, dir, false);
  CHECK(fs::exists(dir / "checkpoint-6" / "model.safetensors"));
  CHECK(io::safetensors_file(dir / "checkpoint-6" / "model.safetensors").contains("score.weight"));
  const io::safetensors_file opt(dir / "checkpoint-6" / "optimizer.safetensors");
  for (const char* k : {"body.exp_avg", "body.exp_avg_sq", "score.exp_avg", "score.exp_avg_sq"}) CHECK(opt.contains(k));
  fs::remove_all(dir);
}

TEST_CASE("reward run: resumed from a checkpoint, the adapters and head equal the uninterrupted run's (LoRA)") {
  using lora_body = models::lora<body>;
  const models::lora_config lc{.r = 2, .alpha = 4.0, .target_modules = {"c_attn", "c_fc"}};
  auto make = [&](std::uint64_t seed) {
    auto base = full_model(3);  // the same frozen base for every run
    std::vector<float> head(base.head_parameters().size());
    models::detail::normal_source n(seed);
    for (auto& x : head) x = float(0.2 * n());
    models::reward_model<lora_body> rm(lora_body(std::move(base.body()), lc, seed), 0);
    rm.backend().upload(std::span<const float>(head), rm.head_parameters());
    return rm;
  };
  check_resume(make, "lora");
}

TEST_CASE("reward_loss_state: the token count round-trips and a wrong loss_state is an error") {
  train::reward_loss_state s;
  s.tokens = 123456789012LL;
  train::reward_loss_state t;
  t.set_state(s.state());
  CHECK(t.tokens == s.tokens);
  CHECK_THROWS_AS(t.set_state({}), format_error);
  CHECK_THROWS_AS(t.set_state({1.5}), format_error);
  CHECK_THROWS_AS(t.set_state({-1.0}), format_error);
  CHECK_THROWS_AS(t.set_state({1.0, 2.0}), format_error);
}
