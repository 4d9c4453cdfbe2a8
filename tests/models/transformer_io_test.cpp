// Loading and saving transformers: Hugging Face names with and without GPT-2's "transformer."
// prefix, sharded checkpoints, round trips, and every malformed input named in its error.
// The checkpoints are tests/data/models/{gpt2,llama} (tools/reference/models_make_reference.py).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "prefopt/backends/eigen.hpp"
#include "prefopt/io/safetensors.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "support/data.hpp"
#include "support/files.hpp"

using namespace prefopt;
using B = backends::eigen;
namespace fs = std::filesystem;

namespace {
// Copies a checkpoint's tensors into dir/model.safetensors, renamed or dropped or reshaped by `edit`.
template <class Edit> void rewrite(const fs::path& from, const fs::path& dir, Edit edit) {
  const io::safetensors_file f(from / "model.safetensors");
  io::safetensors_writer w;
  std::vector<std::vector<float>> keep;
  keep.reserve(f.size());
  for (const auto& name : f.names()) {
    std::string n = name;
    std::vector<std::size_t> shape = f.info(name).shape;
    keep.push_back(f.read_f32(name));
    if (!edit(n, shape, keep.back())) continue;
    w.add(n, shape, std::span<const float>(keep.back()));
  }
  w.write(dir / "model.safetensors");
  fs::copy_file(from / "config.json", dir / "config.json", fs::copy_options::overwrite_existing);
}
std::vector<float> params(models::gpt2<B>& m) { return {m.base_parameters().begin(), m.base_parameters().end()}; }
} // namespace

TEST_CASE("GPT-2 checkpoints load with or without the transformer. prefix") {
  const fs::path src = test::data_path("models/gpt2"), dir = test::scratch_dir("noprefix");
  rewrite(src, dir, [](std::string& n, auto&, auto&) {
    if (n.rfind("transformer.", 0) == 0) n = n.substr(12);
    return true;
  });
  auto a = models::from_pretrained<models::gpt2<B>>(B{}, src);
  auto b = models::from_pretrained<models::gpt2<B>>(B{}, dir);
  CHECK(params(a) == params(b));
}

TEST_CASE("old buffers (attn.bias, masked_bias) and a tied lm_head.weight are ignored") {
  const fs::path src = test::data_path("models/gpt2"), dir = test::scratch_dir("extras");
  std::vector<float> mask(4 * 64 * 64, 1.0f);
  rewrite(src, dir, [](std::string&, auto&, auto&) { return true; });
  {
    const io::safetensors_file f(dir / "model.safetensors");
    io::safetensors_writer w;
    std::vector<std::vector<float>> keep;
    for (const auto& n : f.names()) {
      keep.push_back(f.read_f32(n));
      w.add(n, f.info(n).shape, std::span<const float>(keep.back()));
    }
    w.add("transformer.h.0.attn.bias", {1, 1, 64, 64}, std::span<const float>(mask).first(64 * 64));
    keep.push_back(f.read_f32("transformer.wte.weight"));
    w.add("lm_head.weight", f.info("transformer.wte.weight").shape, std::span<const float>(keep.back()));
    w.write(dir / "model2.safetensors");
  }
  fs::rename(dir / "model2.safetensors", dir / "model.safetensors");
  auto a = models::from_pretrained<models::gpt2<B>>(B{}, src);
  auto b = models::from_pretrained<models::gpt2<B>>(B{}, dir);
  CHECK(params(a) == params(b));
}

TEST_CASE("a missing tensor or a wrong shape is named with its file") {
  const fs::path src = test::data_path("models/gpt2");
  const fs::path missing = test::scratch_dir("missing"), shape = test::scratch_dir("shape");
  rewrite(src, missing, [](std::string& n, auto&, auto&) { return n != "transformer.h.1.mlp.c_fc.bias"; });
  CHECK_THROWS_WITH_AS(models::from_pretrained<models::gpt2<B>>(B{}, missing),
                       doctest::Contains("transformer.h.1.mlp.c_fc.bias"), format_error);
  rewrite(src, shape, [](std::string& n, std::vector<std::size_t>& s, std::vector<float>& v) {
    if (n == "transformer.ln_f.weight") {
      s = {s[0] - 1};
      v.pop_back();
    }
    return true;
  });
  CHECK_THROWS_WITH_AS(models::from_pretrained<models::gpt2<B>>(B{}, shape), doctest::Contains("expected shape [32]"),
                       format_error);
  CHECK_THROWS_WITH_AS(models::from_pretrained<models::gpt2<B>>(B{}, test::scratch_dir("empty")), doctest::Contains("config.json"),
                       io_error);
}

TEST_CASE("config.json errors name the field") {
  const fs::path dir = test::scratch_dir("config");
  auto write = [&](const std::string& text) { std::ofstream(dir / "config.json") << text; };
  write(R"({"model_type": "bert"})");
  CHECK_THROWS_WITH_AS(models::transformer_config::from_file(dir / "config.json"), doctest::Contains("'model_type'"), config_error);
  write(R"({"model_type": "llama", "hidden_size": "big"})");
  CHECK_THROWS_WITH_AS(models::transformer_config::from_file(dir / "config.json"), doctest::Contains("'hidden_size'"), config_error);
  write(R"({"model_type": "llama", "hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 3})");
  CHECK_THROWS_WITH_AS(models::transformer_config::from_file(dir / "config.json"), doctest::Contains("num_key_value_heads"),
                       config_error);
  write(R"({"model_type": "gpt2", "activation_function": "relu"})");
  CHECK_THROWS_WITH_AS(models::transformer_config::from_file(dir / "config.json"), doctest::Contains("activation_function"),
                       config_error);
  write("{ not json");
  CHECK_THROWS_AS(models::transformer_config::from_file(dir / "config.json"), format_error);
  write(R"({"model_type": "gpt2", "vocab_size": 1e400})");  // out_of_range in nlohmann-json (found by fuzzing)
  CHECK_THROWS_WITH_AS(models::transformer_config::from_file(dir / "config.json"), doctest::Contains("out of the range of a double"),
                       format_error);
  write(R"({"model_type": "llama", "rope_parameters": {"rope_type": "yarn", "rope_theta": 10000}})");
  CHECK_THROWS_WITH_AS(models::transformer_config::from_file(dir / "config.json"), doctest::Contains("yarn"), config_error);
}

TEST_CASE("a GPT-2 model of the wrong architecture type is refused") {
  CHECK_THROWS_WITH_AS(models::from_pretrained<models::llama<B>>(B{}, test::data_path("models/gpt2")),
                       doctest::Contains("does not fit"), config_error);
}

TEST_CASE("save_pretrained round-trips, without the tied head, readable by from_pretrained") {
  auto a = models::from_pretrained<models::llama<B>>(B{}, test::data_path("models/qwen2"));
  const fs::path dir = test::scratch_dir("saved");
  models::save_pretrained(a, dir);
  const io::safetensors_file f(dir / "model.safetensors");
  CHECK_FALSE(f.contains("lm_head.weight"));  // Qwen2 test model ties its head
  CHECK(f.metadata().at("format") == "pt");
  auto b = models::from_pretrained<models::llama<B>>(B{}, dir);
  CHECK(std::vector<float>(a.base_parameters().begin(), a.base_parameters().end()) ==
        std::vector<float>(b.base_parameters().begin(), b.base_parameters().end()));
  CHECK(b.config().rope_theta == 1000000.0);
  const fs::path bf16 = test::scratch_dir("bf16");
  models::save_pretrained(a, bf16, io::dtype::bf16);
  CHECK(io::safetensors_file(bf16 / "model.safetensors").info("model.norm.weight").type ==
        io::dtype::bf16);
}

TEST_CASE("sharded checkpoints (model.safetensors.index.json) load") {
  const fs::path src = test::data_path("models/llama"), dir = test::scratch_dir("sharded");
  const io::safetensors_file f(src / "model.safetensors");
  io::safetensors_writer w1, w2;
  nlohmann::json map = nlohmann::json::object();
  std::vector<std::vector<float>> keep;
  keep.reserve(f.size());
  int i = 0;
  for (const auto& n : f.names()) {
    keep.push_back(f.read_f32(n));
    auto& w = (i++ % 2) ? w1 : w2;
    w.add(n, f.info(n).shape, std::span<const float>(keep.back()));
    map[n] = (i % 2) ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
  }
  w1.write(dir / "model-00001-of-00002.safetensors");
  w2.write(dir / "model-00002-of-00002.safetensors");
  std::ofstream(dir / "model.safetensors.index.json") << nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", map}}.dump();
  fs::copy_file(src / "config.json", dir / "config.json");
  auto a = models::from_pretrained<models::llama<B>>(B{}, src);
  auto b = models::from_pretrained<models::llama<B>>(B{}, dir);
  CHECK(std::vector<float>(a.base_parameters().begin(), a.base_parameters().end()) ==
        std::vector<float>(b.base_parameters().begin(), b.base_parameters().end()));
}
