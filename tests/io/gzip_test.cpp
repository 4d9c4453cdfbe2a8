// Tests for prefopt/io/gzip.hpp. Expected contents: tests/data/gzip/*.gz were compressed by Python's
// gzip/zlib (tools/reference/data_make_gzip_reference.py) from text made by a deterministic
// generator that generate() below reimplements; manifest.json gives each file's length and zlib.crc32.
// Corrupt inputs are made here by editing those bytes or by writing DEFLATE bits by hand; the
// decompression bomb of the line-length test is made here with zlib, streaming.
#include <doctest/doctest.h>

#include <prefopt/io/gzip.hpp>
#include <support/data.hpp>

#include <nlohmann/json.hpp>
#include <zlib.h>

#include <array>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace {

using prefopt::io::gzip_reader;

// The generator of data_make_gzip_reference.py: words and newlines picked by a 64-bit LCG.
std::string generate(std::size_t size, std::uint64_t seed, std::uint64_t noise_every = 0, std::size_t noise_len = 0) {
  static const std::vector<std::string> words{
      "the", "model", "prefers", "chosen", "rejected", "answer", "token", "café", "naïve", "日本語",
      "😀", "κόσμος", "\t", "{", "}", "\"quoted\"", "0.125", "-7", "prompt", "completion",
      "a", "an", "of", "to", "and", "preference", "optimization", "reference", "policy", "beta"};
  constexpr std::uint64_t a = 6364136223846793005ULL, c = 1442695040888963407ULL;
  std::uint64_t x = seed;
  std::string out;
  while (out.size() < size) {
    x = x * a + c;
    const std::uint64_t r = x >> 33;
    if (noise_every != 0 && r % noise_every == 0) {
      for (std::size_t i = 0; i < noise_len; ++i) {
        x = x * a + c;
        out.push_back(static_cast<char>(x >> 56));
      }
    } else if (r % 11 == 0) {
      out += '\n';
    } else {
      out += words[r % words.size()] + ' ';
    }
  }
  out.resize(size);
  return out;
}

const nlohmann::json& manifest() {
  static const nlohmann::json m = [] {
    std::ifstream in(prefopt::test::data_path("gzip/manifest.json"));
    return nlohmann::json::parse(in);
  }();
  return m;
}

nlohmann::json entry(const std::string& file) {
  for (const auto& f : manifest()["files"])
    if (f["file"] == file) return f;
  FAIL("no manifest entry for " << file);
  return {};
}

std::string expected(const nlohmann::json& f) {
  std::string s;
  for (const auto& p : f["parts"])
    s += generate(p["size"].get<std::size_t>(), p["seed"].get<std::uint64_t>(),
                  p.value("noise_every", std::uint64_t{0}), p.value("noise_len", std::size_t{0}));
  return s;
}

std::string bytes_of(const std::string& file) {
  std::ifstream in(prefopt::test::data_path("gzip/" + file), std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string read_all(gzip_reader& r, std::size_t chunk = 4096) {
  std::string out, buf(chunk, '\0');
  while (const auto n = r.read(buf.data(), buf.size())) out.append(buf.data(), n);
  return out;
}

std::string decompress(const std::string& bytes) {
  std::istringstream in(bytes);
  gzip_reader r(in, "mem.gz");
  return read_all(r);
}

// The message of the format_error that decompressing `bytes` throws ("" and a failed check if none).
std::string error_of(const std::string& bytes) {
  try {
    (void)decompress(bytes);
  } catch (const prefopt::format_error& e) {
    return e.what();
  }
  FAIL_CHECK("no format_error");
  return {};
}

// DEFLATE bits, least significant first; Huffman codes go most significant bit first.
struct bit_writer {
  std::string bytes;
  int used = 8;
  void put(std::uint32_t value, int n) {
    for (int i = 0; i < n; ++i) bit((value >> i) & 1U);
  }
  void code(std::uint32_t code, int len) {
    for (int i = len - 1; i >= 0; --i) bit((code >> i) & 1U);
  }
  void bit(unsigned b) {
    if (used == 8) { bytes.push_back('\0'); used = 0; }
    bytes.back() = static_cast<char>(static_cast<unsigned char>(bytes.back()) | (b << used++));
  }
};

// A gzip header (no optional fields) followed by raw DEFLATE bytes and a zero trailer.
std::string member(const std::string& deflate) {
  return std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", 10) + deflate + std::string(8, '\0');
}

// A gzip stream written by zlib (deflateInit2 in gzip mode), fed piece by piece.
struct gz_writer {
  z_stream z{};
  std::string bytes, out = std::string(1 << 16, '\0');
  gz_writer() { REQUIRE(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) == Z_OK); }
  ~gz_writer() { deflateEnd(&z); }
  void run(const std::string& in, int flush) {
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    do {
      z.next_out = reinterpret_cast<Bytef*>(out.data());
      z.avail_out = static_cast<uInt>(out.size());
      REQUIRE(deflate(&z, flush) != Z_STREAM_ERROR);
      bytes.append(out.data(), out.size() - z.avail_out);
    } while (z.avail_out == 0);
  }
  void add(const std::string& in) { run(in, Z_NO_FLUSH); }
  std::string finish() {
    run("", Z_FINISH);
    return bytes;
  }
};

} // namespace

TEST_CASE("the generator reproduces the golden files' text (length and zlib.crc32)") {
  for (const auto& f : manifest()["files"]) {
    const auto data = expected(f);
    CHECK(data.size() == f["size"].get<std::size_t>());
    CHECK(crc32(0, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())) ==
          f["crc32"].get<std::uint32_t>());
  }
}

TEST_CASE("every golden file decompresses to its generated text, whatever the read size") {
  for (const auto& f : manifest()["files"]) {
    const auto name = f["file"].get<std::string>();
    CAPTURE(name);
    const auto want = expected(f);
    for (std::size_t chunk : {std::size_t{1}, std::size_t{7}, std::size_t{4096}, std::size_t{1} << 20}) {
      if (chunk == 1 && want.size() > 100000) continue;
      gzip_reader r(prefopt::test::data_path("gzip/" + name));
      const auto got = read_all(r, chunk);
      REQUIRE(got.size() == want.size());
      CHECK(got == want);
      CHECK(r.at_end());
      CHECK(r.position() == want.size());
    }
  }
}

TEST_CASE("block types: level 0 is stored, Z_FIXED is fixed Huffman, level 6 dynamic, large has both") {
  auto blocks = [](const std::string& name) {
    gzip_reader r(prefopt::test::data_path("gzip/" + name));
    (void)read_all(r);
    return r.blocks();
  };
  const auto l0 = blocks("text_level0.gz");
  CHECK(l0[0] > 0); CHECK(l0[1] == 0); CHECK(l0[2] == 0);
  const auto fx = blocks("text_fixed.gz");
  CHECK(fx[0] == 0); CHECK(fx[1] > 0); CHECK(fx[2] == 0);
  const auto l6 = blocks("text_level6.gz");
  CHECK(l6[2] > 0);
  const auto big = blocks("large.gz");
  CHECK(big[0] > 0); CHECK(big[2] > 0);
}

TEST_CASE("getline splits like std::getline, including a last line without newline") {
  const auto want = expected(entry("text_level9.gz"));
  std::vector<std::string> lines;
  std::istringstream split(want);
  for (std::string l; std::getline(split, l);) lines.push_back(l);
  gzip_reader r(prefopt::test::data_path("gzip/text_level9.gz"));
  std::vector<std::string> got;
  for (std::string l; r.getline(l);) got.push_back(l);
  CHECK(want.back() != '\n');
  CHECK(got == lines);
}

TEST_CASE("multi-member, empty member and empty file") {
  gzip_reader multi(prefopt::test::data_path("gzip/multi_member.gz"));
  CHECK(read_all(multi) == generate(5000, 3) + generate(7000, 4));
  CHECK(multi.members() == 3);

  gzip_reader empty(prefopt::test::data_path("gzip/empty.gz"));
  CHECK(read_all(empty).empty());
  CHECK(empty.members() == 1);

  std::istringstream nothing("");
  gzip_reader zero(nothing, "zero.gz");
  std::string line;
  CHECK_FALSE(zero.getline(line));
  CHECK(zero.members() == 0);

  CHECK_THROWS_AS(gzip_reader(prefopt::test::data_path("gzip/no_such_file.gz")), prefopt::io_error);
}

TEST_CASE("header errors name the file and byte") {
  const auto good = bytes_of("text_level6.gz");
  auto bad = good;
  bad[0] = 'x';
  CHECK(error_of(bad) == "mem.gz: byte 0: not a gzip file (magic bytes 0x78 0x8b, expected 0x1f 0x8b)");
  bad = good;
  bad[2] = 7;
  CHECK(error_of(bad).find("unsupported compression method 7") != std::string::npos);
  bad = good;
  bad[3] = 0x20;
  CHECK(error_of(bad).find("reserved header flag bits") != std::string::npos);
  bad = bytes_of("text_header_fields.gz");
  CHECK(decompress(bad) == expected(entry("text_header_fields.gz")));
  const auto fhcrc = bad.find("a comment") + 10;  // the CRC-16 follows the comment's terminator
  bad[fhcrc] = static_cast<char>(bad[fhcrc] ^ 1);
  CHECK(error_of(bad).find("gzip header CRC-16 mismatch") != std::string::npos);
  CHECK(error_of(good + "junk") ==
        "mem.gz: byte " + std::to_string(good.size()) +
            ": trailing bytes after gzip member 1 (magic bytes 0x6a 0x75, expected 0x1f 0x8b)");
  CHECK(decompress(good + std::string(5, '\0')) == expected(entry("text_level6.gz")));  // zero padding
}

TEST_CASE("trailer errors: CRC-32 and ISIZE mismatch") {
  const auto good = bytes_of("text_level6.gz");
  const auto n = good.size();
  auto bad = good;
  bad[n - 8] = static_cast<char>(bad[n - 8] ^ 0x40);
  const auto crc = error_of(bad);
  CHECK(crc.find("mem.gz: byte " + std::to_string(n - 8) + ": CRC-32 mismatch in member 1") == 0);
  bad = good;
  bad[n - 1] = 1;
  CHECK(error_of(bad).find("mem.gz: byte " + std::to_string(n - 4) + ": length mismatch in member 1") == 0);
}

TEST_CASE("DEFLATE errors: zlib's message, the file and the byte") {
  // Block type 3: BFINAL = 1, BTYPE = 3.
  CHECK(error_of(member("\x07")) == "mem.gz: byte 10: corrupt DEFLATE data (invalid block type)");

  // Stored block whose NLEN is not the complement of LEN (level 0: the first block starts at byte 10).
  auto stored = bytes_of("text_level0.gz");
  stored[13] = static_cast<char>(stored[13] ^ 1);
  CHECK(error_of(stored).find("mem.gz: byte ") == 0);
  CHECK(error_of(stored).find("corrupt DEFLATE data (invalid stored block lengths)") != std::string::npos);

  // Dynamic block whose code-length code has four codes of length 1: over-subscribed.
  bit_writer over;
  over.put(1, 1); over.put(2, 2);                   // BFINAL, BTYPE = dynamic
  over.put(0, 5); over.put(0, 5); over.put(0, 4);   // HLIT = 257, HDIST = 1, HCLEN = 4
  for (int i = 0; i < 4; ++i) over.put(1, 3);       // lengths of code-length symbols 16, 17, 18, 0
  CHECK(error_of(member(over.bytes)).find("corrupt DEFLATE data (invalid code lengths set)") != std::string::npos);

  // Fixed block starting with a match (length symbol 257, distance code 0): nothing to copy from.
  bit_writer far;
  far.put(1, 1); far.put(1, 2);
  far.code(1, 7);  // 257 = 0000001
  far.code(0, 5);  // distance 1
  CHECK(error_of(member(far.bytes)).find("corrupt DEFLATE data (invalid distance too far back)") != std::string::npos);

  // Fixed block with literal/length symbol 286 (code 11000110): invalid.
  bit_writer sym;
  sym.put(1, 1); sym.put(1, 2);
  sym.code(0xC6, 8);
  CHECK(error_of(member(sym.bytes)).find("corrupt DEFLATE data (invalid literal/length code)") != std::string::npos);
}

TEST_CASE("every truncation of a file is reported as truncated") {
  const auto good = bytes_of("text_level9.gz");
  for (std::size_t n = 1; n < good.size(); n += (n < 300 || n > good.size() - 300) ? 1 : 37) {
    CAPTURE(n);
    const auto msg = error_of(good.substr(0, n));
    CHECK(msg.find("mem.gz: byte ") == 0);
    CHECK(msg.find("truncated") != std::string::npos);
  }
}

TEST_CASE("a flipped bit anywhere is caught or harmless") {
  const auto good = bytes_of("multi_member.gz");
  const auto want = expected(entry("multi_member.gz"));
  std::size_t caught = 0, harmless = 0;
  for (std::size_t i = 0; i < good.size(); i += 3)
    for (int b = 0; b < 8; ++b) {
      auto bad = good;
      bad[i] = static_cast<char>(bad[i] ^ (1 << b));
      try {
        const auto got = decompress(bad);
        CHECK(got == want);  // e.g. a flip in MTIME or in the padding bits of the last byte
        ++harmless;
      } catch (const prefopt::format_error& e) {
        CHECK(std::string(e.what()).find("mem.gz: byte ") == 0);
        ++caught;
      }
    }
  MESSAGE("bit flips caught: " << caught << ", harmless: " << harmless);
  CHECK(caught > 10 * harmless);
}

TEST_CASE("a line longer than the limit is an error naming the file and line, with bounded memory") {
  // A decompression bomb: two short lines, then 300 MB of 'a' without a newline (about 300 KB
  // compressed), written with zlib chunk by chunk.
  gz_writer w;
  w.add("first\nsecond\n");
  const std::string as(1 << 20, 'a');
  for (int i = 0; i < 300; ++i) w.add(as);
  const std::string bomb = w.finish();
  MESSAGE("bomb: " << bomb.size() << " bytes compressed, " << 300 * as.size() + 13 << " decompressed");
  CHECK(bomb.size() < 1000000);

  std::istringstream in(bomb);
  gzip_reader r(in, "bomb.gz");
  std::string line;
  REQUIRE(r.getline(line, '\n', 4 << 20));
  CHECK(line == "first");
  REQUIRE(r.getline(line, '\n', 4 << 20));
  CHECK(line == "second");
  try {
    (void)r.getline(line, '\n', 4 << 20);
    FAIL("no error for a 300 MB line");
  } catch (const prefopt::data_error& e) {
    CHECK(std::string(e.what()) == "bomb.gz:3: line longer than the limit of 4194304 bytes");
  }
  CHECK(line.size() <= std::size_t{4} << 20);  // never more than the limit held
  CHECK(line.capacity() <= std::size_t{8} << 20);
  CHECK(r.position() <= (std::size_t{4} << 20) + 13 + (1 << 16));  // stopped early, not after 300 MB

  // A line of exactly the limit is accepted, also as the last line; one byte more is not.
  gz_writer small;
  small.add(std::string(12, 'x') + "\n" + std::string(12, 'y') + "\n" + std::string(13, 'z'));
  std::istringstream in2(small.finish());
  gzip_reader r2(in2, "small.gz");
  CHECK(r2.getline(line, '\n', 12));
  CHECK(r2.getline(line, '\n', 12));
  CHECK(line == std::string(12, 'y'));
  CHECK_THROWS_WITH_AS(r2.getline(line, '\n', 12), "small.gz:3: line longer than the limit of 12 bytes",
                       prefopt::data_error);
}
