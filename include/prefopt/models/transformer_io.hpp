// prefopt/models/transformer_io.hpp — loading and saving transformers in Hugging Face's layout.
//
// A model directory holds config.json and model.safetensors, or a sharded checkpoint
// (model.safetensors.index.json + shards). Tensor names are Hugging Face's; GPT-2 checkpoints
// with or without the "transformer." prefix load. Buffers Hugging Face keeps in old checkpoints
// (attn.bias, attn.masked_bias, rotary_emb.inv_freq) and a tied lm_head.weight are ignored.
// Saving writes config.json and model.safetensors (atomically, F32 or BF16), without the tied head,
// as save_pretrained does.
#pragma once

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/io/atomic_file.hpp"
#include "prefopt/io/safetensors.hpp"
#include "prefopt/models/memory_estimate.hpp"
#include "prefopt/models/transformer.hpp"

namespace prefopt::models {

// The tensors of a checkpoint directory: one safetensors file or a sharded index.
class checkpoint_reader {
public:
  explicit checkpoint_reader(const std::filesystem::path& dir) {
    const auto single = dir / "model.safetensors", index = dir / "model.safetensors.index.json";
    if (std::filesystem::exists(single)) file_.emplace(single);
    else if (std::filesystem::exists(index)) index_.emplace(index);
    else
      throw io_error(dir.string(), "holds neither model.safetensors nor model.safetensors.index.json");
  }
  bool contains(std::string_view name) const { return file_ ? file_->contains(name) : index_->contains(name); }
  void require(std::string_view name, const std::vector<std::size_t>& shape) const {
    if (file_) file_->require(name, shape);
    else index_->require(name, shape);
  }
  void read_into(std::string_view name, std::span<float> out) const {
    if (file_) file_->read_into(name, out);
    else index_->read_into(name, out);
  }

private:
  std::optional<io::safetensors_file> file_;
  std::optional<io::safetensors_index> index_;
};

// Loads every weight of `m` from `dir` (config already applied). format_error names the file and
// tensor of anything missing or of the wrong shape.
template <class Model> void load_weights(Model& m, const std::filesystem::path& dir) {
  const checkpoint_reader ck(dir);
  const bool gpt2 = m.config().arch == architecture::gpt2;
  const bool strip = gpt2 && !ck.contains("transformer.wte.weight") && ck.contains("wte.weight");
  std::vector<float> host;
  for (const auto& s : m.base_slices()) {
    const std::string name = strip ? s.name.substr(std::string("transformer.").size()) : s.name;
    ck.require(name, s.shape);
    host.resize(s.size());
    ck.read_into(name, std::span<float>(host));
    m.backend().upload(std::span<const float>(host), m.base_parameters().subspan(s.offset, s.size()));
  }
}

// config.json + weights → a model. `Model` is gpt2<B> or llama<B>.
// The parameters' memory is checked against the machine's before they are allocated
// (memory_estimate.hpp): a config.json whose sizes no machine holds is a config_error naming it.
template <class Model> Model from_pretrained(typename Model::backend_type backend, const std::filesystem::path& dir) {
  const auto config_file = dir / "config.json";
  auto cfg = transformer_config::from_file(config_file);
  check_memory(estimate_memory(cfg, run_shape{.rows = 0, .row_length = 0, .training = false}), 0.0, config_file.string(),
               "this model does not fit in memory");
  Model m(std::move(backend), std::move(cfg));
  load_weights(m, dir);
  return m;
}

// Writes config.json and model.safetensors to `dir` (created if needed), each atomically.
template <class Model>
void save_pretrained(Model& m, const std::filesystem::path& dir, io::dtype stored = io::dtype::f32) {
  std::filesystem::create_directories(dir);
  std::vector<std::vector<float>> host;
  host.reserve(m.base_slices().size());
  io::safetensors_writer w;
  for (const auto& s : m.base_slices()) {
    host.emplace_back(s.size());
    m.backend().download(m.base_parameters().subspan(s.offset, s.size()), std::span<float>(host.back()));
    w.add(s.name, s.shape, std::span<const float>(host.back()), stored);
  }
  const std::string config = m.config().to_json().dump(2) + "\n";
  io::write_atomically(dir / "config.json", [&](io::atomic_output& out) { out.write(std::string_view(config)); });
  w.write(dir / "model.safetensors");
}

} // namespace prefopt::models
