// prefopt/io/detail/safetensors_header.hpp — parsing and validating a safetensors file's header.
//
// Layout: 8 bytes little-endian N, N bytes of UTF-8 JSON (possibly padded with spaces), then the
// data buffer. The JSON object maps tensor names to {"dtype", "shape", "data_offsets": [begin,
// end]} (offsets relative to the buffer) and may hold "__metadata__": {string: string}.
//
// The rules are upstream's: safetensors 0.8.0 (the Python package, Rust core), checked by feeding
// it crafted files through safetensors.deserialize and safe_open. The cases and upstream's verdict
// on each are in tests/data/safetensors/malformed_cases.json (made by
// tools/reference/safetensors_make_reference.py), and the C++ tests hold this reader to them.
//   - file < 8 bytes, N > 100'000'000, 8 + N > file size: rejected.
//   - header must be UTF-8 (the whole N bytes, padding included) and one JSON object; whitespace
//     around it is allowed (upstream accepts leading spaces too), anything else after it is not.
//   - each entry needs dtype (a known name, case-sensitive), shape (array of non-negative
//     integers, [] for a scalar; -0, 2.0, 2e0 are not integers) and data_offsets (exactly two
//     non-negative integers); other keys in an entry are ignored, as upstream ignores them.
//   - the element count times the dtype's bits must fill whole bytes and equal end - begin;
//     overflow in that product is rejected.
//   - sorted by (begin, end), the ranges must tile the buffer exactly: the first begins at 0, each
//     begins where the previous ended (zero-size tensors may sit at any such boundary), the last
//     ends at the end of the file. Gaps, overlaps and trailing bytes are all rejected.
//   - "__metadata__" is null (no metadata) or an object whose values are all strings.
// Stricter than upstream, on purpose: a key repeated in any object of the header is rejected.
// Upstream keeps the last of a repeated metadata key, and accepts a tensor named twice when both
// entries are identical (a repeat with a different range fails its coverage check). Messages name
// the actual fault (offsets past the buffer, begin > end, gap, overlap) where upstream says
// "invalid offset" or "not fully covered".
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "prefopt/core/error.hpp"
#include "prefopt/io/detail/json_strict.hpp"
#include "prefopt/io/detail/utf8.hpp"
#include "prefopt/io/safetensors_dtype.hpp"

namespace prefopt::io {

// Upstream's MAX_HEADER_SIZE: a longer header is taken as a corrupt length field.
inline constexpr std::uint64_t safetensors_max_header_size = 100'000'000;

namespace detail {

inline std::string tensor_where(const std::string& file, std::string_view tensor) {
  return file + ": tensor '" + std::string(tensor) + "'";
}

inline std::string offsets_string(std::size_t begin, std::size_t end) {
  std::string s = "["; // built with += : GCC 12 warns falsely (-Wrestrict) on "[" + std::to_string(...)
  s += std::to_string(begin);
  s += ", ";
  s += std::to_string(end);
  s += ']';
  return s;
}

struct safetensors_layout {
  std::map<std::string, tensor_info, std::less<>> tensors;
  std::map<std::string, std::string> metadata;
  std::size_t header_size = 0; // N
  std::size_t data_start = 0;  // 8 + N
  std::size_t data_size = 0;   // file size - 8 - N
};

inline std::uint64_t read_le_u64(std::span<const std::byte> b) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<std::uint64_t>(b[static_cast<std::size_t>(i)]);
  return v;
}

inline tensor_info parse_tensor_entry(const std::string& name, const nlohmann::json& entry,
                                      const std::string& file, std::size_t data_size) {
  const std::string where = tensor_where(file, name);
  if (!entry.is_object()) throw format_error(where, "header entry is not a JSON object");
  tensor_info info;
  info.name = name;

  const auto dt = entry.find("dtype");
  if (dt == entry.end()) throw format_error(where, "header entry has no 'dtype'");
  if (!dt->is_string()) throw format_error(where, "'dtype' is not a string");
  const auto type = parse_dtype(dt->get_ref<const std::string&>());
  if (!type) throw format_error(where, "unknown dtype '" + dt->get<std::string>() + "'");
  info.type = *type;

  const auto sh = entry.find("shape");
  if (sh == entry.end()) throw format_error(where, "header entry has no 'shape'");
  if (!sh->is_array()) throw format_error(where, "'shape' is not an array");
  for (const auto& d : *sh) {
    if (!d.is_number_unsigned()) throw format_error(where, "'shape' holds " + json_excerpt(d) + ", not a non-negative integer");
    info.shape.push_back(d.get<std::size_t>());
  }

  const auto off = entry.find("data_offsets");
  if (off == entry.end()) throw format_error(where, "header entry has no 'data_offsets'");
  if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned())
    throw format_error(where, "'data_offsets' is " + json_excerpt(*off) + ", not two non-negative integers");
  info.begin = (*off)[0].get<std::size_t>();
  info.end = (*off)[1].get<std::size_t>();

  // Element count × bits, with overflow checks (upstream: ValidationOverflow).
  std::size_t bits = dtype_bits(info.type);
  std::size_t numel = 1;
  for (auto d : info.shape) {
    if (d != 0 && numel > SIZE_MAX / d) throw format_error(where, "shape " + shape_string(info.shape) + " overflows");
    numel *= d;
  }
  if (numel != 0 && bits > SIZE_MAX / numel)
    throw format_error(where, "shape " + shape_string(info.shape) + " overflows");
  bits *= numel;
  if (bits % 8 != 0)
    throw format_error(where, "shape " + shape_string(info.shape) + " of dtype " + std::string(dtype_name(info.type)) +
                                  " does not fill whole bytes");
  if (info.begin > info.end)
    throw format_error(where, "data_offsets " + offsets_string(info.begin, info.end) + " begin after they end");
  if (info.end > data_size)
    throw format_error(where, "data_offsets " + offsets_string(info.begin, info.end) +
                                  " run past the end of the data buffer (" + std::to_string(data_size) + " bytes)");
  if (bits / 8 != info.end - info.begin)
    throw format_error(where, "shape " + shape_string(info.shape) + " of dtype " + std::string(dtype_name(info.type)) +
                                  " needs " + std::to_string(bits / 8) + " bytes but data_offsets " +
                                  offsets_string(info.begin, info.end) + " hold " +
                                  std::to_string(info.end - info.begin));
  return info;
}

inline std::map<std::string, std::string> parse_metadata(const nlohmann::json& m, const std::string& file) {
  std::map<std::string, std::string> out;
  if (m.is_null()) return out; // upstream accepts null as "no metadata"
  if (!m.is_object()) throw format_error(file, "'__metadata__' is " + std::string(m.type_name()) + ", not an object of strings");
  for (const auto& [key, value] : m.items()) {
    if (!value.is_string())
      throw format_error(file, "'__metadata__' value of key '" + key + "' is " + std::string(value.type_name()) +
                                   ", not a string");
    out.emplace(key, value.get<std::string>());
  }
  return out;
}

// Parses and validates the whole layout of a safetensors file held in `file_bytes`.
// `file` names the file in messages.
inline safetensors_layout parse_safetensors(std::span<const std::byte> file_bytes, const std::string& file) {
  if (file_bytes.size() < 8)
    throw format_error(file, "file is " + std::to_string(file_bytes.size()) +
                                 " bytes, shorter than the 8-byte header length");
  const std::uint64_t n = read_le_u64(file_bytes.first(8));
  if (n > safetensors_max_header_size)
    throw format_error(file, "header length " + std::to_string(n) + " exceeds the limit of " +
                                 std::to_string(safetensors_max_header_size) + " bytes");
  if (n > file_bytes.size() - 8)
    throw format_error(file, "header length " + std::to_string(n) + " runs past the end of the file (" +
                                 std::to_string(file_bytes.size()) + " bytes)");
  safetensors_layout layout;
  layout.header_size = static_cast<std::size_t>(n);
  layout.data_start = 8 + layout.header_size;
  layout.data_size = file_bytes.size() - layout.data_start;

  const std::string_view text(reinterpret_cast<const char*>(file_bytes.data() + 8), layout.header_size);
  if (const auto bad = first_invalid_utf8(text))
    throw format_error(file, "header is not valid UTF-8 (byte " + std::to_string(8 + *bad) + " of the file)");

  std::optional<json_duplicate_key> duplicate;
  const nlohmann::json header = parse_json_strict(text, file, "header", duplicate);
  if (!header.is_object()) throw format_error(file, "header is " + std::string(header.type_name()) + ", not a JSON object");
  if (duplicate) {
    if (duplicate->path.empty() && duplicate->key != "__metadata__")
      throw format_error(tensor_where(file, duplicate->key), "tensor name appears more than once in the header");
    if (!duplicate->path.empty() && duplicate->path[0] != "__metadata__")
      throw format_error(tensor_where(file, duplicate->path[0]), "key '" + duplicate->key + "' appears more than once in its entry");
    std::string in = "the header";
    if (!duplicate->path.empty()) {
      in = "'";
      for (std::size_t i = 0; i < duplicate->path.size(); ++i) in += (i ? "." : "") + duplicate->path[i];
      in += "'";
    }
    throw format_error(file, "key '" + duplicate->key + "' appears more than once in " + in);
  }

  std::vector<const tensor_info*> by_offset;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      layout.metadata = parse_metadata(value, file);
      continue;
    }
    layout.tensors.emplace(key, parse_tensor_entry(key, value, file, layout.data_size));
  }
  for (const auto& [key, info] : layout.tensors) by_offset.push_back(&info);
  std::stable_sort(by_offset.begin(), by_offset.end(), [](const tensor_info* a, const tensor_info* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::size_t cursor = 0;
  const tensor_info* previous = nullptr; // the tensor that ends at cursor
  for (const tensor_info* t : by_offset) {
    if (t->begin < cursor)
      throw format_error(tensor_where(file, t->name), "data_offsets " + offsets_string(t->begin, t->end) +
                                                          " overlap tensor '" + previous->name + "' " +
                                                          offsets_string(previous->begin, previous->end));
    if (t->begin > cursor)
      throw format_error(tensor_where(file, t->name),
                         "gap of " + std::to_string(t->begin - cursor) + " bytes before data_offsets " +
                             offsets_string(t->begin, t->end) +
                             (previous ? " (tensor '" + previous->name + "' ends at " + std::to_string(cursor) + ")"
                                       : std::string(" (the data buffer starts at 0)")));
    if (t->end > cursor || previous == nullptr) {
      cursor = t->end;
      previous = t;
    }
  }
  if (cursor != layout.data_size)
    throw format_error(file, std::to_string(layout.data_size - cursor) + " bytes at the end of the data buffer (" +
                                 std::to_string(layout.data_size) + " bytes) belong to no tensor");
  return layout;
}

} // namespace detail
} // namespace prefopt::io
