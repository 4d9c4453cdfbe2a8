// prefopt/io/safetensors_file.hpp — one safetensors file, memory-mapped, read by tensor name.
//
//   prefopt::io::safetensors_file f("model.safetensors");
//   const auto& wte = f.require("wte.weight", {50257, 768}); // format_error if missing or mis-shaped
//   std::vector<float> w = f.read_f32("wte.weight");          // F32, F16, BF16 or F64 → float
//
// The constructor maps the file read-only and validates the whole header (see
// detail/safetensors_header.hpp for the rules); every violation is a prefopt::format_error whose
// message names the file and, where one is involved, the tensor. `bytes()` spans point into the
// mapping and live as long as the safetensors_file. Const members are safe to call concurrently.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/io/detail/convert.hpp"
#include "prefopt/io/detail/mapped_file.hpp"
#include "prefopt/io/detail/safetensors_header.hpp"
#include "prefopt/io/safetensors_dtype.hpp"

namespace prefopt::io {

class safetensors_file {
public:
  // Maps (or reads, with file_access::read) and validates `path`. io_error if the file cannot be
  // opened, format_error if its bytes do not follow the format.
  explicit safetensors_file(std::filesystem::path path, file_access access = file_access::map)
      : path_(std::move(path)), name_(path_.string()), file_(path_, access),
        layout_(detail::parse_safetensors(file_.bytes(), name_)) {}

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  // Tensor names in byte order (as safe_open(...).keys() lists them).
  [[nodiscard]] std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(layout_.tensors.size());
    for (const auto& [name, info] : layout_.tensors) out.push_back(name);
    return out;
  }
  [[nodiscard]] std::size_t size() const noexcept { return layout_.tensors.size(); }
  [[nodiscard]] bool contains(std::string_view name) const { return layout_.tensors.find(name) != layout_.tensors.end(); }
  // The "__metadata__" map (empty when the header has none).
  [[nodiscard]] const std::map<std::string, std::string>& metadata() const noexcept { return layout_.metadata; }
  // Header length N; the data buffer starts at byte 8 + N.
  [[nodiscard]] std::size_t header_size() const noexcept { return layout_.header_size; }
  // Whether the file is memory-mapped (false: mmap was refused and the file was read instead).
  [[nodiscard]] bool is_mapped() const noexcept { return file_.is_mapped(); }

  // dtype, shape and byte range of `name`; format_error naming the file and tensor if absent.
  [[nodiscard]] const tensor_info& info(std::string_view name) const {
    const auto it = layout_.tensors.find(name);
    if (it == layout_.tensors.end()) throw format_error(detail::tensor_where(name_, name), "no such tensor in the file");
    return it->second;
  }

  // The tensor `name` must exist with exactly `shape` (what a model config asks for); returns it.
  const tensor_info& require(std::string_view name, const std::vector<std::size_t>& shape) const {
    const auto it = layout_.tensors.find(name);
    if (it == layout_.tensors.end())
      throw format_error(detail::tensor_where(name_, name),
                         "missing: the model needs it with shape " + shape_string(shape));
    if (it->second.shape != shape)
      throw format_error(detail::tensor_where(name_, name), "expected shape " + shape_string(shape) + ", the file has " +
                                                                shape_string(it->second.shape));
    return it->second;
  }

  // The raw little-endian bytes of `name` (pointing into the mapping).
  [[nodiscard]] std::span<const std::byte> bytes(std::string_view name) const {
    const auto& t = info(name);
    return file_.bytes().subspan(layout_.data_start + t.begin, t.byte_size());
  }

  // The values of `name` as float (F32, F16, BF16 exactly; F64 rounded to nearest). Other dtypes
  // are a format_error naming the tensor.
  [[nodiscard]] std::vector<float> read_f32(std::string_view name) const {
    const auto& t = info(name);
    detail::require_float(t.type, detail::tensor_where(name_, name)); // before allocating
    std::vector<float> out(t.numel());
    detail::convert_to_f32(t.type, bytes(name), out, detail::tensor_where(name_, name));
    return out;
  }

  // As read_f32, into `out`, which must hold exactly numel() floats (shape_error otherwise).
  void read_into(std::string_view name, std::span<float> out) const {
    const auto& t = info(name);
    if (out.size() != t.numel())
      throw shape_error(detail::tensor_where(name_, name), "has " + std::to_string(t.numel()) + " elements (shape " +
                                                               shape_string(t.shape) + "), the destination holds " +
                                                               std::to_string(out.size()));
    detail::convert_to_f32(t.type, bytes(name), out, detail::tensor_where(name_, name));
  }

private:
  std::filesystem::path path_;
  std::string name_;
  detail::mapped_file file_;
  detail::safetensors_layout layout_;
};

} // namespace prefopt::io
