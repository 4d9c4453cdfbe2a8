// Tests of include/prefopt/io/safetensors_index.hpp.
// Expected values: tests/data/safetensors/sharded/ (written by huggingface_hub.save_torch_state_dict,
// four shards) and sharded.json (torch's values), made by tools/reference/safetensors_make_reference.py.
// Broken checkpoints are built from copies of it in a temporary directory.
#include <doctest/doctest.h>

#include <bit>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "io_test_support.hpp"
#include "prefopt/io/safetensors_index.hpp"

using namespace prefopt::io;
using prefopt::test::data_path;
using prefopt::test::temp_dir;

namespace {

template <class F>
std::string format_error_of(F&& f) {
  try {
    f();
  } catch (const prefopt::format_error& e) {
    return e.what();
  }
  return {};
}

std::filesystem::path copy_checkpoint(const temp_dir& dir) {
  const auto to = dir / "ckpt";
  std::filesystem::copy(data_path("safetensors/sharded"), to);
  return to;
}

void write_text(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p) << text;
}

} // namespace

TEST_CASE("reads a sharded checkpoint written by huggingface_hub") {
  const auto expected = prefopt::test::load_json("safetensors/sharded.json");
  const safetensors_index index(data_path("safetensors/sharded/model.safetensors.index.json"));
  CHECK(index.size() == expected.size());
  CHECK(index.shard_names().size() == 4);
  CHECK(index.metadata()["total_size"].get<int>() == 544);
  std::vector<std::string> names;
  for (const auto& [name, e] : expected.items()) names.push_back(name);
  CHECK(index.names() == names); // both in byte order
  for (const auto& item : expected.items()) {
    const std::string name = item.key(); // not a structured binding: clang 14 cannot capture those
    const auto& e = item.value();
    CAPTURE(name);
    CHECK(index.contains(name));
    CHECK(index.shard_of(name) == e["shard"].get<std::string>());
    const auto shape = e["shape"].get<std::vector<std::size_t>>();
    CHECK(index.require(name, shape).shape == shape);
    CHECK(dtype_name(index.info(name).type) == e["dtype"].get<std::string>());
    const auto values = index.read_f32(name);
    std::vector<float> into(values.size());
    index.read_into(name, into);
    REQUIRE(values.size() == e["f32_bits"].size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      CHECK(std::bit_cast<std::uint32_t>(values[i]) == e["f32_bits"][i].get<std::uint32_t>());
      CHECK(into[i] == values[i]);
    }
    CHECK(index.bytes(name).size() == index.info(name).byte_size());
  }
  index.open_all();
  CHECK(index.shard(index.shard_of("lm_head.weight")).contains("lm_head.weight"));
}

TEST_CASE("lookups that fail name the index file and the tensor") {
  const auto path = data_path("safetensors/sharded/model.safetensors.index.json");
  const safetensors_index index(path);
  auto e = format_error_of([&] { (void)index.read_f32("model.layers.9.mlp.up_proj.weight"); });
  CHECK(e.find(path.string()) != std::string::npos);
  CHECK(e.find("tensor 'model.layers.9.mlp.up_proj.weight'") != std::string::npos);
  e = format_error_of([&] { (void)index.require("model.layers.9.mlp.up_proj.weight", {8, 4}); });
  CHECK(e.find(path.string()) != std::string::npos);
  CHECK(e.find("missing") != std::string::npos);
  CHECK(e.find("[8, 4]") != std::string::npos);
  // A wrong shape is reported by the shard that holds the tensor.
  e = format_error_of([&] { (void)index.require("model.norm.weight", {5}); });
  CHECK(e.find(index.shard_of("model.norm.weight")) != std::string::npos);
  CHECK(e.find("tensor 'model.norm.weight'") != std::string::npos);
  CHECK(e.find("expected shape [5], the file has [4]") != std::string::npos);
  CHECK(format_error_of([&] { (void)index.shard("model-00009-of-00009.safetensors"); }).find(path.string()) !=
        std::string::npos);
}

TEST_CASE("shards open lazily: a missing shard fails only for its tensors, naming index and shard") {
  temp_dir dir;
  const auto ckpt = copy_checkpoint(dir);
  const safetensors_index probe(ckpt / "model.safetensors.index.json");
  const std::string gone = probe.shard_of("lm_head.weight");
  std::filesystem::remove(ckpt / gone);

  const safetensors_index index(ckpt / "model.safetensors.index.json"); // opens no shard
  CHECK(index.read_f32("model.norm.weight") == std::vector<float>(4, 0.5f));
  const auto e = format_error_of([&] { (void)index.read_f32("lm_head.weight"); });
  CHECK(e.find((ckpt / "model.safetensors.index.json").string()) != std::string::npos);
  CHECK(e.find("shard '" + gone + "'") != std::string::npos);
  CHECK(e.find("does not exist") != std::string::npos);
  CHECK(format_error_of([&] { index.open_all(); }).find(gone) != std::string::npos);
}

TEST_CASE("a shard that lacks a tensor the index places in it is reported when the shard opens") {
  temp_dir dir;
  const auto ckpt = copy_checkpoint(dir);
  auto json = prefopt::test::load_json("safetensors/sharded/model.safetensors.index.json");
  const std::string shard = json["weight_map"]["model.norm.weight"];
  json["weight_map"]["model.ghost.weight"] = shard;
  write_text(ckpt / "model.safetensors.index.json", json.dump());
  const safetensors_index index(ckpt / "model.safetensors.index.json");
  CHECK(index.contains("model.ghost.weight"));
  const auto e = format_error_of([&] { (void)index.read_f32("model.norm.weight"); });
  CHECK(e.find("model.safetensors.index.json") != std::string::npos);
  CHECK(e.find("tensor 'model.ghost.weight'") != std::string::npos);
  CHECK(e.find("shard '" + shard + "'") != std::string::npos);
  // Tensors in other shards are unaffected.
  CHECK(index.read_f32("lm_head.weight").size() == 40);
}

TEST_CASE("a malformed shard is reported with the shard's name") {
  temp_dir dir;
  const auto ckpt = copy_checkpoint(dir);
  const safetensors_index probe(ckpt / "model.safetensors.index.json");
  const std::string shard = probe.shard_of("model.norm.weight");
  std::filesystem::resize_file(ckpt / shard, 20);
  const safetensors_index index(ckpt / "model.safetensors.index.json");
  CHECK(format_error_of([&] { (void)index.info("model.norm.weight"); }).find(shard) != std::string::npos);
}

TEST_CASE("malformed index files are format_error naming the index (and the tensor where there is one)") {
  temp_dir dir;
  const auto path = dir / "model.safetensors.index.json";
  auto error_for = [&](const std::string& text) {
    write_text(path, text);
    return format_error_of([&] { const safetensors_index index(path); });
  };
  struct row {
    std::string text, expect;
  };
  const std::vector<row> rows{
      {"{", "not valid JSON"},
      {"[]", "not a JSON object"},
      {R"({"metadata":{}})", "no 'weight_map'"},
      {R"({"weight_map":[]})", "'weight_map' is not an object"},
      {R"({"weight_map":{"a":3}})", "tensor 'a'"},
      {R"({"weight_map":{"a":"s.safetensors","a":"t.safetensors"}})", "tensor 'a': appears more than once"},
      {R"({"weight_map":{"a":"../s.safetensors"}})", "tensor 'a'"},
      {R"({"weight_map":{"a":"/abs/s.safetensors"}})", "not a file name relative"},
      {R"({"weight_map":{"a":""}})", "tensor 'a'"},
      {R"({"weight_map":{},"weight_map":{}})", "key 'weight_map' appears more than once"},
      {std::string("{\"weight_map\":{}}\0x", 19), "NUL"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.text);
    const auto e = error_for(r.text);
    CHECK(e.find(path.string()) != std::string::npos);
    CHECK(e.find(r.expect) != std::string::npos);
  }
  CHECK_THROWS_AS(safetensors_index(dir / "absent.json"), prefopt::io_error);
  write_text(path, R"({"weight_map":{}})");
  CHECK(safetensors_index(path).size() == 0);
}
