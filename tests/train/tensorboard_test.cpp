// Tests for prefopt/train/tensorboard.hpp.
// Expected values:
//  - CRC-32C check vectors from RFC 3720 (iSCSI) appendix B.4 and the "123456789" check value;
//  - protobuf varint bytes from the protobuf encoding guide (150 -> 96 01, -1 -> ten bytes);
//  - tests/data/tensorboard/reference.tfevents, written by TensorBoard's own EventFileWriter from
//    the events listed in tests/data/tensorboard/events.json (tools/reference/tensorboard_make_reference.py make);
//  - loading by TensorBoard itself: the two files written by TEST_CASE "writer output loads in
//    TensorBoard" (kept in $PREFOPT_KEEP_TB_CHECK when that is set) were read with
//    `tools/reference/tensorboard_make_reference.py read DIR` (TensorBoard 2.21 EventAccumulator). It
//    printed file_version 2.0; train/loss 1.0, 0.5 at steps 1, 2 and 13, 14, 15 at steps 3, 4, 5 (the
//    SessionLog START at step 3 purged the first file's steps 3, 4); train/learning_rate at steps 1, 2
//    only; and the text tag "notes" (step 2, "resumed **twice**") under the text plugin.
#include "prefopt/train/tensorboard.hpp"

#include "support/data.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace prefopt::train;

namespace {

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("prefopt_tb_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  return dir;
}

// A minimal protobuf reader for checking what the writer produced.
struct field {
  std::uint32_t number = 0, wire = 0;
  std::uint64_t varint = 0;   // wire 0, 1 (raw bits), 5 (raw bits)
  std::string_view bytes;     // wire 2
};

std::uint64_t get_varint(std::string_view& s) {
  std::uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    REQUIRE(!s.empty());
    const auto b = static_cast<unsigned char>(s.front());
    s.remove_prefix(1);
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
}

std::vector<field> parse_message(std::string_view s) {
  std::vector<field> out;
  while (!s.empty()) {
    field f;
    const auto key = get_varint(s);
    f.number = static_cast<std::uint32_t>(key >> 3);
    f.wire = static_cast<std::uint32_t>(key & 7);
    if (f.wire == 0) {
      f.varint = get_varint(s);
    } else if (f.wire == 1 || f.wire == 5) {
      const std::size_t n = f.wire == 1 ? 8 : 4;
      REQUIRE(s.size() >= n);
      for (std::size_t i = 0; i < n; ++i) f.varint |= std::uint64_t(static_cast<unsigned char>(s[i])) << (8 * i);
      s.remove_prefix(n);
    } else {
      REQUIRE(f.wire == 2);
      const auto n = get_varint(s);
      REQUIRE(s.size() >= n);
      f.bytes = s.substr(0, n);
      s.remove_prefix(n);
    }
    out.push_back(f);
  }
  return out;
}

std::uint64_t le(std::string_view s) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < s.size(); ++i) v |= std::uint64_t(static_cast<unsigned char>(s[i])) << (8 * i);
  return v;
}

// Splits a TFRecord file, checking both CRCs of every record.
std::vector<std::string_view> parse_records(std::string_view s) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    REQUIRE(s.size() >= 12);
    const auto len = le(s.substr(0, 8));
    CHECK(le(s.substr(8, 4)) == masked_crc32c(s.substr(0, 8)));
    REQUIRE(s.size() >= 16 + len);
    const auto data = s.substr(12, len);
    CHECK(le(s.substr(12 + len, 4)) == masked_crc32c(data));
    out.push_back(data);
    s.remove_prefix(16 + len);
  }
  return out;
}

tensorboard_options starting_at(double seconds) {
  tensorboard_options o;
  o.start_time = seconds;
  return o;
}

double json_value(const nlohmann::json& v) {
  if (v.is_number()) return v.get<double>();
  const auto s = v.get<std::string>();
  if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
  return s == "inf" ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
}

} // namespace

TEST_CASE("crc32c known vectors") {
  CHECK(crc32c("123456789") == 0xe3069283u);
  CHECK(crc32c("") == 0u);
  CHECK(crc32c(std::string(32, '\0')) == 0x8a9136aau);    // RFC 3720 B.4: 32 bytes of zeros
  CHECK(crc32c(std::string(32, '\xff')) == 0x62a8ab43u);  // 32 bytes of ones
  std::string inc;
  for (int i = 0; i < 32; ++i) inc.push_back(static_cast<char>(i));
  CHECK(crc32c(inc) == 0x46dd794eu);                      // incrementing 00..1f
  CHECK(crc32c("56789", crc32c("1234")) == 0xe3069283u);  // continuation
  // masked: rotate right 15 plus 0xa282ead8
  const std::uint32_t c = 0xe3069283u;
  CHECK(masked_crc32c("123456789") == static_cast<std::uint32_t>(((c >> 15) | (c << 17)) + 0xa282ead8u));
}

TEST_CASE("protobuf varint and fixed encodings") {
  using namespace prefopt::train::detail::tb;
  auto varint = [](std::uint64_t v) { std::string s; put_varint(s, v); return s; };
  CHECK(varint(0) == std::string("\x00", 1));
  CHECK(varint(1) == "\x01");
  CHECK(varint(127) == "\x7f");
  CHECK(varint(128) == "\x80\x01");
  CHECK(varint(150) == "\x96\x01");
  CHECK(varint(300) == "\xac\x02");
  CHECK(varint(std::uint64_t(1) << 40) == std::string("\x80\x80\x80\x80\x80\x20"));
  CHECK(varint(~std::uint64_t(0)) == "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01");
  std::string s;
  put_int64(s, 2, -1); // field 2, wire 0, ten-byte two's complement
  CHECK(s == "\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01");
  s.clear();
  put_float(s, 2, 1.5f);
  CHECK(s == std::string("\x15\x00\x00\xc0\x3f", 5));
  s.clear();
  put_double(s, 1, 1.0);
  CHECK(s == std::string("\x09\x00\x00\x00\x00\x00\x00\xf0\x3f", 9));
  s.clear();
  put_bytes(s, 3, "ab");
  CHECK(s == "\x1a\x02" "ab");
  // a record frames data with its length and two masked CRCs
  const auto r = tfrecord("xyz");
  REQUIRE(r.size() == 8 + 4 + 3 + 4);
  CHECK(le(std::string_view(r).substr(0, 8)) == 3);
  CHECK(parse_records(r).at(0) == "xyz");
}

TEST_CASE("byte for byte equal to TensorBoard's EventFileWriter") {
  const auto listing = nlohmann::json::parse(read_bytes(prefopt::test::data_path("tensorboard/events.json")));
  const auto expected = read_bytes(prefopt::test::data_path("tensorboard/reference.tfevents"));
  const auto dir = fresh_dir("reference");
  fs::path written;
  {
    tensorboard_writer w(dir, {.start_time = listing["first_wall_time"].get<double>(),
                               .source_writer = listing["writer"].get<std::string>()});
    written = w.path();
    for (const auto& e : listing["events"]) {
      const auto wall = e["wall_time"].get<double>();
      const auto step = e["step"].get<std::int64_t>();
      if (e.contains("scalars")) {
        std::vector<std::pair<std::string, double>> values;
        for (const auto& tv : e["scalars"]) values.emplace_back(tv[0].get<std::string>(), json_value(tv[1]));
        if (values.size() == 1) w.add_scalar(values[0].first, values[0].second, step, wall);
        else w.add_scalars(values, step, wall);
      } else if (e.contains("text")) {
        w.add_text(e["text"][0].get<std::string>(), e["text"][1].get<std::string>(), step, wall);
      } else {
        REQUIRE(e.contains("session_start"));
        w.add_session_start(step, wall);
      }
    }
  } // destructor flushes
  CHECK(written.filename().string().rfind("events.out.tfevents.1700000000.", 0) == 0);
  const auto got = read_bytes(written);
  CHECK(got.size() == expected.size());
  CHECK(got == expected);
  CHECK(parse_records(got).size() == listing["events"].size() + 1);
  fs::remove_all(dir);
}

TEST_CASE("written records parse back") {
  const auto dir = fresh_dir("parse");
  tensorboard_writer w(dir, starting_at(1234.5));
  w.add_scalar("train/loss", 0.25, 7, 1240.0);
  w.add_scalar("train/x", 2.0, 0, 1241.0);
  w.flush();
  const auto bytes = read_bytes(w.path());
  const auto records = parse_records(bytes);
  REQUIRE(records.size() == 3);

  auto first = parse_message(records[0]);
  REQUIRE(first.size() == 2); // wall_time, file_version; no source_metadata by default
  CHECK(first[0].number == 1);
  CHECK(std::bit_cast<double>(first[0].varint) == 1234.5);
  CHECK(first[1].number == 3);
  CHECK(first[1].bytes == "brain.Event:2");

  auto ev = parse_message(records[1]);
  REQUIRE(ev.size() == 3);
  CHECK(std::bit_cast<double>(ev[0].varint) == 1240.0);
  CHECK((ev[1].number == 2 && ev[1].wire == 0 && ev[1].varint == 7));
  CHECK(ev[2].number == 5);
  const auto summary = parse_message(ev[2].bytes);
  REQUIRE(summary.size() == 1);
  const auto value = parse_message(summary[0].bytes);
  REQUIRE(value.size() == 2);
  CHECK(value[0].bytes == "train/loss");
  CHECK((value[1].number == 2 && value[1].wire == 5));
  CHECK(std::bit_cast<float>(static_cast<std::uint32_t>(value[1].varint)) == 0.25f);

  auto ev0 = parse_message(records[2]);
  REQUIRE(ev0.size() == 2); // step 0 is the proto3 default and is left out
  CHECK(ev0[1].number == 5);

  // a second writer in the same second gets its own file
  tensorboard_writer w2(dir, starting_at(1234.5));
  CHECK(w2.path() != w.path());
  CHECK(w2.path().filename().string().rfind("events.out.tfevents.0000001234.", 0) == 0);
  w.close();
  CHECK_THROWS_AS(w.add_scalar("a", 1, 1, 1), prefopt::io_error);
  fs::remove_all(dir);
}

TEST_CASE("an unusable directory is an io_error") {
  const auto dir = fresh_dir("blocked");
  fs::create_directories(dir.parent_path());
  std::ofstream(dir.string()) << "a file, not a directory";
  CHECK_THROWS_AS(tensorboard_writer(dir / "sub"), prefopt::io_error);
  fs::remove(dir);
}

TEST_CASE("writer output loads in TensorBoard") {
  // Two files, as a run that crashed after step 4 and resumed from step 2 leaves them.
  const char* keep = std::getenv("PREFOPT_KEEP_TB_CHECK");
  const fs::path dir = keep ? fs::path(keep) : fresh_dir("check");
  if (keep) fs::remove_all(dir);
  {
    tensorboard_writer w(dir, starting_at(1700000000.0));
    for (int s = 1; s <= 4; ++s)
      w.add_scalars({{"train/loss", 1.0 / s}, {"train/learning_rate", 1e-4 * s}}, s, 1700000000.0 + s);
    w.add_text("notes", "resumed **twice**", 2, 1700000002.5);
  }
  {
    tensorboard_writer w(dir, starting_at(1700000100.0));
    w.add_session_start(3, 1700000100.0);
    for (int s = 3; s <= 5; ++s) w.add_scalar("train/loss", 10.0 + s, s, 1700000100.0 + s);
  }
  std::size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    files += 1;
    CHECK(!parse_records(read_bytes(entry.path())).empty());
  }
  CHECK(files == 2);
  if (!keep) fs::remove_all(dir);
}
