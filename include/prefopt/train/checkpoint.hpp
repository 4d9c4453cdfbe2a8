// prefopt/train/checkpoint.hpp — checkpoints that a killed process can never leave half-written.
//
// A checkpoint is a directory `<output>/checkpoint-<step>` holding
//   the model:        model.safetensors + config.json, or a PEFT adapter for LoRA training
//   optimizer.safetensors   the optimizer's state buffers (exp_avg, exp_avg_sq, ...)
//   reference/        the reference model of a synced (TR-DPO) run
//   trainer_state.json      step, epoch and position in the epoch, optimizer steps, loss state
//                           (dual-ascent multipliers), early-stopping state — written last
// It is written into `checkpoint-<step>.tmp`, every file atomically and fsynced, and the
// directory is renamed into place at the end: a crash at any moment leaves either the previous
// checkpoints only, or the new one complete. Resuming picks the newest complete checkpoint and
// removes stale `.tmp` directories.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "prefopt/core/error.hpp"
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
  nlohmann::json extra = nlohmann::json::object();

  nlohmann::json to_json() const {
    return {{"global_step", global_step}, {"optimizer_steps", optimizer_steps}, {"epoch", epoch}, {"next_batch", next_batch},
            {"loss_state", loss_state},    {"best_metric", best_metric ? nlohmann::json(*best_metric) : nlohmann::json()},
            {"evals_without_improvement", evals_without_improvement}, {"extra", extra}, {"format", "prefopt-checkpoint-1"}};
  }
  static checkpoint_state from_json(const nlohmann::json& j, const std::string& where) {
    checkpoint_state s;
    try {
      s.global_step = j.at("global_step").get<long>();
      s.optimizer_steps = j.at("optimizer_steps").get<long>();
      s.epoch = j.at("epoch").get<int>();
      s.next_batch = j.at("next_batch").get<std::size_t>();
      s.loss_state = j.at("loss_state").get<std::vector<double>>();
      if (!j.at("best_metric").is_null()) s.best_metric = j.at("best_metric").get<double>();
      s.evals_without_improvement = j.at("evals_without_improvement").get<int>();
      s.extra = j.value("extra", nlohmann::json::object());
    } catch (const nlohmann::json::exception& e) {
      throw format_error(where, std::string("not a prefopt trainer state: ") + e.what());
    }
    return s;
  }
};

// Saves a model's trainable state: a LoRA model its adapter, any other transformer its weights.
template <class M> void save_model_state(M& m, const std::filesystem::path& dir, io::dtype stored = io::dtype::f32) {
  if constexpr (requires { m.save_adapter(dir); }) m.save_adapter(dir);
  else models::save_pretrained(m, dir, stored);
}
template <class M> void load_model_state(M& m, const std::filesystem::path& dir) {
  if constexpr (requires { m.load_adapter(dir); }) m.load_adapter(dir);
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

// The newest complete checkpoint in `out` (nullopt if none); removes stale .tmp directories.
inline std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& out) {
  std::optional<std::filesystem::path> best;
  long best_step = -1;
  if (!std::filesystem::exists(out)) return best;
  for (const auto& e : std::filesystem::directory_iterator(out)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || name.rfind("checkpoint-", 0) != 0) continue;
    if (name.size() > 4 && name.ends_with(".tmp")) {
      std::error_code ec;
      std::filesystem::remove_all(e.path(), ec);
      continue;
    }
    char* end = nullptr;
    const long step = std::strtol(name.c_str() + 11, &end, 10);
    if (*end != '\0' || !std::filesystem::exists(e.path() / "trainer_state.json")) continue;
    if (step > best_step) best_step = step, best = e.path();
  }
  return best;
}

// Writes a checkpoint atomically as described at the top. `write_model` receives the directory.
// PREFOPT_TEST_CHECKPOINT_PAUSE (seconds) pauses between the model and the state, at every step or
// only at PREFOPT_TEST_CHECKPOINT_PAUSE_STEP: tests kill the process there to check that a
// half-written checkpoint is never taken for a complete one.
template <class WriteContents>
std::filesystem::path write_checkpoint(const std::filesystem::path& out, long step, const checkpoint_state& state,
                                       WriteContents&& write_contents, int keep_last = 0) {
  const auto final_dir = checkpoint_dir(out, step);
  const auto tmp = std::filesystem::path(final_dir.string() + ".tmp");
  std::filesystem::remove_all(tmp);
  std::filesystem::create_directories(tmp);
  write_contents(tmp);
  if (const char* pause = std::getenv("PREFOPT_TEST_CHECKPOINT_PAUSE")) {
    const char* at = std::getenv("PREFOPT_TEST_CHECKPOINT_PAUSE_STEP");
    if (!at || std::atol(at) == step) std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(pause)));
  }
  io::write_atomically(tmp / "trainer_state.json", std::string_view(state.to_json().dump(2) + "\n"));
  std::filesystem::remove_all(final_dir);
  std::filesystem::rename(tmp, final_dir);
  io::sync_directory(out);
  if (keep_last > 0) {  // drop the oldest complete checkpoints beyond the limit
    std::vector<std::pair<long, std::filesystem::path>> all;
    for (const auto& e : std::filesystem::directory_iterator(out)) {
      const std::string name = e.path().filename().string();
      if (e.is_directory() && name.rfind("checkpoint-", 0) == 0 && !name.ends_with(".tmp"))
        all.emplace_back(std::strtol(name.c_str() + 11, nullptr, 10), e.path());
    }
    std::sort(all.begin(), all.end());
    for (std::size_t i = 0; i + std::size_t(keep_last) < all.size(); ++i) std::filesystem::remove_all(all[i].second);
  }
  return final_dir;
}

inline checkpoint_state read_checkpoint_state(const std::filesystem::path& dir) {
  const auto file = dir / "trainer_state.json";
  std::ifstream in(file);
  if (!in) throw io_error(file.string(), "cannot open");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw format_error(file.string(), std::string("not valid JSON: ") + e.what());
  }
  return checkpoint_state::from_json(j, file.string());
}

} // namespace prefopt::train
