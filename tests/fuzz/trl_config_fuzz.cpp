// Fuzz target: a YAML config of `prefopt train`, read as the program reads it (io::read_yaml into a
// JSON tree, then train::trl::apply_trl_config for TRL's flat names or reflect::from_json for
// prefopt's sections, then train::validate). Checked on an accepted config: the printed config
// (--print-config) reads back to the same config, and a TRL config read twice gives the same config.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz_support.hpp"
#include "prefopt/core/reflect.hpp"
#include "prefopt/io/yaml.hpp"
#include "prefopt/train/config.hpp"
#include "prefopt/train/trl_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace prefopt;
  io::yaml_document doc;
  // Small limits keep each run fast; the checks are the same as with the defaults.
  if (!fuzz::reject_cleanly([&] { doc = io::read_yaml(std::string(fuzz::as_text(data, size)), "fuzz.yaml", {64, 20000}); }))
    return 0;
  train::run_config cfg = train::default_run_config();
  const bool trl = train::trl::is_trl_config(doc.value);
  if (!fuzz::reject_cleanly([&] {
        if (trl) train::trl::apply_trl_config(doc.value, cfg, "fuzz.yaml", &doc.lines);
        else reflect::from_json(doc.value, cfg);
      }))
    return 0;
  const auto printed = reflect::to_json(cfg);
  train::run_config again = train::default_run_config();
  reflect::from_json(printed, again);  // a config_error here is a finding
  fuzz::check(reflect::to_json(again) == printed, "print-config reads back to the same config");
  if (trl) {
    train::run_config twice = train::default_run_config();
    train::trl::apply_trl_config(doc.value, twice, "fuzz.yaml", &doc.lines);  // accepted once: accepted again
    fuzz::check(reflect::to_json(twice) == printed, "a TRL config reads the same twice");
  }
  fuzz::reject_cleanly([&] { train::validate(cfg); });
  return 0;
}
