// prefopt/io/safetensors_writer.hpp — writing safetensors files, as safetensors.torch.save_file does.
//
//   prefopt::io::safetensors_writer w;                 // metadata {"format": "pt"}
//   w.add("wte.weight", {vocab, d}, wte);              // floats stored as F32
//   w.add("lm_head.weight", {vocab, d}, head, prefopt::io::dtype::bf16); // rounded to nearest even
//   w.write("out/model.safetensors");                  // atomic: temp file + fsync + rename
//
// Layout, matching upstream (safetensors 0.8 `prepare`): tensors sorted by dtype alignment,
// descending (the order of `dtype`'s enumerators, reversed), then by name in byte order; data
// packed back to back from offset 0; header JSON compact (no spaces), "__metadata__" first when
// there is metadata, each entry {"dtype","shape","data_offsets"} in that key order, strings escaped
// as serde_json does, then padded with spaces to a multiple of 8 so the buffer is 8-byte aligned.
// With the same tensors and metadata {"format": "pt"} the bytes equal save_file's. (Upstream
// keeps metadata in a Rust HashMap, whose order changes from run to run; here keys are sorted.)
//
// The writer keeps spans, not copies: the data must stay alive until write()/serialize().
// Mistakes in what is added (a size that does not match the shape, a repeated name) throw at add().
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/io/atomic_file.hpp"
#include "prefopt/io/detail/convert.hpp"
#include "prefopt/io/detail/utf8.hpp"
#include "prefopt/io/float16.hpp"
#include "prefopt/io/safetensors_dtype.hpp"

namespace prefopt::io {

namespace detail {
// JSON string literal exactly as serde_json writes it: ", \ and the control characters escaped
// (\b \t \n \f \r short, others \u00XX with lower-case hex), everything else (UTF-8, DEL, /) as is.
inline void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\b': out += "\\b"; break;
    case '\t': out += "\\t"; break;
    case '\n': out += "\\n"; break;
    case '\f': out += "\\f"; break;
    case '\r': out += "\\r"; break;
    default:
      if (c < 0x20) {
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 0xf];
      } else {
        out += ch;
      }
    }
  }
  out += '"';
}
} // namespace detail

class safetensors_writer {
public:
  safetensors_writer() { metadata_.emplace("format", "pt"); }

  // Floats, stored as `stored`: F32 (as is), F16 or BF16 (rounded to nearest even), F64 (exact).
  safetensors_writer& add(std::string name, std::vector<std::size_t> shape, std::span<const float> values,
                          dtype stored = dtype::f32) {
    const std::string where = "safetensors_writer: tensor '" + name + "'";
    if (!converts_to_f32(stored))
      throw format_error(where, "floats cannot be stored as " + std::string(dtype_name(stored)) +
                                    " (F32, F16, BF16 and F64 can)");
    const std::size_t n = checked_numel(shape, where);
    if (n != values.size())
      throw shape_error(where, "shape " + shape_string(shape) + " has " + std::to_string(n) + " elements, " +
                                   std::to_string(values.size()) + " values were given");
    const std::size_t bytes = values.size() * (dtype_bits(stored) / 8);
    push({std::move(name), stored, std::move(shape), true, values, {}, bytes}, where);
    return *this;
  }

  // Raw little-endian bytes of any dtype (I64 ids, BOOL masks, data already in F16...).
  safetensors_writer& add_bytes(std::string name, dtype type, std::vector<std::size_t> shape,
                                std::span<const std::byte> data) {
    const std::string where = "safetensors_writer: tensor '" + name + "'";
    const std::size_t n = checked_numel(shape, where);
    const std::size_t bits = dtype_bits(type);
    if (n != 0 && bits > SIZE_MAX / n) throw shape_error(where, "shape " + shape_string(shape) + " overflows");
    const std::string what = "shape " + shape_string(shape) + " of dtype " + std::string(dtype_name(type));
    if ((n * bits) % 8 != 0) throw shape_error(where, what + " does not fill whole bytes");
    if ((n * bits) / 8 != data.size())
      throw shape_error(where, what + " needs " + std::to_string(n * bits / 8) + " bytes, " +
                                   std::to_string(data.size()) + " were given");
    push({std::move(name), type, std::move(shape), false, {}, data, data.size()}, where);
    return *this;
  }

  // Sets a "__metadata__" entry ("format" is "pt" unless changed or erased).
  safetensors_writer& set_metadata(std::string key, std::string value) {
    if (!detail::is_valid_utf8(key) || !detail::is_valid_utf8(value))
      throw format_error("safetensors_writer: metadata '" + key + "'", "key or value is not valid UTF-8");
    metadata_.insert_or_assign(std::move(key), std::move(value));
    return *this;
  }
  // Removes a metadata entry; with none left the header has no "__metadata__" at all (as
  // save_file(..., metadata=None) writes it).
  safetensors_writer& erase_metadata(const std::string& key) {
    metadata_.erase(key);
    return *this;
  }
  [[nodiscard]] const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

  // The header: JSON padded with spaces to a multiple of 8 bytes (without the length prefix).
  [[nodiscard]] std::string header() const {
    std::string h = "{";
    if (!metadata_.empty()) {
      h += "\"__metadata__\":{";
      bool first = true;
      for (const auto& [k, v] : metadata_) {
        if (!std::exchange(first, false)) h += ',';
        detail::append_json_string(h, k);
        h += ':';
        detail::append_json_string(h, v);
      }
      h += '}';
    }
    std::size_t offset = 0;
    for (const entry* e : ordered()) {
      if (h.size() > 1) h += ',';
      detail::append_json_string(h, e->name);
      h += ":{\"dtype\":";
      detail::append_json_string(h, dtype_name(e->type));
      h += ",\"shape\":[";
      for (std::size_t i = 0; i < e->shape.size(); ++i) {
        if (i) h += ',';
        h += std::to_string(e->shape[i]);
      }
      h += "],\"data_offsets\":[";
      h += std::to_string(offset);
      h += ',';
      h += std::to_string(offset + e->bytes);
      h += "]}";
      offset += e->bytes;
    }
    h += '}';
    h.append((8 - h.size() % 8) % 8, ' ');
    return h;
  }

  // Writes the whole file through `sink(std::span<const std::byte>)`, in order.
  template <class Sink>
  void emit(Sink&& sink) const {
    const std::string h = header();
    std::array<std::byte, 8> length{};
    detail::store_le<std::uint64_t>(length.data(), h.size());
    sink(std::span<const std::byte>(length));
    sink(std::as_bytes(std::span(h.data(), h.size())));
    std::vector<std::byte> chunk;
    for (const entry* e : ordered()) {
      if (!e->from_floats)
        sink(e->raw);
      else if (e->type == dtype::f32 && std::endian::native == std::endian::little)
        sink(std::as_bytes(e->values));
      else
        convert_chunks(*e, chunk, sink);
    }
  }

  // The whole file in memory.
  [[nodiscard]] std::vector<std::byte> serialize() const {
    std::vector<std::byte> out;
    emit([&](std::span<const std::byte> b) { out.insert(out.end(), b.begin(), b.end()); });
    return out;
  }

  // Writes `file` atomically (see atomic_file.hpp): on failure the old file, if any, is untouched.
  void write(const std::filesystem::path& file) const {
    write_atomically(file, [&](atomic_output& out) { emit([&](std::span<const std::byte> b) { out.write(b); }); });
  }

private:
  struct entry {
    std::string name;
    dtype type;
    std::vector<std::size_t> shape;
    bool from_floats = false;          // values are converted to `type` when written
    std::span<const float> values;     // from_floats
    std::span<const std::byte> raw;    // !from_floats
    std::size_t bytes = 0;             // size in the file
  };

  static std::size_t checked_numel(const std::vector<std::size_t>& shape, const std::string& where) {
    std::size_t n = 1;
    for (auto d : shape) {
      if (d != 0 && n > SIZE_MAX / d) throw shape_error(where, "shape " + shape_string(shape) + " overflows");
      n *= d;
    }
    return n;
  }

  void push(entry e, const std::string& where) {
    if (e.name == "__metadata__") throw format_error(where, "the name is reserved for the metadata");
    if (!detail::is_valid_utf8(e.name)) throw format_error(where, "the name is not valid UTF-8");
    if (!names_.insert(e.name).second) throw format_error(where, "a tensor of this name was already added");
    entries_.push_back(std::move(e));
  }

  std::vector<const entry*> ordered() const {
    std::vector<const entry*> v;
    for (const auto& e : entries_) v.push_back(&e);
    std::sort(v.begin(), v.end(), [](const entry* a, const entry* b) {
      return a->type != b->type ? a->type > b->type : a->name < b->name;
    });
    return v;
  }

  template <class Sink>
  static void convert_chunks(const entry& e, std::vector<std::byte>& chunk, Sink& sink) {
    constexpr std::size_t per_chunk = 8192;
    const std::size_t width = dtype_bits(e.type) / 8;
    for (std::size_t start = 0; start < e.values.size(); start += per_chunk) {
      const auto part = e.values.subspan(start, std::min(per_chunk, e.values.size() - start));
      chunk.resize(part.size() * width);
      for (std::size_t i = 0; i < part.size(); ++i) {
        std::byte* p = chunk.data() + i * width;
        switch (e.type) {
        case dtype::f16: detail::store_le<std::uint16_t>(p, f32_to_f16(part[i])); break;
        case dtype::bf16: detail::store_le<std::uint16_t>(p, f32_to_bf16(part[i])); break;
        case dtype::f64: detail::store_le<std::uint64_t>(p, std::bit_cast<std::uint64_t>(static_cast<double>(part[i]))); break;
        default: detail::store_le<std::uint32_t>(p, std::bit_cast<std::uint32_t>(part[i])); break;
        }
      }
      sink(std::span<const std::byte>(chunk));
    }
  }

  std::map<std::string, std::string> metadata_;
  std::vector<entry> entries_;
  std::set<std::string, std::less<>> names_;
};

} // namespace prefopt::io
