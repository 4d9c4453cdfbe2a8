// Tests of include/prefopt/io/safetensors_writer.hpp.
// Expected bytes: files written by safetensors.torch.save_file for the same tensors and metadata
// (tests/data/safetensors/writer_*.safetensors, described by writer_cases.json; made by
// tools/reference/safetensors_make_reference.py). F16/BF16 tensors there were rounded by torch.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "io_test_support.hpp"
#include "prefopt/io/safetensors.hpp"

using namespace prefopt::io;
using prefopt::test::temp_dir;

namespace {

// Owns the data the writer points at.
struct writer_input {
  std::vector<std::vector<float>> floats;
  std::vector<std::vector<std::byte>> raw;
  safetensors_writer writer;
};

void build(const nlohmann::json& spec, writer_input& in) {
  in.floats.reserve(spec["tensors"].size());
  in.raw.reserve(spec["tensors"].size());
  for (const auto& t : spec["tensors"]) {
    const auto type = parse_dtype(t["dtype"].get<std::string>());
    REQUIRE(type);
    const auto shape = t["shape"].get<std::vector<std::size_t>>();
    if (t.contains("f32_bits")) {
      auto& v = in.floats.emplace_back();
      for (const auto& b : t["f32_bits"]) v.push_back(std::bit_cast<float>(b.get<std::uint32_t>()));
      in.writer.add(t["name"].get<std::string>(), shape, v, *type);
    } else {
      auto& r = in.raw.emplace_back(prefopt::test::from_hex(t["hex"].get<std::string>()));
      in.writer.add_bytes(t["name"].get<std::string>(), *type, shape, r);
    }
  }
  const auto& meta = spec["metadata"];
  if (meta.is_null()) {
    in.writer.erase_metadata("format");
  } else {
    for (const auto& [k, v] : meta.items()) in.writer.set_metadata(k, v.get<std::string>());
  }
}

} // namespace

TEST_CASE("the bytes equal safetensors.torch.save_file's for the same tensors and metadata") {
  const auto cases = prefopt::test::load_json("safetensors/writer_cases.json");
  temp_dir dir;
  int compared = 0;
  for (const auto& item : cases.items()) {
    const std::string name = item.key(); // not a structured binding: clang 14 cannot capture those
    const auto& spec = item.value();
    CAPTURE(name);
    writer_input in;
    build(spec, in);
    const auto expected = prefopt::test::read_bytes(prefopt::test::data_path("safetensors/" + spec["file"].get<std::string>()));
    const auto bytes = in.writer.serialize();
    CHECK(bytes.size() == expected.size());
    CHECK(bytes == expected);
    const auto path = dir / (name + ".safetensors");
    in.writer.write(path);
    CHECK(prefopt::test::read_bytes(path) == expected);
    ++compared;
  }
  CHECK(compared == 6); // f32, mixed dtypes, no metadata, no tensors, other format, several metadata keys
  CHECK(dir.entries().size() == 6);                   // no temporaries left
}

TEST_CASE("header: tensors by descending dtype alignment then name, 8-byte aligned buffer") {
  const std::vector<float> v{1, 2};
  const std::vector<std::byte> b{std::byte{1}, std::byte{0}};
  safetensors_writer w;
  w.add("z", {2}, v).add("a", {2}, v, dtype::bf16).add_bytes("m", dtype::boolean, {2}, b).add("c", {1, 2}, v, dtype::f64);
  const std::string h = w.header();
  CHECK(h.size() % 8 == 0);
  CHECK(h.find("\"c\"") < h.find("\"z\""));
  CHECK(h.find("\"z\"") < h.find("\"a\""));
  CHECK(h.find("\"a\"") < h.find("\"m\""));
  CHECK(h.rfind("{\"__metadata__\":{\"format\":\"pt\"},\"c\":{\"dtype\":\"F64\",\"shape\":[1,2],\"data_offsets\":[0,16]}", 0) == 0);
  CHECK(w.size() == 4);
}

TEST_CASE("round trip: write, then read back with safetensors_file") {
  temp_dir dir;
  std::vector<float> values;
  for (int i = 0; i < 1000; ++i) values.push_back(std::sin(0.37f * static_cast<float>(i)) * std::pow(10.0f, static_cast<float>(i % 13 - 6)));
  values[3] = -0.0f;
  values[4] = INFINITY;
  values[5] = 70000.0f; // beyond F16: inf there
  const std::vector<std::int64_t> ids{5, -1, 1LL << 50};
  const float scalar = 0.125f;
  safetensors_writer w;
  w.add("w.f32", {10, 100}, values)
      .add("w.f16", {1000}, values, dtype::f16)
      .add("w.bf16", {2, 500}, values, dtype::bf16)
      .add("w.f64", {1000}, values, dtype::f64)
      .add("scalar", {}, std::span(&scalar, 1))
      .add("empty", {0, 7}, std::span<const float>())
      .add_bytes("ids", dtype::i64, {3}, std::as_bytes(std::span(ids)))
      .set_metadata("step", "42")
      .set_metadata("note", "r\u00e9sum\u00e9 \"q\"\n");
  const auto path = dir / "round.safetensors";
  w.write(path);

  const safetensors_file f(path);
  CHECK(f.size() == 7);
  CHECK(f.header_size() % 8 == 0);
  CHECK(f.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"note", "r\u00e9sum\u00e9 \"q\"\n"}, {"step", "42"}});
  const auto f32 = f.read_f32("w.f32");
  const auto f16 = f.read_f32("w.f16");
  const auto bf16 = f.read_f32("w.bf16");
  const auto f64 = f.read_f32("w.f64");
  REQUIRE(f32.size() == values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    CHECK(std::bit_cast<std::uint32_t>(f32[i]) == std::bit_cast<std::uint32_t>(values[i]));
    CHECK(std::bit_cast<std::uint32_t>(f64[i]) == std::bit_cast<std::uint32_t>(values[i]));
    CHECK(std::bit_cast<std::uint32_t>(f16[i]) == std::bit_cast<std::uint32_t>(f16_to_f32(f32_to_f16(values[i]))));
    CHECK(std::bit_cast<std::uint32_t>(bf16[i]) == std::bit_cast<std::uint32_t>(bf16_to_f32(f32_to_bf16(values[i]))));
  }
  CHECK(std::isinf(f16[5]));
  CHECK(std::signbit(f16[3]));
  CHECK(f.info("w.bf16").shape == std::vector<std::size_t>{2, 500});
  CHECK(f.read_f32("scalar") == std::vector<float>{0.125f});
  CHECK(f.info("empty").shape == std::vector<std::size_t>{0, 7});
  CHECK(f.read_f32("empty").empty());
  const auto idb = f.bytes("ids");
  CHECK(std::vector<std::byte>(idb.begin(), idb.end()) ==
        std::vector<std::byte>(std::as_bytes(std::span(ids)).begin(), std::as_bytes(std::span(ids)).end()));
}

TEST_CASE("mistakes in what is added are caught at add()") {
  const std::vector<float> v(6);
  const std::vector<std::byte> b(5);
  safetensors_writer w;
  w.add("a", {2, 3}, v);
  CHECK_THROWS_WITH_AS(w.add("b", {2, 2}, v), doctest::Contains("tensor 'b'"), prefopt::shape_error);
  CHECK_THROWS_WITH_AS(w.add("a", {6}, v), doctest::Contains("already added"), prefopt::format_error);
  CHECK_THROWS_AS(w.add("__metadata__", {6}, v), prefopt::format_error);
  CHECK_THROWS_WITH_AS(w.add("bad\xff", {6}, v), doctest::Contains("UTF-8"), prefopt::format_error);
  CHECK_THROWS_WITH_AS(w.add("i", {6}, v, dtype::i64), doctest::Contains("I64"), prefopt::format_error);
  CHECK_THROWS_AS(w.add_bytes("c", dtype::i32, {2}, b), prefopt::shape_error);
  CHECK_THROWS_WITH_AS(w.add_bytes("f4", dtype::f4, {3}, std::span(b).first(2)), doctest::Contains("whole bytes"),
                       prefopt::shape_error);
  CHECK_THROWS_AS(w.add("huge", {std::size_t{1} << 40, std::size_t{1} << 40}, v), prefopt::shape_error);
  CHECK_THROWS_AS(w.set_metadata("k", "\xc0\xaf"), prefopt::format_error);
  w.add_bytes("f4", dtype::f4, {4}, std::span(b).first(2));
  CHECK(w.size() == 2); // only the good ones
}

TEST_CASE("a write that fails midway leaves the old file intact and no temporary") {
  temp_dir dir;
  const auto path = dir / "model.safetensors";
  const std::vector<float> small{1, 2, 3};
  safetensors_writer old;
  old.add("w", {3}, small);
  old.write(path);
  const auto old_bytes = prefopt::test::read_bytes(path);

  const std::vector<float> big(1 << 20, 0.5f); // 4 MiB of F32, past the limit below
  safetensors_writer next;
  next.add("w", {1 << 20}, big).add("w2", {1 << 20}, big, dtype::bf16);
  {
    const prefopt::test::file_size_limit limit(256 * 1024);
    CHECK_THROWS_WITH_AS(next.write(path), doctest::Contains(path.string().c_str()), prefopt::io_error);
  }
  CHECK(prefopt::test::read_bytes(path) == old_bytes);
  CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});
  CHECK(safetensors_file(path).read_f32("w") == small);

  // Without the limit the same writer succeeds.
  next.write(path);
  const safetensors_file f(path);
  CHECK(f.read_f32("w2") == big);
  CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});
}

TEST_CASE("overwriting a file that is open for reading keeps the reader's view intact") {
  temp_dir dir;
  const auto path = dir / "live.safetensors";
  const std::vector<float> a{1, 2, 3}, b{4, 5, 6, 7};
  safetensors_writer wa;
  wa.add("x", {3}, a).write(path);
  const safetensors_file before(path); // mapped
  safetensors_writer wb;
  wb.add("x", {4}, b).write(path);
  CHECK(before.read_f32("x") == a); // the old inode is still mapped
  CHECK(safetensors_file(path).read_f32("x") == b);
}
