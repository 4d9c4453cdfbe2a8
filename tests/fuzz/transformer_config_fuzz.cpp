// Fuzz target: a model's config.json, through models::transformer_config::from_file. A config that
// loads must satisfy its own validation rules and, when small enough to lay out (at most 64
// layers), give a parameter layout whose slices tile the flat buffer.
#include <cstddef>
#include <cstdint>
#include <optional>

#include "fuzz_support.hpp"
#include "prefopt/models/transformer_layout.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace prefopt;
  const auto path = fuzz::write_scratch("config.json", fuzz::as_text(data, size));
  std::optional<models::transformer_config> c;
  if (!fuzz::reject_cleanly([&] { c = models::transformer_config::from_file(path); })) return 0;
  fuzz::check(c->vocab_size > 0 && c->hidden > 0 && c->layers > 0 && c->heads > 0 && c->kv_heads > 0 &&
                  c->heads % c->kv_heads == 0 && c->head_dim > 0 && c->intermediate > 0 && c->max_positions > 0 &&
                  c->norm_eps > 0.0,
              "an accepted config passes validate()");
  if (c->layers > 64) return 0;  // a layout that large is a resource question, not a parser one
  const auto layout = models::transformer_layout::make(*c);
  std::size_t offset = 0;
  for (const auto& s : layout.slices) {
    fuzz::check(s.offset == offset, "slices are contiguous");
    offset += s.size();
  }
  fuzz::check(offset == layout.total, "slices tile the buffer");
  return 0;
}
