// Fuzz target: run.json, the configuration of `prefopt train`, read as the program reads it
// (train::default_run_config(), then reflect::from_json, train::validate, and the loss it names
// built as losses::any_loss). Checked on an accepted config: printing it (--print-config) and
// reading the print back gives the same config, and the loss's hyperparameter checks either pass
// or reject cleanly.
#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "fuzz_support.hpp"
#include "prefopt/core/reflect.hpp"
#include "prefopt/train/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace prefopt;
  // The program turns a JSON syntax error into a config_error itself (tools/prefopt/session.hpp).
  const auto j = nlohmann::json::parse(fuzz::as_text(data, size), nullptr, false);
  if (j.is_discarded()) return 0;
  train::run_config cfg = train::default_run_config();
  if (!fuzz::reject_cleanly([&] { reflect::from_json(j, cfg); })) return 0;

  const auto printed = reflect::to_json(cfg);
  train::run_config again = train::default_run_config();
  reflect::from_json(printed, again);  // the printed config must read back (a config_error here is a finding)
  fuzz::check(reflect::to_json(again) == printed, "print-config reads back to the same config");

  if (!fuzz::reject_cleanly([&] { train::validate(cfg); })) return 0;
  fuzz::reject_cleanly([&] {
    const losses::any_loss loss(cfg.loss);
    loss.validate();
    (void)loss.required_columns();
  });
  return 0;
}
