// train::runner on the small GPT-2 of tests/data: a loss or gradient that is never finite ends the
// run with an error instead of looping (paired and KTO), a resumed run never trains past its end
// and continues the metrics window exactly, and a fresh run refuses an earlier run's checkpoints.
// A watchdog turns a regression of the hang into a failure instead of a test that never ends.
#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "prefopt/backends/eigen.hpp"
#include "prefopt/losses.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/train/kto_trainer.hpp"
#include "prefopt/train/runner.hpp"
#include "support/data.hpp"
#include "support/files.hpp"

using namespace prefopt;
using B = backends::eigen;
using model = models::gpt2<B>;
namespace fs = std::filesystem;

namespace {
// Ends the process with a failure when a run takes longer than `seconds`.
class watchdog {
public:
  explicit watchdog(double seconds)
      : thread_([this, seconds] {
          std::unique_lock lock(mutex_);
          if (!done_cv_.wait_for(lock, std::chrono::duration<double>(seconds), [this] { return done_; })) {
            std::fprintf(stderr, "runner_test: a run did not end within %g s (training loops without progress)\n", seconds);
            std::_Exit(1);
          }
        }) {}
  ~watchdog() {
    {
      const std::lock_guard lock(mutex_);
      done_ = true;
    }
    done_cv_.notify_all();
    thread_.join();
  }

private:
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::thread thread_;
};

model load() { return models::from_pretrained<model>(B{}, test::data_path("models/gpt2")); }

data::tokenized_preferences pairs(std::size_t n) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<std::int32_t> tok(1, 300), len(1, 6);
  data::tokenized_preferences d;
  for (std::size_t i = 0; i < n; ++i) {
    models::tokenized_pair p;
    for (int k = len(rng) + 1; k > 0; --k) p.prompt.push_back(tok(rng));
    for (int k = len(rng); k > 0; --k) p.chosen.push_back(tok(rng));
    for (int k = len(rng); k > 0; --k) p.rejected.push_back(tok(rng));
    d.pairs.push_back(std::move(p));
    d.lines.push_back(i + 1);
  }
  return d;
}

using dpo_trainer = train::trainer<model, losses::sigmoid, optim::adamw, train::reference::frozen<model>>;

// One DPO run over 24 pairs (3 steps an epoch with batch size 8) in `dir` with fresh models.
struct dpo_run {
  model policy = load(), ref = load();
  dpo_trainer t;
  std::ostringstream log;
  explicit dpo_run(double beta = 0.1, double lr = 1e-3) : t(policy, losses::sigmoid{.beta = beta}, optim::adamw{.lr = lr}, {&ref}) {}
  train::run_summary run(const data::tokenized_preferences& d, train::runner_options o) {
    o.log = &log;
    o.tensorboard = false;
    train::runner<dpo_trainer> r(t, d, nullptr, o);
    return r.run();
  }
};
} // namespace

TEST_CASE("a loss or gradient that is never finite ends the run with an error naming the cause") {
  const watchdog dog(300);
  const auto d = pairs(24);
  SUBCASE("max_steps: stops after max_consecutive_skipped_steps, at the step it could not take") {
    dpo_run run(1e308);  // the gradient overflows: every step is skipped
    const auto dir = test::scratch_path("skip-max-steps");
    try {
      run.run(d, {.max_steps = 2, .batch_size = 2, .output_dir = dir, .max_consecutive_skipped_steps = 4});
      FAIL("the run did not stop");
    } catch (const train::training_error& e) {
      CHECK(std::string(e.what()).find("4 consecutive steps skipped: non-finite gradient norm") != std::string::npos);
      CHECK(e.where().find("step 1") != std::string::npos);
      CHECK(std::string(e.what()).find("training.max_consecutive_skipped_steps") != std::string::npos);
    }
    CHECK(run.t.global_step() == 0);
    CHECK(train::latest_checkpoint(dir) == std::nullopt);
    CHECK(test::read_file(dir / "metrics.jsonl").empty());  // no row for a step that did not happen
  }
  SUBCASE("limit 0 never stops for skips in a row, but an epoch without an update still ends the run") {
    dpo_run run(1e308);
    try {
      run.run(d, {.max_steps = 2, .batch_size = 8, .output_dir = test::scratch_path("skip-zero"), .max_consecutive_skipped_steps = 0});
      FAIL("the run did not stop");
    } catch (const train::training_error& e) {
      CHECK(std::string(e.what()).find("every step of epoch 1 was skipped") != std::string::npos);
    }
  }
  SUBCASE("epochs: a run whose every step was skipped is an error, not success") {
    dpo_run run(1e308);
    CHECK_THROWS_AS(run.run(d, {.epochs = 2, .batch_size = 8, .output_dir = test::scratch_path("skip-epochs"),
                                .max_consecutive_skipped_steps = 10}),
                    train::training_error);
  }
  SUBCASE("a learning rate that blows the weights up: one update, then skips") {
    dpo_run run(0.1, 1e300);
    try {
      run.run(d, {.max_steps = 3, .batch_size = 8, .output_dir = test::scratch_path("skip-lr")});
      FAIL("the run did not stop");
    } catch (const train::training_error& e) {
      CHECK(std::string(e.what()).find("5 consecutive steps skipped") != std::string::npos);
      CHECK(e.where().find("step 2") != std::string::npos);
    }
  }
  SUBCASE("KTO: weights holding NaN") {
    model policy = load(), ref = load();
    const std::vector<float> nan(policy.parameters().size(), NAN);
    policy.backend().upload(std::span<const float>(nan), policy.parameters());
    data::tokenized_unpaired u;
    for (const auto& p : d.pairs) {
      u.examples.push_back({p.prompt, p.chosen, true});
      u.examples.push_back({p.prompt, p.rejected, false});
      u.lines.push_back(u.lines.size() + 1), u.lines.push_back(u.lines.size() + 1);
    }
    train::kto_trainer<model, losses::kto, optim::adamw, model> t(policy, losses::kto{}, optim::adamw{.lr = 1e-3}, {.model = &ref});
    std::ostringstream log;
    train::runner<decltype(t), data::tokenized_unpaired> r(t, u, nullptr, {.max_steps = 2, .batch_size = 8, .output_dir = test::scratch_path("skip-kto"), .tensorboard = false,
                                    .max_consecutive_skipped_steps = 3, .log = &log});
    try {
      r.run();
      FAIL("the run did not stop");
    } catch (const train::training_error& e) {
      CHECK(std::string(e.what()).find("3 consecutive steps skipped: non-finite loss") != std::string::npos);
    }
  }
}

TEST_CASE("resume: a finished run stays finished, and the metrics window straddles a checkpoint exactly") {
  const watchdog dog(600);
  const auto d = pairs(24);
  const train::runner_options base{.max_steps = 5, .batch_size = 8, .logging_steps = 3, .save_steps = 2, .save_total_limit = 0};
  const auto straight = test::scratch_path("straight");
  dpo_run a;
  auto oa = base;
  oa.output_dir = straight;
  CHECK(a.run(d, oa).steps == 5);
  const auto weights = test::read_file(straight / "checkpoint-5" / "model.safetensors");

  SUBCASE("resuming the last checkpoint trains nothing, even when it predates the 'finished' mark") {
    for (const bool mark : {true, false}) {
      if (!mark) {  // as a checkpoint written before the run ended (or by an older prefopt) leaves it
        auto st = train::read_checkpoint_state(straight / "checkpoint-5");
        st.finished = false;
        train::update_checkpoint_state(straight / "checkpoint-5", st);
      }
      dpo_run b;
      auto ob = oa;
      ob.resume = true;
      const auto s = b.run(d, ob);
      CHECK(s.already_finished);
      CHECK(s.steps == 5);
      CHECK(b.t.global_step() == 5);
      CHECK(train::read_checkpoint_state(straight / "checkpoint-5").finished);
      CHECK(test::read_file(straight / "checkpoint-5" / "model.safetensors") == weights);
    }
  }
  SUBCASE("resuming from checkpoint-2 with logging every 3 steps: the same metrics and weights") {
    const auto resumed = test::scratch_path("resumed");
    fs::create_directories(resumed);
    fs::copy(straight / "checkpoint-2", resumed / "checkpoint-2", fs::copy_options::recursive);
    fs::copy(straight / "metrics.jsonl", resumed / "metrics.jsonl");  // rows past step 2 too: truncated on resume
    CHECK(train::read_checkpoint_state(resumed / "checkpoint-2").log_window_steps == 2);
    dpo_run b;
    auto ob = base;
    ob.output_dir = resumed;
    ob.resume = true;
    const auto s = b.run(d, ob);
    CHECK(s.resumed);
    CHECK(s.steps == 5);
    CHECK(test::read_file(resumed / "metrics.jsonl") == test::read_file(straight / "metrics.jsonl"));
    CHECK(test::read_file(resumed / "checkpoint-5" / "model.safetensors") == weights);
  }
}

TEST_CASE("a fresh run refuses an output folder holding an earlier run's checkpoints") {
  const watchdog dog(300);
  const auto d = pairs(8);
  const auto dir = test::scratch_path("fresh");
  const train::runner_options o{.max_steps = 1, .batch_size = 8, .save_steps = 1, .output_dir = dir};
  dpo_run first;
  first.run(d, o);
  REQUIRE(fs::exists(dir / "checkpoint-1"));
  fs::create_directories(dir / "checkpoint-7");  // an older run's, even an incomplete one, counts
  dpo_run second;
  try {
    second.run(d, o);
    FAIL("a fresh run took a folder with checkpoints");
  } catch (const config_error& e) {
    CHECK(e.where() == dir.string());
    CHECK(std::string(e.what()).find("output.overwrite=true") != std::string::npos);
    CHECK(std::string(e.what()).find("training.resume=true") != std::string::npos);
  }
  CHECK(fs::exists(dir / "checkpoint-7"));
  auto ow = o;
  ow.overwrite = true;
  dpo_run third;
  CHECK(third.run(d, ow).steps == 1);
  CHECK_FALSE(fs::exists(dir / "checkpoint-7"));
  CHECK(train::latest_checkpoint(dir) == dir / "checkpoint-1");
}
