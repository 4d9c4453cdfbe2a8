// prefopt/train/checkpoint.hpp — checkpoints that a killed process can never leave half-written.
//
// A checkpoint is a directory `<output>/checkpoint-<step>` holding
//   the model:        model.safetensors + config.json, or a PEFT adapter for LoRA training
//   optimizer.safetensors   the optimizer's state buffers (exp_avg, exp_avg_sq, ...)
//   reference/        the reference model of a synced (TR-DPO) run
//   trainer_state.json      step, epoch and position in the epoch, optimizer steps, loss state
//                           (dual-ascent multipliers), early-stopping state, skipped-step
//                           counters, the metrics rows accumulated since the last logged row,
//                           whether the run has finished — written last
// It is written into `checkpoint-<step>.tmp`, every file atomically and fsynced, and the
// directory is renamed into place at the end: a crash at any moment leaves either the previous
// checkpoints only, or the new one complete. A directory that already exists under the final name
// is first renamed to `checkpoint-<step>.replaced` and removed only after the new one is in place;
// older checkpoints beyond the limit are removed last. So a crash never leaves fewer complete
// checkpoints than before. Resuming picks the newest complete checkpoint (restoring a `.replaced`
// one whose successor never arrived) and removes stale `.tmp` directories.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/core/json.hpp"
#include "prefopt/io/atomic_file.hpp"
#include "prefopt/io/safetensors.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "prefopt/optim/concepts.hpp"

namespace prefopt::train {

struct checkpoint_state {
  long global_step = 0;
  long optimizer_steps = 0;
  int epoch = 0;                   // the epoch in progress
  std::size_t next_batch = 0;      // index of the next optimizer step's first batch in that epoch
  std::vector<double> loss_state;  // e.g. dual-ascent multipliers
  std::optional<double> best_metric;
  int evals_without_improvement = 0;
  long skipped_steps = 0;             // steps skipped (non-finite loss or gradient) since the run began
  long consecutive_skipped = 0;       // of which directly before this point
  std::map<std::string, double> log_window;  // metric sums of the steps since the last logged row
  long log_window_steps = 0;
  std::map<std::string, double> log_window_counts;  // values behind each sum (step_result::counts)
  bool finished = false;              // the run ended here (max_steps, last epoch, early stop)
  nlohmann::json extra = nlohmann::json::object();

  nlohmann::json to_json() const {
    nlohmann::json window = nlohmann::json::object();
    for (const auto& [k, v] : log_window) window[k] = number_to_json(v);
    nlohmann::json counts = nlohmann::json::object();
    for (const auto& [k, v] : log_window_counts) counts[k] = number_to_json(v);
    return {{"global_step", global_step}, {"optimizer_steps", optimizer_steps}, {"epoch", epoch}, {"next_batch", next_batch},
            {"loss_state", loss_state},    {"best_metric", best_metric ? nlohmann::json(*best_metric) : nlohmann::json()},
            {"evals_without_improvement", evals_without_improvement}, {"skipped_steps", skipped_steps},
            {"consecutive_skipped", consecutive_skipped}, {"log_window", window}, {"log_window_steps", log_window_steps},
            {"log_window_counts", counts},
            {"finished", finished}, {"extra", extra}, {"format", "prefopt-checkpoint-1"}};
  }
  static checkpoint_state from_json(const nlohmann::json& j, const std::string& where) {
    checkpoint_state s;
    // Counts are whole, non-negative numbers in range (json_integer): never a float cast into an integer.
    auto count = [&]<class T>(std::type_identity<T>, const char* key) {
      return json_integer<T>(j.at(key), where + ": field '" + key + "'", 0);
    };
    auto later_count = [&](const char* key) { return j.contains(key) ? count(std::type_identity<long>{}, key) : 0L; };
    try {
      s.global_step = count(std::type_identity<long>{}, "global_step");
      s.optimizer_steps = count(std::type_identity<long>{}, "optimizer_steps");
      s.epoch = count(std::type_identity<int>{}, "epoch");
      s.next_batch = count(std::type_identity<std::size_t>{}, "next_batch");
      s.loss_state = j.at("loss_state").get<std::vector<double>>();
      if (!j.at("best_metric").is_null()) s.best_metric = j.at("best_metric").get<double>();
      s.evals_without_improvement = count(std::type_identity<int>{}, "evals_without_improvement");
      // Fields added later: a checkpoint written before them resumes with their defaults.
      s.skipped_steps = later_count("skipped_steps");
      s.consecutive_skipped = later_count("consecutive_skipped");
      if (const auto w = j.find("log_window"); w != j.end())
        for (const auto& [k, v] : w->items()) s.log_window[k] = number_from_json(v);
      s.log_window_steps = later_count("log_window_steps");
      if (const auto w = j.find("log_window_counts"); w != j.end())
        for (const auto& [k, v] : w->items()) s.log_window_counts[k] = number_from_json(v);
      else  // written before the counts: every sum stood for one value per step
        for (const auto& kv : s.log_window) s.log_window_counts[kv.first] = double(s.log_window_steps);
      s.finished = j.value("finished", false);
      s.extra = j.value("extra", nlohmann::json::object());
    } catch (const std::exception& e) {
      throw format_error(where, std::string("not a prefopt trainer state: ") + e.what());
    }
    return s;
  }

private:
  // Doubles round-trip through JSON exactly; JSON has no NaN or infinity, so those are strings.
  static nlohmann::json number_to_json(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    return v;
  }
  static double number_from_json(const nlohmann::json& v) {
    if (v.is_number()) return v.get<double>();
    const auto t = v.get<std::string>();
    if (t == "nan") return std::numeric_limits<double>::quiet_NaN();
    if (t == "inf" || t == "-inf") return t == "inf" ? HUGE_VAL : -HUGE_VAL;
    throw std::invalid_argument("'" + t + "' is not a number");
  }
};

// Saves a model's trainable state: a LoRA model its adapter, any other transformer its weights,
// a type with save_state / load_state (a reward model, train/reward_trainer.hpp) what it says.
template <class M> void save_model_state(M& m, const std::filesystem::path& dir, io::dtype stored = io::dtype::f32) {
  if constexpr (requires { m.save_state(dir, stored); }) m.save_state(dir, stored);
  else if constexpr (requires { m.save_adapter(dir); }) m.save_adapter(dir);
  else models::save_pretrained(m, dir, stored);
}
template <class M> void load_model_state(M& m, const std::filesystem::path& dir) {
  if constexpr (requires { m.load_state(dir); }) m.load_state(dir);
  else if constexpr (requires { m.load_adapter(dir); }) m.load_adapter(dir);
  else models::load_weights(m, dir);
}

template <class B> void save_buffers(B& be, std::vector<optim::state_view> buffers, const std::filesystem::path& file) {
  io::safetensors_writer w;
  std::vector<std::vector<float>> host;
  host.reserve(buffers.size());
  for (auto& b : buffers) {
    host.emplace_back(b.data.size());
    be.download(b.data, std::span<float>(host.back()));
    w.add(b.name, {b.data.size()}, std::span<const float>(host.back()));
  }
  w.write(file);
}
template <class B> void load_buffers(B& be, std::vector<optim::state_view> buffers, const std::filesystem::path& file) {
  const io::safetensors_file f(file);
  std::vector<float> host;
  for (auto& b : buffers) {
    f.require(b.name, {b.data.size()});
    host.resize(b.data.size());
    f.read_into(b.name, std::span<float>(host));
    be.upload(std::span<const float>(host), b.data);
  }
}

inline std::filesystem::path checkpoint_dir(const std::filesystem::path& out, long step) {
  return out / ("checkpoint-" + std::to_string(step));
}

namespace detail {
// The step of a directory named checkpoint-<step><suffix>; nullopt for any other name.
inline std::optional<long> checkpoint_step(const std::string& name, std::string_view suffix = "") {
  if (name.rfind("checkpoint-", 0) != 0 || !name.ends_with(suffix) || name.size() <= 11 + suffix.size()) return std::nullopt;
  const std::string digits = name.substr(11, name.size() - 11 - suffix.size());
  if (digits.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return std::strtol(digits.c_str(), nullptr, 10);
}

// Puts the finished directory `tmp` in place as `dir`. An existing `dir` is renamed to
// `<dir>.replaced` first and removed only once `tmp` has taken its name: at every moment one of
// the two is complete.
inline void publish_directory(const std::filesystem::path& tmp, const std::filesystem::path& dir) {
  const auto parent = dir.has_parent_path() ? dir.parent_path() : std::filesystem::path(".");
  const auto old = std::filesystem::path(dir.string() + ".replaced");
  const bool had = std::filesystem::exists(dir);
  if (had) {
    std::filesystem::remove_all(old);
    std::filesystem::rename(dir, old);
  }
  std::filesystem::rename(tmp, dir);
  io::sync_directory(parent);
  if (had) std::filesystem::remove_all(old);
}

// Test hook: PREFOPT_TEST_CHECKPOINT_PAUSE (seconds) pauses at `step`, at every step or only at
// PREFOPT_TEST_CHECKPOINT_PAUSE_STEP, so that a test can kill the process at that point.
inline void test_pause(long step) {
  if (const char* pause = std::getenv("PREFOPT_TEST_CHECKPOINT_PAUSE")) {
    const char* at = std::getenv("PREFOPT_TEST_CHECKPOINT_PAUSE_STEP");
    if (!at || std::atol(at) == step) std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(pause)));
  }
}
} // namespace detail

// Every checkpoint directory in `out` (complete or not, `.tmp` and `.replaced` ones included),
// by step. A fresh run refuses a folder where this is not empty (train/run_guard.hpp).
inline std::vector<std::filesystem::path> checkpoint_entries(const std::filesystem::path& out) {
  std::vector<std::pair<long, std::filesystem::path>> all;
  if (!std::filesystem::is_directory(out)) return {};
  for (const auto& e : std::filesystem::directory_iterator(out)) {
    const std::string name = e.path().filename().string();
    std::optional<long> step;
    for (const std::string_view suffix : {"", ".tmp", ".replaced"})
      if (!step) step = detail::checkpoint_step(name, suffix);
    if (step && e.is_directory()) all.emplace_back(*step, e.path());
  }
  std::sort(all.begin(), all.end());
  std::vector<std::filesystem::path> out_paths;
  for (auto& [step, p] : all) out_paths.push_back(std::move(p));
  return out_paths;
}

// The newest complete checkpoint in `out` (nullopt if none). Removes stale .tmp directories and
// puts back a `.replaced` checkpoint whose replacement was never published.
inline std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& out) {
  std::optional<std::filesystem::path> best;
  long best_step = -1;
  if (!std::filesystem::exists(out)) return best;
  for (const auto& e : std::filesystem::directory_iterator(out)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory()) continue;
    if (detail::checkpoint_step(name, ".tmp")) {
      std::error_code ec;
      std::filesystem::remove_all(e.path(), ec);
    } else if (const auto step = detail::checkpoint_step(name, ".replaced")) {
      std::error_code ec;
      if (std::filesystem::exists(checkpoint_dir(out, *step) / "trainer_state.json")) std::filesystem::remove_all(e.path(), ec);
      else {
        std::filesystem::remove_all(checkpoint_dir(out, *step), ec);
        std::filesystem::rename(e.path(), checkpoint_dir(out, *step));
      }
    }
  }
  for (const auto& e : std::filesystem::directory_iterator(out)) {
    const auto step = detail::checkpoint_step(e.path().filename().string());
    if (!step || !e.is_directory() || !std::filesystem::exists(e.path() / "trainer_state.json")) continue;
    if (*step > best_step) best_step = *step, best = e.path();
  }
  return best;
}

// Writes a checkpoint atomically as described at the top. `write_contents` receives the directory.
// keep_last > 0: afterwards, complete checkpoints beyond the newest keep_last are removed (never the
// one just written). The test hook detail::test_pause runs between the contents and the state.
template <class WriteContents>
std::filesystem::path write_checkpoint(const std::filesystem::path& out, long step, const checkpoint_state& state,
                                       WriteContents&& write_contents, int keep_last = 0) {
  const auto final_dir = checkpoint_dir(out, step);
  const auto tmp = std::filesystem::path(final_dir.string() + ".tmp");
  std::filesystem::remove_all(tmp);
  std::filesystem::create_directories(tmp);
  write_contents(tmp);
  detail::test_pause(step);
  io::write_atomically(tmp / "trainer_state.json", std::string_view(state.to_json().dump(2) + "\n"));
  detail::publish_directory(tmp, final_dir);
  if (keep_last > 0) {  // drop the oldest complete checkpoints beyond the limit
    std::vector<std::filesystem::path> others;
    for (auto& p : checkpoint_entries(out))
      if (p != final_dir && detail::checkpoint_step(p.filename().string()) && std::filesystem::exists(p / "trainer_state.json"))
        others.push_back(std::move(p));
    for (std::size_t i = 0; i + std::size_t(keep_last) < others.size() + 1; ++i) std::filesystem::remove_all(others[i]);
  }
  return final_dir;
}

// Replaces the trainer state of the complete checkpoint `dir` (one file, atomically). For a state
// that differs from the saved one only in what no weight depends on: the position after skipped
// steps, the metrics window, `finished` — so a checkpoint's weights are never written twice.
inline void update_checkpoint_state(const std::filesystem::path& dir, const checkpoint_state& state) {
  if (!std::filesystem::exists(dir / "trainer_state.json")) throw io_error(dir.string(), "is not a complete checkpoint");
  io::write_atomically(dir / "trainer_state.json", std::string_view(state.to_json().dump(2) + "\n"));
}

inline checkpoint_state read_checkpoint_state(const std::filesystem::path& dir) {
  const auto file = dir / "trainer_state.json";
  return checkpoint_state::from_json(read_json_file(file), file.string());  // depth, duplicates: core/json.hpp
}

} // namespace prefopt::train
