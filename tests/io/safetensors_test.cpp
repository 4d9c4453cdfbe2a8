// Tests of include/prefopt/io/safetensors_file.hpp (reading and validating one file).
// Expected values come from the upstream Python library: tests/data/safetensors/reference.* (written
// by safetensors.torch.save_file; the JSON holds torch's float32 value of every element) and
// malformed_cases.json (crafted files with upstream's verdict on each, from safetensors.deserialize
// and safe_open). Both are made by tools/reference/safetensors_make_reference.py.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "io_test_support.hpp"
#include "prefopt/io/safetensors_file.hpp"

using namespace prefopt::io;
using prefopt::test::data_path;

namespace {

// The error `f` throws as format_error (empty if it throws nothing); any other exception fails.
template <class F>
std::string format_error_of(F&& f) {
  try {
    f();
  } catch (const prefopt::format_error& e) {
    return e.what();
  }
  return {};
}

void check_values(const tensor_info& t, const std::vector<float>& got, const nlohmann::json& bits) {
  REQUIRE(got.size() == bits.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    const float want = std::bit_cast<float>(bits[i].get<std::uint32_t>());
    INFO(t.name << "[" << i << "]");
    if (std::isnan(want)) {
      CHECK(std::isnan(got[i]));
    } else {
      CHECK(std::bit_cast<std::uint32_t>(got[i]) == std::bit_cast<std::uint32_t>(want));
    }
  }
}

} // namespace

TEST_CASE("reads the file written by safetensors.torch.save_file: names, metadata, entries, values") {
  const auto expected = prefopt::test::load_json("safetensors/reference.json");
  for (const auto access : {file_access::map, file_access::read}) {
    const safetensors_file f(data_path("safetensors/reference.safetensors"), access);
    CHECK(f.is_mapped() == (access == file_access::map));
    CHECK(f.names() == expected["keys"].get<std::vector<std::string>>()); // safe_open's order
    CHECK(f.size() == expected["tensors"].size());
    CHECK(f.metadata() == expected["metadata"].get<std::map<std::string, std::string>>());
    CHECK(f.header_size() % 8 == 0);
    for (const auto& item : expected["tensors"].items()) {
      const std::string name = item.key(); // not a structured binding: clang 14 cannot capture those
      const auto& e = item.value();
      CAPTURE(name);
      REQUIRE(f.contains(name));
      const auto& t = f.info(name);
      CHECK(t.name == name);
      CHECK(dtype_name(t.type) == e["dtype"].get<std::string>());
      CHECK(t.shape == e["shape"].get<std::vector<std::size_t>>());
      CHECK(t.begin == e["data_offsets"][0].get<std::size_t>());
      CHECK(t.end == e["data_offsets"][1].get<std::size_t>());
      CHECK(f.bytes(name).size() == t.byte_size());
      if (e.contains("f32_bits")) {
        check_values(t, f.read_f32(name), e["f32_bits"]);
        std::vector<float> into(t.numel(), -1.0f);
        f.read_into(name, into);
        check_values(t, into, e["f32_bits"]);
      } else if (t.type == dtype::i64) {
        const auto b = f.bytes(name);
        std::vector<std::int64_t> v(b.size() / 8);
        std::memcpy(v.data(), b.data(), b.size());
        CHECK(v == e["values"].get<std::vector<std::int64_t>>());
      } else {
        REQUIRE(t.type == dtype::boolean);
        const auto b = f.bytes(name);
        std::vector<int> v;
        for (auto x : b) v.push_back(static_cast<int>(x));
        CHECK(v == e["values"].get<std::vector<int>>());
      }
    }
  }
}

TEST_CASE("scalars have shape [] and one element; zero-size tensors read as empty") {
  const safetensors_file f(data_path("safetensors/reference.safetensors"));
  CHECK(f.info("scalar.f32").shape.empty());
  CHECK(f.read_f32("scalar.f32") == std::vector<float>{2.5f});
  CHECK(f.read_f32("scalar.bf16") == std::vector<float>{-0.75f});
  CHECK(f.info("empty.f32").shape == std::vector<std::size_t>{0, 3});
  CHECK(f.read_f32("empty.f32").empty());
  CHECK(f.read_f32("empty.f16").empty());
  CHECK(f.bytes("empty.f32").empty());
}

TEST_CASE("lookups that fail name the file and the tensor") {
  const auto path = data_path("safetensors/reference.safetensors");
  const safetensors_file f(path);
  const std::string file = path.string();

  auto e = format_error_of([&] { (void)f.info("nope"); });
  CHECK(e.find(file) != std::string::npos);
  CHECK(e.find("tensor 'nope'") != std::string::npos);
  CHECK(!f.contains("nope"));
  CHECK(format_error_of([&] { (void)f.bytes("nope"); }).find("tensor 'nope'") != std::string::npos);

  // Integer dtypes are valid in the header but are not converted to float.
  e = format_error_of([&] { (void)f.read_f32("i64.ids"); });
  CHECK(e.find(file) != std::string::npos);
  CHECK(e.find("tensor 'i64.ids'") != std::string::npos);
  CHECK(e.find("I64") != std::string::npos);
  std::vector<float> four(4);
  CHECK(format_error_of([&] { f.read_into("i64.ids", four); }).find("tensor 'i64.ids'") != std::string::npos);
  CHECK(format_error_of([&] { (void)f.read_f32("bool.mask"); }).find("BOOL") != std::string::npos);

  // read_into needs a destination of exactly numel() floats.
  std::vector<float> five(5);
  try {
    f.read_into("f32.matrix", five);
    FAIL("no shape_error");
  } catch (const prefopt::shape_error& err) {
    const std::string w = err.what();
    CHECK(w.find(file) != std::string::npos);
    CHECK(w.find("tensor 'f32.matrix'") != std::string::npos);
    CHECK(w.find("6 elements") != std::string::npos);
  }
}

TEST_CASE("require: the tensor a model config needs, with its shape") {
  const auto path = data_path("safetensors/reference.safetensors");
  const safetensors_file f(path);
  CHECK(f.require("f32.cube", {2, 3, 4}).numel() == 24);
  CHECK(f.require("scalar.f32", {}).numel() == 1);

  auto e = format_error_of([&] { (void)f.require("model.embed_tokens.weight", {10, 4}); });
  CHECK(e.find(path.string()) != std::string::npos);
  CHECK(e.find("tensor 'model.embed_tokens.weight'") != std::string::npos);
  CHECK(e.find("missing") != std::string::npos);
  CHECK(e.find("[10, 4]") != std::string::npos);

  e = format_error_of([&] { (void)f.require("f32.cube", {2, 12}); });
  CHECK(e.find(path.string()) != std::string::npos);
  CHECK(e.find("tensor 'f32.cube'") != std::string::npos);
  CHECK(e.find("expected shape [2, 12]") != std::string::npos);
  CHECK(e.find("[2, 3, 4]") != std::string::npos);
}

TEST_CASE("malformed files: prefopt rejects what upstream rejects, naming the file and the tensor") {
  const auto cases = prefopt::test::load_json("safetensors/malformed_cases.json");
  prefopt::test::temp_dir dir;
  int rejected = 0, accepted = 0, stricter = 0;
  for (const auto& c : cases["cases"]) {
    const std::string name = c["name"].get<std::string>();
    CAPTURE(name);
    const auto path = dir / (name + ".safetensors");
    prefopt::test::write_bytes(path, prefopt::test::from_hex(c["hex"].get<std::string>()));
    const std::string error = format_error_of([&] {
      const safetensors_file f(path);
      for (const auto& n : f.names()) (void)f.bytes(n);
    });
    const bool want_accept = c["prefopt_accepts"].get<bool>();
    CHECK(error.empty() == want_accept);
    if (c["prefopt_stricter"].get<bool>()) {
      CHECK(c["upstream_accepts"].get<bool>());
      ++stricter;
    }
    if (want_accept) {
      ++accepted;
      continue;
    }
    ++rejected;
    INFO(error);
    CHECK(error.find(path.string()) != std::string::npos);
    if (!c["tensor"].is_null()) CHECK(error.find("tensor '" + c["tensor"].get<std::string>() + "'") != std::string::npos);
  }
  MESSAGE(rejected << " malformed files rejected (" << stricter << " of them accepted by upstream), " << accepted
                   << " valid files accepted");
  CHECK(rejected >= 60);
  CHECK(accepted >= 15);
}

TEST_CASE("specific messages for the checks the format needs") {
  prefopt::test::temp_dir dir;
  auto error_for = [&](const std::string& header, std::size_t data) {
    const auto path = dir / "x.safetensors";
    prefopt::test::write_bytes(path, prefopt::test::crafted_file(header, data));
    return format_error_of([&] { const safetensors_file f(path); });
  };
  const std::string t = R"("dtype":"F32","shape":[2])";
  CHECK(error_for(R"({"a":{)" + t + R"(,"data_offsets":[0,8]},"a":{)" + t + R"(,"data_offsets":[8,16]}})", 16)
            .find("tensor 'a': tensor name appears more than once") != std::string::npos);
  CHECK(error_for(R"({"a":{)" + t + R"(,"data_offsets":[0,8]}})", 12).find("4 bytes at the end of the data buffer") !=
        std::string::npos);
  CHECK(error_for(R"({"a":{)" + t + R"(,"data_offsets":[0,8]},"b":{)" + t + R"(,"data_offsets":[12,20]}})", 20)
            .find("gap of 4 bytes") != std::string::npos);
  CHECK(error_for(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"b":{)" + t + R"(,"data_offsets":[8,16]}})", 16)
            .find("overlap tensor 'a'") != std::string::npos);
  CHECK(error_for(R"({"a":{)" + t + R"(,"data_offsets":[0,8]}})", 4).find("past the end of the data buffer") !=
        std::string::npos);
  CHECK(error_for(R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", 8).find("unknown dtype 'F33'") !=
        std::string::npos);
  CHECK(error_for(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8).find("needs 12 bytes") !=
        std::string::npos);
  CHECK(error_for(R"({"__metadata__":{"k":"1","k":"2"}})", 0).find("key 'k' appears more than once in '__metadata__'") !=
        std::string::npos);
  CHECK(error_for(R"({"__metadata__":{"k":1}})", 0).find("'__metadata__' value of key 'k'") != std::string::npos);
  CHECK(error_for("{}\xff", 0).find("not valid UTF-8") != std::string::npos);
  CHECK(error_for("[1]", 0).find("not a JSON object") != std::string::npos);
}

TEST_CASE("files that cannot be opened are io_error naming them") {
  prefopt::test::temp_dir dir;
  CHECK_THROWS_AS(safetensors_file(dir / "absent.safetensors"), prefopt::io_error);
  try {
    const safetensors_file f(dir.path());
    FAIL("a directory opened");
  } catch (const prefopt::io_error& e) {
    CHECK(std::string(e.what()).find(dir.path().string()) != std::string::npos);
  }
}

TEST_CASE("every dtype of the format is recognised with its size; a moved file stays readable") {
  const auto cases = prefopt::test::load_json("safetensors/malformed_cases.json");
  prefopt::test::temp_dir dir;
  for (const auto& c : cases["cases"]) {
    if (c["name"] != "ok_all_dtypes") continue;
    const auto path = dir / "all.safetensors";
    prefopt::test::write_bytes(path, prefopt::test::from_hex(c["hex"].get<std::string>()));
    safetensors_file f(path);
    CHECK(f.size() == 22);
    for (const auto& row : detail::dtype_table) {
      const auto& t = f.info("t_" + std::string(row.name));
      CHECK(t.type == row.type);
      CHECK(parse_dtype(row.name) == row.type);
      CHECK(t.byte_size() * 8 == t.numel() * dtype_bits(row.type));
    }
    CHECK(!parse_dtype("f32"));
    const auto before = std::vector<std::byte>(f.bytes("t_F64").begin(), f.bytes("t_F64").end());
    const safetensors_file moved(std::move(f));
    CHECK(std::vector<std::byte>(moved.bytes("t_F64").begin(), moved.bytes("t_F64").end()) == before);
    CHECK(moved.read_f32("t_F64") == std::vector<float>{0.0f});
  }
}

TEST_CASE("a number too large for a double in the header is a format_error, not a stray JSON exception") {
  // Found by tests/fuzz/safetensors_fuzz.cpp: nlohmann-json throws out_of_range (not parse_error)
  // for 1e400, which escaped the header parser.
  prefopt::test::temp_dir dir;
  const auto path = dir / "x.safetensors";
  for (const std::string header : {R"({"a":1e400})", R"({"__metadata__":{"k":"v"},"x":-6e666})"}) {
    prefopt::test::write_bytes(path, prefopt::test::crafted_file(header, 0));
    CHECK(format_error_of([&] { const safetensors_file f(path); }).find("out of the range of a double") != std::string::npos);
  }
}
