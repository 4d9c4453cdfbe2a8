// prefopt/io/safetensors_index.hpp — sharded checkpoints: model.safetensors.index.json + its shards.
//
// The index file, as transformers and huggingface_hub write it:
//   {"metadata": {"total_size": 123456}, "weight_map": {"tensor name": "model-00001-of-00002.safetensors", ...}}
// Shard names are relative to the index file's directory. A shard is opened (mapped and validated)
// the first time a tensor in it is asked for; at that moment every tensor the weight map places in
// that shard must be present in it. Errors name the index file and the tensor or shard at fault;
// errors inside a shard name the shard. Const members are safe to call concurrently.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "prefopt/core/error.hpp"
#include "prefopt/io/detail/json_strict.hpp"
#include "prefopt/io/detail/mapped_file.hpp"
#include "prefopt/io/safetensors_file.hpp"

namespace prefopt::io {

class safetensors_index {
public:
  explicit safetensors_index(std::filesystem::path index_file)
      : path_(std::move(index_file)), name_(path_.string()), lock_(std::make_unique<std::mutex>()) {
    const detail::mapped_file file(path_);
    const auto bytes = file.bytes();
    const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    std::optional<detail::json_duplicate_key> duplicate;
    const nlohmann::json index = detail::parse_json_strict(text, name_, "the index", duplicate);
    if (!index.is_object()) throw format_error(name_, "the index is not a JSON object");
    if (duplicate) {
      if (duplicate->path.size() == 1 && duplicate->path[0] == "weight_map")
        throw format_error(detail::tensor_where(name_, duplicate->key), "appears more than once in 'weight_map'");
      throw format_error(name_, "key '" + duplicate->key + "' appears more than once");
    }
    const auto map = index.find("weight_map");
    if (map == index.end()) throw format_error(name_, "has no 'weight_map'");
    if (!map->is_object()) throw format_error(name_, "'weight_map' is not an object");
    for (const auto& [tensor, shard] : map->items()) {
      if (!shard.is_string())
        throw format_error(detail::tensor_where(name_, tensor), "'weight_map' value is " + json_excerpt(shard) + ", not a file name");
      const std::string& file = shard.get_ref<const std::string&>();
      const std::filesystem::path rel(file);
      bool escapes = file.empty() || rel.is_absolute();
      for (const auto& part : rel) escapes = escapes || part == "..";
      if (escapes)
        throw format_error(detail::tensor_where(name_, tensor),
                           "shard '" + file + "' is not a file name relative to the index's directory");
      weight_map_.emplace(tensor, file);
      shards_[file]; // every shard, not yet opened
    }
    if (const auto m = index.find("metadata"); m != index.end()) metadata_ = *m;
  }

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  // Tensor names in byte order.
  [[nodiscard]] std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [name, shard] : weight_map_) out.push_back(name);
    return out;
  }
  [[nodiscard]] std::size_t size() const noexcept { return weight_map_.size(); }
  // Shard file names as the index spells them, in byte order.
  [[nodiscard]] std::vector<std::string> shard_names() const {
    std::vector<std::string> out;
    for (const auto& [file, opened] : shards_) out.push_back(file);
    return out;
  }
  [[nodiscard]] bool contains(std::string_view name) const { return weight_map_.find(name) != weight_map_.end(); }
  // The index's "metadata" object as written (often {"total_size": N}); null when absent.
  [[nodiscard]] const nlohmann::json& metadata() const noexcept { return metadata_; }

  // The shard file that holds `name`; format_error naming the index and tensor if none does.
  [[nodiscard]] const std::string& shard_of(std::string_view name) const {
    const auto it = weight_map_.find(name);
    if (it == weight_map_.end()) throw format_error(detail::tensor_where(name_, name), "not in the index's 'weight_map'");
    return it->second;
  }

  // The shard `file` (a name from shard_names()), opened and checked on first use.
  const safetensors_file& shard(const std::string& file) const {
    const auto it = shards_.find(file);
    if (it == shards_.end()) throw format_error(name_, "no shard '" + file + "' in the index");
    const std::lock_guard guard(*lock_);
    if (!it->second) it->second = open_shard(file);
    return *it->second;
  }

  // Opens every shard now (otherwise they open on first use).
  void open_all() const {
    for (const auto& [file, opened] : shards_) (void)shard(file);
  }

  [[nodiscard]] const tensor_info& info(std::string_view name) const { return file_of(name).info(name); }
  const tensor_info& require(std::string_view name, const std::vector<std::size_t>& shape) const {
    if (!contains(name))
      throw format_error(detail::tensor_where(name_, name),
                         "missing from the index: the model needs it with shape " + shape_string(shape));
    return file_of(name).require(name, shape);
  }
  [[nodiscard]] std::span<const std::byte> bytes(std::string_view name) const { return file_of(name).bytes(name); }
  [[nodiscard]] std::vector<float> read_f32(std::string_view name) const { return file_of(name).read_f32(name); }
  void read_into(std::string_view name, std::span<float> out) const { file_of(name).read_into(name, out); }

private:
  const safetensors_file& file_of(std::string_view name) const { return shard(shard_of(name)); }

  std::unique_ptr<safetensors_file> open_shard(const std::string& file) const {
    const std::filesystem::path shard_path = path_.parent_path() / file;
    std::error_code ec;
    if (!std::filesystem::exists(shard_path, ec))
      throw format_error(name_, "shard '" + file + "' does not exist (looked for " + shard_path.string() + ")");
    auto opened = std::make_unique<safetensors_file>(shard_path);
    for (const auto& [tensor, where] : weight_map_)
      if (where == file && !opened->contains(tensor))
        throw format_error(detail::tensor_where(name_, tensor), "the index places it in shard '" + file +
                                                                    "', which does not contain it");
    return opened;
  }

  std::filesystem::path path_;
  std::string name_;
  std::map<std::string, std::string, std::less<>> weight_map_;                      // tensor → shard
  mutable std::map<std::string, std::unique_ptr<safetensors_file>, std::less<>> shards_; // shard → opened
  nlohmann::json metadata_;
  std::unique_ptr<std::mutex> lock_;
};

} // namespace prefopt::io
