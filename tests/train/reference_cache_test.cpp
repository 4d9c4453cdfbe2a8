// The reference cache key covers every file a model is loaded from: a single model.safetensors, or
// a sharded index and each of its shards, and the adapter's files — a weight changed in place
// never reuses a stale cache.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "prefopt/core/error.hpp"
#include "prefopt/train/reference_cache.hpp"
#include "support/files.hpp"

using namespace prefopt;
namespace fs = std::filesystem;

namespace {
void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }
} // namespace

TEST_CASE("model_fingerprint: every shard of a sharded model is part of the key") {
  const auto dir = test::scratch_dir("sharded");
  write(dir / "config.json", "{\"model_type\": \"gpt2\"}");
  write(dir / "model.safetensors.index.json",
        R"({"metadata": {"total_size": 8}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})");
  write(dir / "model-00001-of-00002.safetensors", "shard one bytes");
  write(dir / "model-00002-of-00002.safetensors", "shard two bytes");
  const auto files = train::model_weight_files(dir);
  CHECK(files.size() == 4);
  const std::string before = train::model_fingerprint(dir);
  CHECK(train::model_fingerprint(dir) == before);
  write(dir / "model-00002-of-00002.safetensors", "shard two BYTES");  // same size, changed in place
  const std::string after = train::model_fingerprint(dir);
  CHECK(after != before);
  write(dir / "model-00001-of-00002.safetensors", "shard one BYTES");
  CHECK(train::model_fingerprint(dir) != after);
  fs::remove(dir / "model-00002-of-00002.safetensors");
  CHECK_THROWS_AS((void)train::model_fingerprint(dir), io_error);  // a missing shard names the file
}

TEST_CASE("model_fingerprint: single file, config and adapter") {
  const auto dir = test::scratch_dir("single");
  write(dir / "config.json", "{}");
  write(dir / "model.safetensors", "weights");
  const std::string base = train::model_fingerprint(dir);
  write(dir / "model.safetensors", "weightz");
  CHECK(train::model_fingerprint(dir) != base);
  const std::string changed = train::model_fingerprint(dir);
  write(dir / "config.json", "{ }");
  CHECK(train::model_fingerprint(dir) != changed);

  const auto adapter = test::scratch_dir("adapter");
  write(adapter / "adapter_config.json", "{}");
  write(adapter / "adapter_model.safetensors", "lora");
  const std::string with = train::model_fingerprint(dir, adapter.string());
  CHECK(with != train::model_fingerprint(dir));
  write(adapter / "adapter_model.safetensors", "LoRA");
  CHECK(train::model_fingerprint(dir, adapter.string()) != with);

  const auto empty = test::scratch_dir("empty");
  write(empty / "config.json", "{}");
  CHECK_THROWS_AS((void)train::model_fingerprint(empty), io_error);
}
