// prefopt/train/tensorboard.hpp — TensorBoard event files written directly (no protobuf library).
//
// File: <dir>/events.out.tfevents.<unix seconds, 10 digits>.<hostname>.<pid>.<n>, the name
// TensorBoard's own EventFileWriter uses (n = 0, 1, ...: the first name not yet taken).
//
// TFRecord framing, one record per Event, all integers little-endian:
//   uint64 length | uint32 masked_crc(length bytes) | data[length] | uint32 masked_crc(data)
//   masked_crc(x) = rotate_right(crc32c(x), 15) + 0xa282ead8   (CRC-32C: Castagnoli, reflected 0x82f63b78)
//
// Records are protobuf messages encoded by hand; field numbers from tensorboard/compat/proto
// event.proto, summary.proto, tensor.proto (checked against the compiled descriptors):
//   Event          { double wall_time = 1; int64 step = 2; oneof { string file_version = 3;
//                    Summary summary = 5; SessionLog session_log = 7; } SourceMetadata source_metadata = 10; }
//   SourceMetadata { string writer = 1; }
//   SessionLog     { enum status = 1 (START = 1); }
//   Summary        { repeated Value value = 1; }
//   Summary.Value  { string tag = 1; oneof { float simple_value = 2; TensorProto tensor = 8; }
//                    SummaryMetadata metadata = 9; }
//   SummaryMetadata{ PluginData plugin_data = 1 { string plugin_name = 1; bytes content = 2; } }
//   TensorProto    { DataType dtype = 1 (DT_STRING = 7); TensorShapeProto tensor_shape = 2;
//                    repeated bytes string_val = 8; }
// Fields are written in field-number order and proto3 defaults are left out (step 0, wall_time
// +0.0), except oneof members, exactly as protobuf serializes them: the output is byte-identical
// to TensorBoard's writer (tests/train/tensorboard_test.cpp compares against its file).
// The first record is Event{wall_time, file_version: "brain.Event:2"} (+ source_metadata if given).
#pragma once

#include "prefopt/core/error.hpp"

#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace prefopt::train {

namespace detail::tb {
inline constexpr std::array<std::uint32_t, 256> crc32c_table = [] {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    t[i] = c;
  }
  return t;
}();

// Protobuf wire format: tag = field << 3 | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
inline void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
inline void put_tag(std::string& out, std::uint32_t field, std::uint32_t wire) { put_varint(out, (field << 3) | wire); }
template <class UInt> void put_le(std::string& out, UInt v) {
  for (std::size_t i = 0; i < sizeof(UInt); ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline void put_bytes(std::string& out, std::uint32_t field, std::string_view bytes) {
  put_tag(out, field, 2);
  put_varint(out, bytes.size());
  out.append(bytes);
}
inline void put_double(std::string& out, std::uint32_t field, double v) {
  put_tag(out, field, 1);
  put_le(out, std::bit_cast<std::uint64_t>(v));
}
inline void put_float(std::string& out, std::uint32_t field, float v) {
  put_tag(out, field, 5);
  put_le(out, std::bit_cast<std::uint32_t>(v));
}
// int64 is encoded as the varint of its two's complement (10 bytes when negative).
inline void put_int64(std::string& out, std::uint32_t field, std::int64_t v) {
  put_tag(out, field, 0);
  put_varint(out, static_cast<std::uint64_t>(v));
}

// Event{wall_time, step, <payload>}: payload is the already encoded oneof member (tag included).
inline std::string event(double wall_time, std::int64_t step, std::string_view payload) {
  std::string e;
  if (std::bit_cast<std::uint64_t>(wall_time) != 0) put_double(e, 1, wall_time);
  if (step != 0) put_int64(e, 2, step);
  e.append(payload);
  return e;
}

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct file_closer {
  void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};
} // namespace detail::tb

// CRC-32C (Castagnoli) of bytes, continuing from a previous crc (0 to start): "123456789" -> 0xe3069283.
[[nodiscard]] inline std::uint32_t crc32c(std::string_view bytes, std::uint32_t crc = 0) noexcept {
  crc = ~crc;
  for (unsigned char b : bytes) crc = detail::tb::crc32c_table[(crc ^ b) & 0xffu] ^ (crc >> 8);
  return ~crc;
}

// The TFRecord checksum: the CRC rotated right by 15 bits plus a constant.
[[nodiscard]] inline std::uint32_t masked_crc32c(std::string_view bytes) noexcept {
  const std::uint32_t c = crc32c(bytes);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

// One framed TFRecord around data.
[[nodiscard]] inline std::string tfrecord(std::string_view data) {
  std::string header;
  detail::tb::put_le(header, static_cast<std::uint64_t>(data.size()));
  std::string r = header;
  detail::tb::put_le(r, masked_crc32c(header));
  r.append(data);
  detail::tb::put_le(r, masked_crc32c(data));
  return r;
}

struct tensorboard_options {
  // wall_time of the first record and the seconds in the file name; default: now.
  std::optional<double> start_time{};
  // SourceMetadata.writer in the first record (TensorBoard's writer puts its module name there); empty: left out.
  std::string source_writer{};
};

class tensorboard_writer {
public:
  // Creates dir (and parents) if needed and writes the file_version record. Throws io_error.
  explicit tensorboard_writer(const std::filesystem::path& dir, tensorboard_options options = {}) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw io_error(dir.string(), "cannot create the TensorBoard log directory: " + ec.message());
    const double start = options.start_time ? *options.start_time : detail::tb::now_seconds();
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%010lld", static_cast<long long>(start));
    std::string host = "localhost";
    long pid = 0;
#if defined(__unix__) || defined(__APPLE__)
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) == 0 && name[0] != '\0') host = name;
    pid = static_cast<long>(::getpid());
#endif
    for (int n = 0; !file_; ++n) {
      path_ = dir / ("events.out.tfevents." + std::string(seconds) + "." + host + "." + std::to_string(pid) + "." +
                     std::to_string(n));
      file_.reset(std::fopen(path_.string().c_str(), "wbx")); // x: fails if the name is taken
      if (!file_ && (errno != EEXIST || n == 1000))
        throw io_error(path_.string(), std::string("cannot create the event file: ") + std::strerror(errno));
    }
    std::string payload;
    detail::tb::put_bytes(payload, 3, "brain.Event:2");
    if (!options.source_writer.empty()) {
      std::string source;
      detail::tb::put_bytes(source, 1, options.source_writer);
      detail::tb::put_bytes(payload, 10, source);
    }
    write_event(detail::tb::event(start, 0, payload));
    flush();
  }

  tensorboard_writer(const tensorboard_writer&) = delete;
  tensorboard_writer& operator=(const tensorboard_writer&) = delete;
  tensorboard_writer(tensorboard_writer&&) noexcept = default;
  tensorboard_writer& operator=(tensorboard_writer&&) noexcept = default;
  ~tensorboard_writer() = default; // closing the file flushes it

  // A scalar (Summary.Value.simple_value, a float32: TensorBoard's scalar plots) at a step.
  void add_scalar(std::string_view tag, double value, std::int64_t step, double wall_time) {
    add_scalars({{std::string(tag), value}}, step, wall_time);
  }
  void add_scalar(std::string_view tag, double value, std::int64_t step) {
    add_scalar(tag, value, step, detail::tb::now_seconds());
  }

  // Several scalars in one event (one Summary with one Value each), as a logging step produces them.
  void add_scalars(const std::vector<std::pair<std::string, double>>& values, std::int64_t step, double wall_time) {
    std::string summary;
    for (const auto& [tag, value] : values) {
      std::string v;
      detail::tb::put_bytes(v, 1, tag);
      detail::tb::put_float(v, 2, static_cast<float>(value));
      detail::tb::put_bytes(summary, 1, v);
    }
    write_summary(summary, step, wall_time);
  }
  void add_scalars(const std::vector<std::pair<std::string, double>>& values, std::int64_t step) {
    add_scalars(values, step, detail::tb::now_seconds());
  }

  // Text for TensorBoard's Text tab (Markdown): a scalar DT_STRING tensor with plugin "text",
  // as tensorboard.plugins.text.summary_v2.text_pb writes it.
  void add_text(std::string_view tag, std::string_view text, std::int64_t step, double wall_time) {
    std::string tensor, shape, plugin, metadata, v, summary;
    detail::tb::put_int64(tensor, 1, 7); // dtype DT_STRING
    detail::tb::put_bytes(tensor, 2, shape); // tensor_shape {} : a scalar
    detail::tb::put_bytes(tensor, 8, text);
    detail::tb::put_bytes(plugin, 1, "text");
    detail::tb::put_bytes(metadata, 1, plugin);
    detail::tb::put_bytes(v, 1, tag);
    detail::tb::put_bytes(v, 8, tensor);
    detail::tb::put_bytes(v, 9, metadata);
    detail::tb::put_bytes(summary, 1, v);
    write_summary(summary, step, wall_time);
  }
  void add_text(std::string_view tag, std::string_view text, std::int64_t step) {
    add_text(tag, text, step, detail::tb::now_seconds());
  }

  // SessionLog{START} at step: a run resumed from a checkpoint writes it with the first step it will
  // log, and TensorBoard then drops the data that earlier files hold at steps >= step.
  void add_session_start(std::int64_t step, double wall_time) {
    std::string log, payload;
    detail::tb::put_int64(log, 1, 1);
    detail::tb::put_bytes(payload, 7, log);
    write_event(detail::tb::event(wall_time, step, payload));
  }
  void add_session_start(std::int64_t step) { add_session_start(step, detail::tb::now_seconds()); }

  // Pushes buffered records to the operating system. Throws io_error.
  void flush() {
    if (file_ && std::fflush(file_.get()) != 0)
      throw io_error(path_.string(), std::string("cannot write the event file: ") + std::strerror(errno));
  }

  // Flushes and closes the file; later writes throw. The destructor closes too, ignoring errors.
  void close() {
    if (!file_) return;
    std::FILE* f = file_.release();
    if (std::fclose(f) != 0)
      throw io_error(path_.string(), std::string("cannot write the event file: ") + std::strerror(errno));
  }

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

private:
  void write_summary(const std::string& summary, std::int64_t step, double wall_time) {
    std::string payload;
    detail::tb::put_bytes(payload, 5, summary);
    write_event(detail::tb::event(wall_time, step, payload));
  }

  void write_event(const std::string& event) {
    if (!file_) throw io_error(path_.string(), "the event file is closed");
    const std::string record = tfrecord(event);
    if (std::fwrite(record.data(), 1, record.size(), file_.get()) != record.size())
      throw io_error(path_.string(), std::string("cannot write the event file: ") + std::strerror(errno));
  }

  std::filesystem::path path_;
  std::unique_ptr<std::FILE, detail::tb::file_closer> file_;
};

} // namespace prefopt::train
