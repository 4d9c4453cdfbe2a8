// Tests for prefopt/data/jsonl.hpp. Expected values: tests/data/datasets/lines_expected.json is what
// Python's json.loads makes of each non-blank line of lines.jsonl (BOM, CRLF, blank lines, no final
// newline), written by tools/reference/data_make_dataset_reference.py, which also gzipped it with
// Python's gzip. Bad inputs are written by the tests themselves into a temporary folder.
#include <doctest/doctest.h>

#include <prefopt/data/jsonl.hpp>
#include <support/data.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using prefopt::data::jsonl_line;
using prefopt::data::jsonl_reader;
using prefopt::data::on_error;

fs::path temp_file(const std::string& name, const std::string& bytes) {
  const auto dir = fs::temp_directory_path() / "prefopt_jsonl_test";
  fs::create_directories(dir);
  const auto path = dir / name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::vector<jsonl_line> read_all(jsonl_reader& in) {
  std::vector<jsonl_line> out;
  for (const auto& l : in) out.push_back(l);
  return out;
}

template <class F>
std::string data_error_of(F&& f) {
  try {
    f();
  } catch (const prefopt::data_error& e) {
    return e.what();
  }
  FAIL_CHECK("no data_error");
  return {};
}

} // namespace

TEST_CASE("BOM, CRLF, blank lines and a last line without newline, plain and gzip") {
  std::ifstream ef(prefopt::test::data_path("datasets/lines_expected.json"));
  const auto expected = nlohmann::json::parse(ef);
  for (const char* name : {"datasets/lines.jsonl", "datasets/lines.jsonl.gz"}) {
    CAPTURE(name);
    jsonl_reader in(prefopt::test::data_path(name));
    const auto got = read_all(in);
    REQUIRE(got.size() == expected.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      CHECK(got[i].line == expected[i][0].get<std::size_t>());
      CHECK(got[i].value == expected[i][1]);
    }
    CHECK(in.compressed() == std::string(name).ends_with(".gz"));
    CHECK(in.report().lines == 7);
    CHECK(in.report().blank == 3);
    CHECK(in.report().records == 4);
    CHECK(in.report().skipped == 0);
  }
}

TEST_CASE("a malformed line stops the reader with file:line and the parser's message") {
  const auto path = temp_file("bad.jsonl", "{\"a\": 1}\n{\"a\": }\n{\"a\": 3}\n");
  jsonl_reader in(path);
  jsonl_line l;
  REQUIRE(in.next(l));
  const auto msg = data_error_of([&] { in.next(l); });
  CHECK(msg == path.string() +
                   ":2: malformed JSON at column 7: syntax error while parsing value - unexpected '}'; "
                   "expected '[', '{', or a literal");
}

TEST_CASE("on_error::skip counts malformed lines, keeps the first few messages and goes on") {
  std::string text;
  for (int i = 1; i <= 20; ++i) text += i % 4 == 0 ? "{broken\n" : "{\"i\": " + std::to_string(i) + "}\n";
  const auto path = temp_file("skip.jsonl", text);
  jsonl_reader in(path, {.policy = on_error::skip, .keep_errors = 3});
  const auto got = read_all(in);
  CHECK(got.size() == 15);
  CHECK(got.back().line == 19);
  CHECK(got.back().value["i"] == 19);
  const auto& r = in.report();
  CHECK(r.lines == 20);
  CHECK(r.records == 15);
  CHECK(r.skipped == 5);
  REQUIRE(r.first_errors.size() == 3);
  CHECK(r.first_errors[0].find(path.string() + ":4: malformed JSON") == 0);
  CHECK(r.first_errors[2].find(path.string() + ":12: malformed JSON") == 0);
  CHECK(r.summary().find("20 lines: 15 records, 5 skipped, 0 blank; first error: " + path.string() + ":4:") == 0);
}

TEST_CASE("NaN and Infinity (as Python's json.dumps writes them) name their field") {
  const auto path = temp_file("nan.jsonl",
                              "{\"preference_prob\": NaN, \"chosen\": \"NaN in a string is fine\"}\n"
                              "{\"a\": {\"b\": [1, -Infinity]}}\n"
                              "{\"weight\": Infinity}\n"
                              "{\"x\": \"NaN\", \"y\": \"\\\"Infinity\"}\n");
  jsonl_reader in(path, {.policy = on_error::skip});
  const auto got = read_all(in);
  REQUIRE(got.size() == 1);
  CHECK(got[0].value["y"] == "\"Infinity");
  const auto& e = in.report().first_errors;
  REQUIRE(e.size() == 3);
  CHECK(e[0] == path.string() +
                    ":1: field 'preference_prob': NaN is not a valid JSON number (non-finite values are not allowed)");
  CHECK(e[1].find(path.string() + ":2: field 'a.b[1]': -Infinity is not a valid JSON number") == 0);
  CHECK(e[2].find(path.string() + ":3: field 'weight': Infinity is not") == 0);
}

TEST_CASE("invalid UTF-8 inside a string and a number too large for a double are malformed lines") {
  const auto path = temp_file("utf8.jsonl", "{\"a\": \"ok\"}\n{\"a\": \"\xC3\x28\"}\n{\"w\": 1e400}\n");
  jsonl_reader in(path, {.policy = on_error::skip});
  CHECK(read_all(in).size() == 1);
  const auto& e = in.report().first_errors;
  REQUIRE(e.size() == 2);
  CHECK(e[0].find(path.string() + ":2: malformed JSON at column") == 0);
  CHECK(e[0].find("UTF-8") != std::string::npos);
  CHECK(e[1].find(path.string() + ":3: malformed JSON: number overflow parsing '1e400'") == 0);
}

TEST_CASE("reject() applies the policy to records the caller cannot use") {
  const auto path = temp_file("reject.jsonl", "{\"a\": 1}\n{\"a\": 2}\n{\"a\": 3}\n");
  {
    jsonl_reader in(path, {.policy = on_error::skip});
    for (const auto& l : in)
      if (l.value["a"] == 2) in.reject(prefopt::data_error(prefopt::where_in(in.file(), l.line, "a"), "even"));
    CHECK(in.report().records == 2);
    CHECK(in.report().skipped == 1);
    CHECK(in.report().first_errors.at(0) == path.string() + ":2: field 'a': even");
  }
  {
    jsonl_reader in(path);
    jsonl_line l;
    REQUIRE(in.next(l));
    CHECK_THROWS_WITH_AS(in.reject(prefopt::data_error("here", "why")), "here: why", prefopt::data_error);
  }
}

TEST_CASE("gzip is recognised by its magic bytes, not its name") {
  std::ifstream gz(prefopt::test::data_path("datasets/lines.jsonl.gz"), std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(gz), std::istreambuf_iterator<char>()};
  jsonl_reader renamed(temp_file("compressed_without_suffix.jsonl", bytes));
  CHECK(renamed.compressed());
  CHECK(read_all(renamed).size() == 4);

  CHECK_THROWS_WITH_AS(jsonl_reader(temp_file("plain.jsonl.gz", "{\"a\": 1}\n")),
                       doctest::Contains("the name ends in .gz but the file does not start with the gzip magic"),
                       prefopt::format_error);

  // Corrupt compressed data stops the reader whatever the policy.
  auto broken = bytes;
  broken[broken.size() - 6] = static_cast<char>(broken[broken.size() - 6] ^ 0x10);
  jsonl_reader corrupt(temp_file("corrupt.jsonl.gz", broken), {.policy = on_error::skip});
  CHECK_THROWS_WITH_AS(read_all(corrupt), doctest::Contains("CRC-32 mismatch"), prefopt::format_error);
}

TEST_CASE("empty and missing files") {
  jsonl_reader empty(temp_file("empty.jsonl", ""));
  CHECK(read_all(empty).empty());
  CHECK(empty.report().lines == 0);
  jsonl_reader blank(temp_file("blank.jsonl", "\n \n\r\n"));
  CHECK(read_all(blank).empty());
  CHECK(blank.report().blank == 3);
  CHECK_THROWS_AS(jsonl_reader(prefopt::test::data_path("datasets/no_such_file.jsonl")), prefopt::io_error);
}

TEST_CASE("a line longer than max_line_bytes stops the reader, plain and gzip, whatever the policy") {
  const std::string text = "{\"a\": 1}\n{\"b\": \"" + std::string(100, 'x') + "\"}\n{\"c\": 3}\n";
  jsonl_reader plain(temp_file("long_line.jsonl", text), {.policy = on_error::skip, .max_line_bytes = 64});
  jsonl_line l;
  REQUIRE(plain.next(l));
  CHECK(l.value["a"] == 1);
  CHECK(data_error_of([&] { (void)plain.next(l); }) ==
        temp_file("long_line.jsonl", text).string() + ":2: line longer than the limit of 64 bytes");

  // Compressed: the first line of lines.jsonl.gz is 12 bytes (BOM, {"a": 1}, CR).
  const auto gz_path = prefopt::test::data_path("datasets/lines.jsonl.gz");
  jsonl_reader gz(gz_path, {.policy = on_error::skip, .max_line_bytes = 11});
  CHECK(data_error_of([&] { (void)read_all(gz); }) == gz_path.string() + ":1: line longer than the limit of 11 bytes");
  jsonl_reader gz12(gz_path, {.max_line_bytes = 30});
  CHECK(read_all(gz12).size() == 4);

  // The default limit reads ordinary files.
  jsonl_reader ok(temp_file("long_line_ok.jsonl", text));
  CHECK(read_all(ok).size() == 3);
  CHECK(prefopt::data::read_options{}.max_line_bytes == std::size_t{64} << 20);
}
