#!/usr/bin/env python3
"""Golden gzip files for tests/io/gzip_test.cpp, compressed by Python's gzip/zlib.

Writes tests/data/gzip/*.gz and tests/data/gzip/manifest.json. The uncompressed contents are not
committed: they come from a small deterministic generator (below) that the C++ test reimplements,
and the manifest records each file's expected length and CRC-32 (zlib.crc32) so the test can tell a
generator mismatch from a decoder bug. Deterministic: mtime is 0 everywhere and the generator is a
fixed 64-bit LCG. Rerun: python3 tools/reference/data_make_gzip_reference.py
"""
import gzip
import io
import json
import struct
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "gzip"
M64 = (1 << 64) - 1
A, C = 6364136223846793005, 1442695040888963407
# The same list, in the same order, is in tests/io/gzip_test.cpp.
WORDS = ["the", "model", "prefers", "chosen", "rejected", "answer", "token", "café", "naïve", "日本語",
         "😀", "κόσμος", "\t", "{", "}", "\"quoted\"", "0.125", "-7", "prompt", "completion",
         "a", "an", "of", "to", "and", "preference", "optimization", "reference", "policy", "beta"]


def generate(size, seed, noise_every=0, noise_len=0):
    """Text of `size` bytes: words and newlines picked by an LCG, with optional runs of noise bytes."""
    x = seed & M64
    out = bytearray()
    while len(out) < size:
        x = (x * A + C) & M64
        r = x >> 33
        if noise_every and r % noise_every == 0:
            for _ in range(noise_len):
                x = (x * A + C) & M64
                out.append(x >> 56)
        elif r % 11 == 0:
            out += b"\n"
        else:
            out += WORDS[r % len(WORDS)].encode("utf-8") + b" "
    return bytes(out[:size])


def deflate_gzip(data, level=6, strategy=zlib.Z_DEFAULT_STRATEGY):
    """A gzip member from zlib with a chosen strategy (wbits=31: gzip wrapper, mtime 0)."""
    c = zlib.compressobj(level, zlib.DEFLATED, 31, 8, strategy)
    return c.compress(data) + c.flush()


def handmade_header_member(data, level=6):
    """A member whose header carries FEXTRA, FNAME, FCOMMENT and FHCRC (RFC 1952 §2.3)."""
    flags = 0x02 | 0x04 | 0x08 | 0x10
    header = bytes([0x1F, 0x8B, 8, flags]) + struct.pack("<I", 0) + bytes([0, 3])
    extra = b"AB" + struct.pack("<H", 4) + b"xyzw"
    header += struct.pack("<H", len(extra)) + extra + b"data.jsonl\x00" + b"a comment\x00"
    header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    body = c.compress(data) + c.flush()
    return header + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    small = dict(size=65536, seed=1)
    large = dict(size=1 << 20, seed=7, noise_every=40009, noise_len=30000)
    part_a, part_b = dict(size=5000, seed=3), dict(size=7000, seed=4)
    files = []

    def add(name, blob, parts, note):
        data = b"".join(generate(**p) for p in parts)
        assert gzip.decompress(blob) == data, name
        (OUT / name).write_bytes(blob)
        files.append({"file": name, "parts": parts, "size": len(data), "crc32": zlib.crc32(data),
                      "compressed_size": len(blob), "note": note})

    s = generate(**small)
    for level in (0, 1, 6, 9):
        add(f"text_level{level}.gz", gzip.compress(s, compresslevel=level, mtime=0), [small],
            f"gzip.compress(level={level})")
    add("text_fixed.gz", deflate_gzip(s, 6, zlib.Z_FIXED), [small], "zlib Z_FIXED: fixed Huffman blocks only")
    add("text_huffman_only.gz", deflate_gzip(s, 6, zlib.Z_HUFFMAN_ONLY), [small], "zlib Z_HUFFMAN_ONLY")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="text.txt", mode="wb", fileobj=buf, mtime=0) as f:
        f.write(s)
    add("text_fname.gz", buf.getvalue(), [small], "gzip.GzipFile with a file name (FNAME)")
    add("text_header_fields.gz", handmade_header_member(s), [small], "FEXTRA, FNAME, FCOMMENT, FHCRC")
    add("empty.gz", gzip.compress(b"", mtime=0), [], "gzip.compress(b'')")
    multi = (gzip.compress(generate(**part_a), 1, mtime=0) + gzip.compress(b"", 6, mtime=0)
             + gzip.compress(generate(**part_b), 9, mtime=0) + b"\x00\x00\x00\x00")
    add("multi_member.gz", multi, [part_a, part_b], "3 members (level 1, empty, level 9) + 4 zero bytes")
    add("large.gz", gzip.compress(generate(**large), 6, mtime=0), [large],
        "1 MiB with runs of noise bytes (stored blocks among dynamic ones)")
    manifest = {"generator": "tools/reference/data_make_gzip_reference.py", "lcg": [A, C], "files": files}
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    for f in files:
        print(f"{f['file']:24s} {f['size']:8d} -> {f['compressed_size']:7d}")


if __name__ == "__main__":
    main()
