// Checkpoints on disk: the trainer state round-trips exactly (metrics window with nan/inf, older
// states without the newer fields), rotation never leaves fewer complete checkpoints than before
// and never removes the one just written, and every state a crash can leave resumes from a
// complete checkpoint.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "prefopt/train/checkpoint.hpp"
#include "support/files.hpp"

using namespace prefopt;
namespace fs = std::filesystem;

namespace {
// A checkpoint whose only content file says which write produced it.
fs::path write(const fs::path& out, long step, const std::string& tag, int keep = 0) {
  train::checkpoint_state st;
  st.global_step = step;
  return train::write_checkpoint(
      out, step, st, [&](const fs::path& dir) { std::ofstream(dir / "model.safetensors") << tag; }, keep);
}
} // namespace

TEST_CASE("trainer state: the metrics window and skip counters round-trip exactly") {
  train::checkpoint_state st;
  st.global_step = 12;
  st.log_window = {{"loss", 0.1 + 0.2}, {"rewards/margins", 1.0 / 3.0}, {"grad_norm", NAN}, {"x", -INFINITY}, {"y", INFINITY}};
  st.log_window_steps = 2;
  st.skipped_steps = 3;
  st.consecutive_skipped = 1;
  st.finished = true;
  const auto back = train::checkpoint_state::from_json(nlohmann::json::parse(st.to_json().dump()), "trainer_state.json");
  CHECK(back.log_window.at("loss") == st.log_window.at("loss"));  // bit for bit
  CHECK(back.log_window.at("rewards/margins") == st.log_window.at("rewards/margins"));
  CHECK(std::isnan(back.log_window.at("grad_norm")));
  CHECK(back.log_window.at("x") == -INFINITY);
  CHECK(back.log_window.at("y") == INFINITY);
  CHECK(back.log_window_steps == 2);
  CHECK(back.skipped_steps == 3);
  CHECK(back.consecutive_skipped == 1);
  CHECK(back.finished);

  nlohmann::json old = st.to_json();  // a state written before these fields existed
  for (const char* key : {"skipped_steps", "consecutive_skipped", "log_window", "log_window_steps", "finished"}) old.erase(key);
  const auto o = train::checkpoint_state::from_json(old, "old");
  CHECK(o.global_step == 12);
  CHECK(o.log_window.empty());
  CHECK_FALSE(o.finished);

  // the values behind each sum (micro-batches with gradient accumulation, as TRL averages them)
  st.log_window_counts = {{"loss", 2.0}, {"rewards/margins", 3.0}};
  const auto counted = train::checkpoint_state::from_json(nlohmann::json::parse(st.to_json().dump()), "trainer_state.json");
  CHECK(counted.log_window_counts == st.log_window_counts);
  nlohmann::json uncounted = st.to_json();  // written before the counts: one value per step behind every sum
  uncounted.erase("log_window_counts");
  const auto u = train::checkpoint_state::from_json(uncounted, "uncounted");
  REQUIRE(u.log_window_counts.size() == st.log_window.size());
  for (const auto& kv : u.log_window_counts) CHECK(kv.second == 2.0);

  nlohmann::json bad = st.to_json();
  bad["log_window"]["loss"] = "many";
  CHECK_THROWS_AS(train::checkpoint_state::from_json(bad, "trainer_state.json"), format_error);
}

TEST_CASE("rotation keeps the newest complete checkpoints and never the one just written") {
  const auto out = test::scratch_dir("rotate");
  write(out, 2, "a", 1);
  write(out, 4, "b", 1);
  CHECK_FALSE(fs::exists(out / "checkpoint-2"));
  CHECK(test::read_file(out / "checkpoint-4" / "model.safetensors") == "b");
  write(out, 9, "stale");   // a higher step left behind (keep = 0: nothing removed)
  write(out, 6, "c", 1);    // the limit drops the others, never checkpoint-6
  CHECK(fs::exists(out / "checkpoint-6" / "trainer_state.json"));
  CHECK_FALSE(fs::exists(out / "checkpoint-4"));
  CHECK_FALSE(fs::exists(out / "checkpoint-9"));
  write(out, 8, "d", 2);
  CHECK(fs::exists(out / "checkpoint-6"));
  CHECK(fs::exists(out / "checkpoint-8"));
}

TEST_CASE("writing a step again replaces it without a moment with no complete copy") {
  const auto out = test::scratch_dir("again");
  write(out, 4, "first", 1);
  write(out, 4, "second", 1);
  CHECK(test::read_file(out / "checkpoint-4" / "model.safetensors") == "second");
  CHECK_FALSE(fs::exists(out / "checkpoint-4.replaced"));
  CHECK(train::checkpoint_entries(out).size() == 1);
}

TEST_CASE("every state a crash can leave resumes from a complete checkpoint") {
  SUBCASE("killed between moving the old copy aside and publishing the new one") {
    const auto out = test::scratch_dir("crash-replace");
    write(out, 4, "old");
    fs::rename(out / "checkpoint-4", out / "checkpoint-4.replaced");
    fs::create_directories(out / "checkpoint-4.tmp");  // the new one, complete or not, never published
    const auto ck = train::latest_checkpoint(out);
    REQUIRE(ck);
    CHECK(*ck == out / "checkpoint-4");
    CHECK(test::read_file(out / "checkpoint-4" / "model.safetensors") == "old");
    CHECK_FALSE(fs::exists(out / "checkpoint-4.tmp"));
    CHECK_FALSE(fs::exists(out / "checkpoint-4.replaced"));
  }
  SUBCASE("killed after publishing, before removing the old copy") {
    const auto out = test::scratch_dir("crash-published");
    write(out, 4, "old");
    fs::rename(out / "checkpoint-4", out / "checkpoint-4.replaced");
    write(out, 4, "new");
    const auto ck = train::latest_checkpoint(out);
    REQUIRE(ck);
    CHECK(test::read_file(*ck / "model.safetensors") == "new");
    CHECK_FALSE(fs::exists(out / "checkpoint-4.replaced"));
  }
  SUBCASE("killed while writing the contents: the previous checkpoint") {
    const auto out = test::scratch_dir("crash-contents");
    write(out, 2, "two");
    fs::create_directories(out / "checkpoint-4.tmp");
    std::ofstream(out / "checkpoint-4.tmp" / "model.safetensors") << "half";
    CHECK(train::latest_checkpoint(out) == out / "checkpoint-2");
  }
  SUBCASE("the state of a complete checkpoint is replaced as one file") {
    const auto out = test::scratch_dir("state");
    const auto dir = write(out, 4, "w");
    auto st = train::read_checkpoint_state(dir);
    st.finished = true;
    train::update_checkpoint_state(dir, st);
    CHECK(train::read_checkpoint_state(dir).finished);
    CHECK(test::read_file(dir / "model.safetensors") == "w");
    CHECK_THROWS_AS(train::update_checkpoint_state(out / "checkpoint-8", st), io_error);
  }
}

TEST_CASE("a trainer state with a count beyond its integer type is a format_error, not a float cast") {
  // Found by tests/fuzz/checkpoint_state_fuzz.cpp: optimizer_steps 1.5e29 was converted to long
  // (undefined behaviour under UBSan); 2.5 and -1 are no step counts either.
  nlohmann::json j = train::checkpoint_state{}.to_json();
  for (const nlohmann::json& bad : {nlohmann::json(155555555555555555555555555558.0), nlohmann::json(2.5), nlohmann::json(-1)}) {
    j["optimizer_steps"] = bad;
    CHECK_THROWS_WITH_AS(train::checkpoint_state::from_json(j, "trainer_state.json"),
                         doctest::Contains("field 'optimizer_steps'"), format_error);
  }
  j["optimizer_steps"] = 7;
  j["log_window_steps"] = 1e30;
  CHECK_THROWS_AS(train::checkpoint_state::from_json(j, "trainer_state.json"), format_error);
  j["log_window_steps"] = 3;
  CHECK(train::checkpoint_state::from_json(j, "trainer_state.json").optimizer_steps == 7);
}
