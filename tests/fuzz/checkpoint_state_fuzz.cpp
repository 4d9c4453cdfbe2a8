// Fuzz target: a checkpoint's trainer_state.json, through train::read_checkpoint_state as a resumed
// run reads it. An accepted state must survive its own round trip: to_json() read back by
// checkpoint_state::from_json gives the same JSON.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>

#include "fuzz_support.hpp"
#include "prefopt/train/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace prefopt;
  const auto dir = fuzz::scratch_dir() / "checkpoint-1";
  std::filesystem::create_directories(dir);
  fuzz::write_scratch("checkpoint-1/trainer_state.json", fuzz::as_text(data, size));
  std::optional<train::checkpoint_state> s;
  if (!fuzz::reject_cleanly([&] { s = train::read_checkpoint_state(dir); })) return 0;
  const auto written = s->to_json();
  const auto again = train::checkpoint_state::from_json(written, "round trip");  // must not throw
  fuzz::check(again.to_json() == written, "to_json/from_json round trip");
  return 0;
}
