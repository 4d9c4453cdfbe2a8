// Tests for prefopt/train/metrics_log.hpp.
// Expected file contents are written out by hand from the format the header documents: JSON numbers
// in their shortest round-trip form (what Python's json.dumps prints for the same doubles: 0.1,
// 1e-07, 3.0), null for non-finite values in JSONL, nan/inf/-inf in CSV; TensorBoard tags as
// transformers.integrations.integration_utils.rewrite_logs produces them.
#include "prefopt/train/metrics_log.hpp"
#include "support/files.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <iterator>
#include <limits>

namespace fs = std::filesystem;
using namespace prefopt::train;
using prefopt::test::read_file;
using prefopt::test::scratch_path;

namespace {

void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();
constexpr double inf = std::numeric_limits<double>::infinity();

} // namespace

TEST_CASE("JSONL and CSV rows with TRL metric names") {
  const auto dir = scratch_path("basic");
  metrics_log log(dir);
  CHECK(read_file(log.jsonl_path()).empty());
  CHECK(read_file(log.csv_path()).empty());
  log.log(10, {{"epoch", 0.5}, {"loss", 0.6931471805599453}, {"rewards/chosen", -0.1}, {"learning_rate", 1e-07}});
  log.log(20, {{"epoch", 1.0}, {"loss", 0.5}, {"rewards/chosen", 0.25}, {"learning_rate", 2e-07}});
  CHECK(read_file(log.jsonl_path()) ==
        "{\"step\": 10, \"epoch\": 0.5, \"loss\": 0.6931471805599453, \"rewards/chosen\": -0.1, \"learning_rate\": 1e-07}\n"
        "{\"step\": 20, \"epoch\": 1.0, \"loss\": 0.5, \"rewards/chosen\": 0.25, \"learning_rate\": 2e-07}\n");
  CHECK(read_file(log.csv_path()) ==
        "step,epoch,loss,rewards/chosen,learning_rate\n"
        "10,0.5,0.6931471805599453,-0.1,1e-07\n"
        "20,1.0,0.5,0.25,2e-07\n");
  CHECK(log.rows() == 2);
  CHECK(log.last_step() == 20);
  fs::remove_all(dir);
}

TEST_CASE("a new key widens the CSV header and rewrites the file") {
  const auto dir = scratch_path("widen");
  metrics_log log(dir);
  log.log(1, {{"loss", 0.7}});
  log.log(2, {{"loss", 0.6}});
  log.log(2, {{"eval_loss", 0.65}, {"eval_rewards/accuracies", 0.75}}); // an evaluation row at the same step
  log.log(3, {{"loss", 0.5}, {"grad_norm", 1.5}});
  CHECK(read_file(log.csv_path()) ==
        "step,loss,eval_loss,eval_rewards/accuracies,grad_norm\n"
        "1,0.7,,,\n"
        "2,0.6,,,\n"
        "2,,0.65,0.75,\n"
        "3,0.5,,,1.5\n");
  CHECK(log.csv_header() == std::vector<std::string>{"step", "loss", "eval_loss", "eval_rewards/accuracies", "grad_norm"});
  CHECK_FALSE(fs::exists(dir / "metrics.csv.tmp"));
  // a header key that needs CSV quoting
  log.log(4, {{"odd,\"name\"", 1.0}});
  CHECK(read_file(log.csv_path()).starts_with("step,loss,eval_loss,eval_rewards/accuracies,grad_norm,\"odd,\"\"name\"\"\"\n"));
  CHECK(read_file(log.jsonl_path()).ends_with("{\"step\": 4, \"odd,\\\"name\\\"\": 1.0}\n"));
  fs::remove_all(dir);
}

TEST_CASE("non-finite values: null in JSONL, nan/inf in CSV") {
  const auto dir = scratch_path("nan");
  metrics_log log(dir);
  log.log(5, {{"loss", not_a_number}, {"grad_norm", inf}, {"rewards/margins", -inf}, {"x", 0.0}});
  CHECK(read_file(log.jsonl_path()) == "{\"step\": 5, \"loss\": null, \"grad_norm\": null, \"rewards/margins\": null, \"x\": 0.0}\n");
  CHECK(read_file(log.csv_path()) == "step,loss,grad_norm,rewards/margins,x\n5,nan,inf,-inf,0.0\n");
  // resuming keeps the CSV spelling of the values JSONL could only write as null
  auto resumed = metrics_log::open(dir, true);
  CHECK(read_file(resumed.csv_path()) == "step,loss,grad_norm,rewards/margins,x\n5,nan,inf,-inf,0.0\n");
  fs::remove_all(dir);
  // without the CSV, null reads back as nan
  metrics_log again(dir);
  again.log(5, {{"grad_norm", inf}});
  fs::remove(again.csv_path());
  auto rebuilt = metrics_log::open(dir, true);
  CHECK(read_file(rebuilt.csv_path()) == "step,grad_norm\n5,nan\n");
  fs::remove_all(dir);
}

TEST_CASE("resume: truncate_after drops rows logged after the checkpoint") {
  const auto dir = scratch_path("resume");
  std::string expected_jsonl, expected_csv;
  {
    metrics_log log(dir);
    for (int s = 90; s <= 120; s += 10) {
      log.log(s, {{"loss", 1.0 / s}});
      if (s == 100) {
        log.log(s, {{"eval_loss", 0.5}});
        expected_jsonl = read_file(log.jsonl_path());
        expected_csv = read_file(log.csv_path());
      }
      if (s == 110) log.log(s, {{"eval_loss", 0.4}, {"eval_new", 1.0}}); // a key first seen after the checkpoint
    }
    CHECK(log.csv_header().size() == 4);
  }
  {
    auto log = metrics_log::open(dir, true);
    CHECK(log.rows() == 6);
    CHECK(log.last_step() == 120);
    log.truncate_after(100);
    CHECK(log.rows() == 3);
    CHECK(read_file(log.jsonl_path()) == expected_jsonl);
    CHECK(read_file(log.csv_path()) == expected_csv); // header narrowed back: eval_new is gone
    CHECK(log.csv_header() == std::vector<std::string>{"step", "loss", "eval_loss"});
    CHECK_THROWS_AS(log.log(99, {{"loss", 1.0}}), prefopt::config_error);
    log.log(110, {{"loss", 0.25}});
  }
  CHECK(read_file(dir / "metrics.jsonl") == expected_jsonl + "{\"step\": 110, \"loss\": 0.25}\n");
  // the files equal those of a run that was never interrupted: rows up to 100, then the new 110
  CHECK(read_file(dir / "metrics.csv") == expected_csv + "110,0.25,\n");
  fs::remove_all(dir);
}

TEST_CASE("resume: a torn last line is dropped, other damage is reported") {
  const auto dir = scratch_path("torn");
  fs::create_directories(dir);
  write(dir / "metrics.jsonl", "{\"step\": 1, \"loss\": 0.5}\n{\"step\": 2, \"lo");
  {
    auto log = metrics_log::open(dir, true);
    CHECK(log.dropped_torn_line());
    CHECK(log.rows() == 1);
    CHECK(read_file(log.jsonl_path()) == "{\"step\": 1, \"loss\": 0.5}\n");
    CHECK(read_file(log.csv_path()) == "step,loss\n1,0.5\n");
  }
  write(dir / "metrics.jsonl", "{\"step\": 1}\n{\"step\": 2, \"lo\n{\"step\": 3}\n");
  try {
    (void)metrics_log::open(dir, true);
    FAIL("expected format_error");
  } catch (const prefopt::format_error& e) {
    CHECK(e.where() == (dir / "metrics.jsonl").string() + ":2");
  }
  write(dir / "metrics.jsonl", "{\"step\": 1}\n{\"step\": 2, \"loss\": \"high\"}\n");
  CHECK_THROWS_WITH_AS((void)metrics_log::open(dir, true), doctest::Contains(":2: field 'loss'"), prefopt::format_error);
  write(dir / "metrics.jsonl", "{\"step\": 3}\n{\"step\": 2}\n");
  CHECK_THROWS_AS((void)metrics_log::open(dir, true), prefopt::format_error);
  write(dir / "metrics.jsonl", "{\"loss\": 1}\n");
  CHECK_THROWS_WITH_AS((void)metrics_log::open(dir, true), doctest::Contains(":1: field 'step'"), prefopt::format_error);
  // open without resume starts over
  metrics_log fresh = metrics_log::open(dir, false);
  CHECK(read_file(fresh.jsonl_path()).empty());
  fs::remove_all(dir);
}

TEST_CASE("misuse is a config_error") {
  const auto dir = scratch_path("misuse");
  metrics_log log(dir);
  CHECK_THROWS_AS(log.log(1, {{"step", 1.0}}), prefopt::config_error);
  CHECK_THROWS_AS(log.log(1, {{"", 1.0}}), prefopt::config_error);
  CHECK_THROWS_AS(log.log(1, {{"loss", 1.0}, {"loss", 2.0}}), prefopt::config_error);
  CHECK_THROWS_AS(log.log(1, {{"bad\xff", 1.0}}), prefopt::config_error);
  CHECK(log.rows() == 0);
  fs::remove_all(dir);
}

TEST_CASE("rows are forwarded to TensorBoard under Hugging Face's tags") {
  CHECK(tensorboard_tag("loss") == "train/loss");
  CHECK(tensorboard_tag("rewards/chosen") == "train/rewards/chosen");
  CHECK(tensorboard_tag("eval_loss") == "eval/loss");
  CHECK(tensorboard_tag("eval_rewards/margins") == "eval/rewards/margins");
  CHECK(tensorboard_tag("test_loss") == "test/loss");
  const auto dir = scratch_path("tb");
  tensorboard_writer tb(dir / "tb");
  metrics_log log(dir);
  log.forward_to(&tb);
  log.log(1, {{"loss", 0.5}, {"eval_loss", 0.75}});
  log.truncate_after(0);
  const auto bytes = read_file(tb.path()); // the log flushes the writer after each row
  CHECK(bytes.find("train/loss") != std::string::npos);
  CHECK(bytes.find("eval/loss") != std::string::npos);
  // one Event per row (plus file_version and the SessionLog START of truncate_after):
  std::size_t records = 0;
  for (std::size_t pos = 0; pos < bytes.size(); ++records) {
    std::uint64_t len = 0;
    for (int i = 0; i < 8; ++i) len |= std::uint64_t(static_cast<unsigned char>(bytes[pos + i])) << (8 * i);
    pos += 16 + len;
  }
  CHECK(records == 3);
  CHECK(bytes.find(std::string("\x3a\x02\x08\x01", 4)) != std::string::npos); // session_log { status: START }
  fs::remove_all(dir);
}
