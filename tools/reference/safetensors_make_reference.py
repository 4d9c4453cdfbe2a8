#!/usr/bin/env python3
"""Golden data for prefopt's safetensors reader and writer (tests/io/safetensors*_test.cpp).

Run:  python3 tools/reference/safetensors_make_reference.py [out_dir]
      (out_dir defaults to tests/data/safetensors). Deterministic: rerunning rewrites the same bytes.

Writes, with the upstream Python library (safetensors, torch, huggingface_hub):
  reference.safetensors / reference.json
      save_file of F32, F16, BF16, F64, I64, BOOL tensors, scalars (shape []), zero-size tensors and
      metadata; the JSON lists each tensor's header entry and torch's float32 value of every element
      (as uint32 bit patterns, so NaN, inf and -0 are exact), or the integers for I64/BOOL.
  conversions.safetensors
      every F16 bit pattern with torch's float32 of it, and float32 samples (edge cases + seeded random
      bit patterns) with torch's F16 and BF16 rounding of them (cross-checked against numpy for F16).
  writer_cases.json / writer_<case>.safetensors
      tensor lists (values as uint32 bits, integer data as hex) and the bytes save_file produces for
      them; the C++ writer must reproduce them byte for byte. Upstream orders metadata keys at random
      (a Rust HashMap); files with several keys are saved until the keys come out sorted.
  sharded/  (model.safetensors.index.json + shards, by huggingface_hub.save_torch_state_dict) and
  sharded.json (tensor → shard, shape, values).
  malformed_cases.json
      crafted files (hex) and upstream's verdict on each: whether safetensors.deserialize and
      safe_open accept it, and the kind of error. The C++ reader must agree, except where it is
      stricter on purpose (marked "prefopt_stricter").
"""
import json
import os
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np
import safetensors
import torch
from huggingface_hub import save_torch_state_dict
from safetensors import deserialize, safe_open
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "data" / "safetensors"


def f32_bits(t: torch.Tensor) -> list:
    return [int(x) for x in t.detach().float().contiguous().view(torch.int32).flatten().tolist()]


def u32(b):
    return [x & 0xFFFFFFFF for x in b]


def from_bits(bits, dtype=torch.float32):
    arr = np.array(bits, dtype=np.uint32).view(np.int32)
    return torch.from_numpy(arr.copy()).view(torch.float32).to(dtype)


def save_sorted_metadata(tensors, path: Path, metadata) -> None:
    """save_file, repeated until the metadata keys come out in sorted order.

    Upstream keeps metadata in a Rust HashMap with a random seed, so the key order in the header
    changes from call to call. Every order is a valid save_file output; taking the sorted one makes
    the bytes reproducible (and it is the order prefopt's writer uses)."""
    want = sorted(metadata) if metadata else []
    for _ in range(20000):
        save_file(tensors, path, metadata=metadata)
        if list(header_of(path).get("__metadata__", {}) or {}) == want:
            return
    raise RuntimeError(f"save_file never wrote the metadata of {path} in sorted order")


def header_of(path: Path) -> dict:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n])


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------------------
def make_reference() -> None:
    inf, nan = float("inf"), float("nan")
    tensors = {
        "f32.matrix": torch.tensor([[1.5, -0.0, 3.4e38], [1e-40, inf, -inf]], dtype=torch.float32),
        "f32.nan": torch.tensor([nan], dtype=torch.float32),
        # 2^-24 (smallest subnormal), largest subnormal, smallest normal, 65504 (max), 1/3, inf, NaN
        "f16.values": torch.tensor(
            [0.0, -0.0, 2.0**-24, -(2.0**-24), 1023 * 2.0**-24, 2.0**-14, 65504.0, -65504.0, 1 / 3, inf, -inf, nan, 1.0, -2.5],
            dtype=torch.float16,
        ),
        "bf16.values": torch.tensor(
            [0.0, -0.0, 2.0**-133, 1.0e-39, 2.0**-126, 3.3895314e38, 1 / 3, inf, -inf, nan, -1.0, 100.5],
            dtype=torch.bfloat16,
        ),
        "f64.values": torch.tensor([1 / 3, 1e300, -1e300, 1e-50, 3.141592653589793, -0.0, 2.0**-149], dtype=torch.float64),
        "i64.ids": torch.tensor([0, -1, 2**62, 50256], dtype=torch.int64),
        "bool.mask": torch.tensor([True, False, True], dtype=torch.bool),
        "scalar.f32": torch.tensor(2.5, dtype=torch.float32),
        "scalar.bf16": torch.tensor(-0.75, dtype=torch.bfloat16),
        "empty.f32": torch.zeros((0, 3), dtype=torch.float32),
        "empty.f16": torch.zeros((0,), dtype=torch.float16),
        "f32.cube": torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) / 8 - 1,
    }
    metadata = {"format": "pt", "note": "prefopt reference"}
    path = OUT / "reference.safetensors"
    save_sorted_metadata(tensors, path, metadata)
    header = header_of(path)
    expected = {"metadata": metadata, "tensors": {}}
    for name, t in tensors.items():
        entry = dict(header[name])
        if t.dtype in (torch.int64, torch.bool):
            entry["values"] = [int(x) for x in t.flatten().tolist()]
        else:
            entry["f32_bits"] = u32(f32_bits(t))
        expected["tensors"][name] = entry
    # What safe_open itself reports (names order, metadata).
    with safe_open(path, "pt") as f:
        expected["keys"] = list(f.keys())
        assert f.metadata() == metadata
    write_json(OUT / "reference.json", expected)


# ------------------------------------------------------------------------------------------------
def make_conversions() -> None:
    all_f16 = torch.from_numpy(np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).copy()).view(torch.float16)
    edge = [
        0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99, 65520.0, 65536.0, -65520.0, 1e10, 3.4028235e38, float("inf"), float("-inf"),
        2.0**-14, 2.0**-15, 2.0**-24, 2.0**-25, 1.5 * 2.0**-25, 2.0**-26, 3 * 2.0**-25, 5 * 2.0**-25, 1e-45, 1.17549435e-38,
        1.0009765625, 1.00048828125, 1.00146484375, 1.0 + 2.0**-8, 1.0 + 3 * 2.0**-9, 1.0 + 2.0**-9, 1.0 + 2.0**-9 + 2.0**-20,
        3.3895314e38, 3.3961776e38, 3.39e38, 1 / 3, 2 / 3, 0.1, 1e-8, -1e-8,
    ]
    edge_bits = u32(f32_bits(torch.tensor(edge, dtype=torch.float32)))
    rng = np.random.default_rng(20240607)
    random_bits = rng.integers(0, 2**32, size=12000, dtype=np.uint64).astype(np.uint32)
    # Bits concentrated where F16 is subnormal/normal and around the BF16/F16 rounding points.
    near = rng.integers(0x33000000, 0x47800000, size=4000, dtype=np.uint64).astype(np.uint32)
    nan_bits = [0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FA12345, 0xFFFFFFFF]
    samples_bits = np.concatenate([np.array(edge_bits + nan_bits, dtype=np.uint32), random_bits, near])
    samples = torch.from_numpy(samples_bits.view(np.int32).copy()).view(torch.float32)
    to_f16 = samples.to(torch.float16)
    to_bf16 = samples.to(torch.bfloat16)
    # Cross-check torch's F16 rounding with numpy's (NaN payloads differ between libraries).
    with np.errstate(over="ignore"):
        np_f16 = samples.numpy().astype(np.float16)
    t_f16 = to_f16.numpy()
    both_nan = np.isnan(np_f16) & np.isnan(t_f16)
    assert np.array_equal(np_f16.view(np.uint16)[~both_nan], t_f16.view(np.uint16)[~both_nan])
    assert np.array_equal(np.isnan(np_f16), np.isnan(t_f16))
    save_file(
        {
            "f16_all": all_f16,
            "f16_all_as_f32": all_f16.float(),
            "f32_samples": samples,
            "f32_samples_to_f16": to_f16,
            "f32_samples_to_bf16": to_bf16,
        },
        OUT / "conversions.safetensors",
        metadata={"format": "pt"},
    )


# ------------------------------------------------------------------------------------------------
WRITER_NAMES = ["b", "a", "a.10", "a.2", "B", "\u00e9t\u00e9", "x\"y\\z\n\t\u0001/\u007f", "model.layers.0.self_attn.q_proj.weight", ""]


def writer_cases():
    rng = np.random.default_rng(7)

    def vals(shape, scale=1.0):
        n = int(np.prod(shape)) if len(shape) else 1
        return (rng.standard_normal(n) * scale).astype(np.float32)

    f32_only = []
    shapes = [[2, 3], [], [0, 4], [4], [2, 3, 4], [1], [3, 1], [5], [2, 2]]
    for name, shape in zip(WRITER_NAMES, shapes):
        f32_only.append({"name": name, "dtype": "F32", "shape": shape, "values": vals(shape)})
    f32_only[3]["values"] = np.array([0.0, -0.0, float("inf"), 1e-45], dtype=np.float32)  # "a.2": -0, inf, subnormal

    specials = np.array([0.0, -0.0, 65504.0, 65520.0, 1e10, -1e-8, 2.0**-25, 3 * 2.0**-25, 1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11,
                         1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, 3.3961776e38, float("-inf"), 1 / 3, 0.1], dtype=np.float32)
    mixed = [
        {"name": "w.f32", "dtype": "F32", "shape": [3, 2], "values": vals([3, 2])},
        {"name": "w.f16", "dtype": "F16", "shape": [16], "values": specials},
        {"name": "w.bf16", "dtype": "BF16", "shape": [4, 4], "values": specials},
        {"name": "a.bf16", "dtype": "BF16", "shape": [3], "values": vals([3], 100.0)},
        {"name": "w.f64", "dtype": "F64", "shape": [2], "values": np.array([1 / 3, -1e-40], dtype=np.float32)},
        {"name": "ids", "dtype": "I64", "shape": [3], "raw": np.array([1, -2, 2**40], dtype="<i8").tobytes()},
        {"name": "pos", "dtype": "I32", "shape": [2, 1], "raw": np.array([7, -7], dtype="<i4").tobytes()},
        {"name": "mask", "dtype": "BOOL", "shape": [3], "raw": bytes([1, 0, 1])},
        {"name": "bytes", "dtype": "U8", "shape": [5], "raw": bytes([0, 1, 2, 254, 255])},
        {"name": "scalar.f16", "dtype": "F16", "shape": [], "values": np.array([-2.75], dtype=np.float32)},
        {"name": "empty.i64", "dtype": "I64", "shape": [0], "raw": b""},
        {"name": "sc", "dtype": "I16", "shape": [1], "raw": np.array([-300], dtype="<i2").tobytes()},
    ]
    small = [{"name": "x", "dtype": "F32", "shape": [2], "values": np.array([1.0, 2.0], dtype=np.float32)}]
    return {
        "f32": {"tensors": f32_only, "metadata": {"format": "pt"}},
        "mixed": {"tensors": mixed, "metadata": {"format": "pt"}},
        "nometa": {"tensors": small, "metadata": None},
        "empty": {"tensors": [], "metadata": {"format": "pt"}},
        "other_format": {"tensors": small, "metadata": {"format": "np"}},
        "multi_meta": {"tensors": small + f32_only[:2],
                       "metadata": {"format": "pt", "b": "2", "a": "1 \"quoted\"", "c": "\u00e9\n", "step": "100"}},
    }


TORCH_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
                "I64": torch.int64, "I32": torch.int32, "BOOL": torch.bool, "U8": torch.uint8, "I16": torch.int16}
NP_DTYPES = {"I64": "<i8", "I32": "<i4", "BOOL": np.bool_, "U8": np.uint8, "I16": "<i2"}


def make_writer_cases() -> None:
    described = {}
    for case, spec in writer_cases().items():
        tensors = {}
        rows = []
        for t in spec["tensors"]:
            row = {"name": t["name"], "dtype": t["dtype"], "shape": t["shape"]}
            if "values" in t:
                v = torch.from_numpy(np.asarray(t["values"], dtype=np.float32).copy()).reshape(t["shape"])
                tensors[t["name"]] = v.to(TORCH_DTYPES[t["dtype"]])
                row["f32_bits"] = u32(f32_bits(v))
            else:
                arr = np.frombuffer(t["raw"], dtype=NP_DTYPES[t["dtype"]]).reshape(t["shape"])
                tensors[t["name"]] = torch.from_numpy(arr.copy())
                row["hex"] = t["raw"].hex()
            rows.append(row)
        path = OUT / f"writer_{case}.safetensors"
        save_sorted_metadata(tensors, path, spec["metadata"])
        entry = {"tensors": rows, "metadata": spec["metadata"], "file": path.name}
        described[case] = entry
    write_json(OUT / "writer_cases.json", described)


# ------------------------------------------------------------------------------------------------
def make_sharded() -> None:
    state = {
        "model.embed_tokens.weight": torch.arange(40, dtype=torch.float32).reshape(10, 4) / 4,
        "model.layers.0.mlp.up_proj.weight": torch.linspace(-1, 1, 32, dtype=torch.float32).reshape(8, 4),
        "model.layers.0.input_layernorm.weight": torch.ones(4, dtype=torch.float32),
        "model.layers.1.mlp.up_proj.weight": torch.linspace(1, 2, 32, dtype=torch.float32).reshape(8, 4).to(torch.bfloat16),
        "model.norm.weight": torch.full((4,), 0.5, dtype=torch.float32),
        "lm_head.weight": -torch.arange(40, dtype=torch.float32).reshape(10, 4),
    }
    out = OUT / "sharded"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        old.unlink()
    save_torch_state_dict(state, out, max_shard_size=200, metadata={"format": "pt"})
    index = json.loads((out / "model.safetensors.index.json").read_text())
    expected = {}
    for name, t in state.items():
        expected[name] = {"shard": index["weight_map"][name], "shape": list(t.shape),
                          "dtype": {torch.float32: "F32", torch.bfloat16: "BF16"}[t.dtype], "f32_bits": u32(f32_bits(t))}
    assert len(set(index["weight_map"].values())) >= 3, "expected several shards"
    write_json(OUT / "sharded.json", expected)


# ------------------------------------------------------------------------------------------------
def crafted(header, data_len=0, raw_header=None, raw_file=None, length=None):
    if raw_file is not None:
        return raw_file
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    n = len(h) if length is None else length
    return struct.pack("<Q", n) + h + bytes(data_len)


def malformed_cases():
    t = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    e = lambda **kw: {**t, **kw}  # noqa: E731
    tensor_json = '{"dtype":"F32","shape":[2],"data_offsets":[0,8]}'
    c = []

    def add(name, data, tensor=None, stricter=False):
        c.append({"name": name, "hex": data.hex(), "tensor": tensor, "prefopt_stricter": stricter})

    add("empty_file", b"")
    add("short_file", b"\x01\x00\x00")
    add("seven_bytes", b"\x00" * 7)
    add("header_past_end", crafted(None, raw_header=b"{}", length=100))
    add("header_absurd", crafted(None, raw_header=b"{}", length=200_000_000))
    add("header_length_huge", crafted(None, raw_header=b"{}", length=2**64 - 1))
    add("header_empty", crafted(None, raw_header=b""))
    add("not_json", crafted(None, raw_header=b"{abc"))
    add("not_object_array", crafted(None, raw_header=b"[]"))
    add("not_object_string", crafted(None, raw_header=b'"x"'))
    add("trailing_garbage", crafted(None, raw_header=b"{} x"))
    add("trailing_nul", crafted(None, raw_header=b"{}\x00"))
    add("nul_then_garbage", crafted(None, raw_header=b"{}\x00xyz"))
    add("nul_in_string", crafted(None, raw_header=b'{"__metadata__":{"x":"a\x00b"}}'))
    add("truncated_json", crafted(None, raw_header=b'{"a":{"dtype":"F32"'))
    add("entry_not_object", crafted({"a": [1]}), "a")
    add("missing_dtype", crafted({"a": {"shape": [2], "data_offsets": [0, 8]}}, 8), "a")
    add("missing_shape", crafted({"a": {"dtype": "F32", "data_offsets": [0, 8]}}, 8), "a")
    add("missing_offsets", crafted({"a": {"dtype": "F32", "shape": [2]}}, 8), "a")
    add("dtype_not_string", crafted({"a": e(dtype=3)}, 8), "a")
    add("dtype_unknown", crafted({"a": e(dtype="F128")}, 8), "a")
    add("dtype_lowercase", crafted({"a": e(dtype="f32")}, 8), "a")
    add("shape_not_array", crafted({"a": e(shape="2")}, 8), "a")
    add("shape_negative", crafted({"a": e(shape=[-2])}, 8), "a")
    add("shape_float", crafted({"a": e(shape=[2.0])}, 8), "a")
    add("shape_string_element", crafted({"a": e(shape=["2"])}, 8), "a")
    add("shape_null", crafted({"a": e(shape=None)}, 8), "a")
    add("shape_minus_zero", crafted(None, raw_header=b'{"a":{"dtype":"F32","shape":[-0],"data_offsets":[0,0]}}'), "a")
    add("offsets_exponent", crafted(None, raw_header=b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8e0]}}', data_len=8), "a")
    add("offsets_three", crafted({"a": e(data_offsets=[0, 8, 8])}, 8), "a")
    add("offsets_one", crafted({"a": e(data_offsets=[0])}, 8), "a")
    add("offsets_string", crafted({"a": e(data_offsets=["0", 8])}, 8), "a")
    add("offsets_negative", crafted({"a": e(data_offsets=[-1, 8])}, 8), "a")
    add("offsets_float", crafted({"a": e(data_offsets=[0.0, 8])}, 8), "a")
    add("offsets_not_array", crafted({"a": e(data_offsets=8)}, 8), "a")
    add("offsets_beyond_u64", crafted(None, raw_header=b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551616]}}', data_len=8), "a")
    add("size_mismatch", crafted({"a": e(shape=[3])}, 8), "a")
    add("size_mismatch_dtype", crafted({"a": e(dtype="F64")}, 8), "a")
    add("scalar_wrong_size", crafted({"a": e(shape=[], data_offsets=[0, 8])}, 8), "a")
    add("offsets_beyond_buffer", crafted({"a": t}, 4), "a")
    add("begin_after_end", crafted({"a": e(data_offsets=[8, 0])}, 8), "a")
    add("overlap", crafted({"a": e(shape=[3], data_offsets=[0, 12]), "b": e(data_offsets=[8, 16])}, 16), "b")
    add("same_range", crafted({"a": t, "b": t}, 8), "b")
    add("zero_size_inside", crafted({"a": t, "z": e(shape=[0], data_offsets=[4, 4])}, 8), "z")
    add("gap_at_start", crafted({"a": e(data_offsets=[4, 12])}, 12), "a")
    add("gap_between", crafted({"a": t, "b": e(data_offsets=[12, 20])}, 20), "b")
    add("trailing_bytes", crafted({"a": t}, 12))
    add("no_tensors_but_buffer", crafted({}, 4))
    # upstream keeps the last of two identical entries and accepts the file
    add("duplicate_tensor_same_range", crafted(None, raw_header=('{"a":%s,"a":%s}' % (tensor_json, tensor_json)).encode(), data_len=8), "a", True)
    add("duplicate_tensor_disjoint", crafted(None, raw_header=('{"a":%s,"a":%s}' % (tensor_json, tensor_json.replace("[0,8]", "[8,16]"))).encode(), data_len=16), "a")
    add("duplicate_key_in_entry", crafted(None, raw_header=b'{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}', data_len=8), "a")
    add("duplicate_metadata", crafted(None, raw_header=b'{"__metadata__":{"x":"1"},"__metadata__":{"x":"2"}}'))
    add("duplicate_key_in_metadata", crafted(None, raw_header=b'{"__metadata__":{"x":"1","x":"2"}}'), None, True)
    add("metadata_string", crafted({"__metadata__": "x"}))
    add("metadata_list", crafted({"__metadata__": ["x"]}))
    add("metadata_value_int", crafted({"__metadata__": {"x": 1}}))
    add("metadata_value_null", crafted({"__metadata__": {"x": None}}))
    add("metadata_value_object", crafted({"__metadata__": {"x": {"y": "z"}}}))
    add("non_utf8_in_string", crafted(None, raw_header=b'{"__metadata__":{"x":"\xff"}}'))
    add("non_utf8_overlong", crafted(None, raw_header=b'{"__metadata__":{"x":"\xc0\xaf"}}'))
    add("non_utf8_surrogate", crafted(None, raw_header=b'{"__metadata__":{"x":"\xed\xa0\x80"}}'))
    add("non_utf8_in_padding", crafted(None, raw_header=b"{}\xff"))
    add("escaped_lone_surrogate", crafted(None, raw_header=b'{"__metadata__":{"x":"\\ud800"}}'))
    add("shape_overflow", crafted({"a": e(shape=[2**62, 2**62])}, 8), "a")
    add("shape_overflow_bytes", crafted({"a": e(shape=[2**62])}, 8), "a")
    add("subbyte_partial", crafted({"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, 2), "a")
    # Accepted by upstream, and by prefopt.
    add("ok_plain", crafted({"a": t}, 8))
    add("ok_no_tensors", crafted({}))
    add("ok_leading_space", crafted(None, raw_header=b" {}"))
    add("ok_whitespace_padding", crafted(None, raw_header=b"{}\n\t \r"))
    add("ok_space_padding", crafted(None, raw_header=b"{}      "))
    add("ok_extra_entry_key", crafted({"a": e(extra=1)}, 8))
    add("ok_metadata_null", crafted({"__metadata__": None}))
    add("ok_metadata_empty", crafted({"__metadata__": {}}))
    add("ok_metadata_unicode", crafted({"__metadata__": {"k\u00e9": "v\u2603\U0001f600"}}))
    add("ok_zero_size_first", crafted({"z": e(shape=[0], data_offsets=[0, 0]), "a": t}, 8))
    add("ok_zero_size_last", crafted({"a": t, "z": e(shape=[3, 0], data_offsets=[8, 8])}, 8))
    add("ok_zero_size_only", crafted({"z": e(shape=[0], data_offsets=[0, 0])}))
    add("ok_scalar", crafted({"s": e(shape=[], data_offsets=[0, 4])}, 4))
    add("ok_unsorted_offsets", crafted({"a": e(data_offsets=[8, 16]), "b": t}, 16))
    add("ok_subbyte_f4", crafted({"a": {"dtype": "F4", "shape": [4], "data_offsets": [0, 2]}}, 2))
    add("ok_all_dtypes", crafted(*all_dtypes_header()))
    return c


def all_dtypes_header():
    # one tensor of each dtype: [bits per element, element count]
    spec = [("BOOL", 8, 1), ("F4", 4, 2), ("F6_E2M3", 6, 4), ("F6_E3M2", 6, 4), ("U8", 8, 1), ("I8", 8, 1), ("F8_E5M2", 8, 1),
            ("F8_E4M3", 8, 1), ("F8_E8M0", 8, 1), ("F8_E4M3FNUZ", 8, 1), ("F8_E5M2FNUZ", 8, 1), ("I16", 16, 1), ("U16", 16, 1),
            ("F16", 16, 1), ("BF16", 16, 1), ("I32", 32, 1), ("U32", 32, 1), ("F32", 32, 1), ("C64", 64, 1), ("F64", 64, 1),
            ("I64", 64, 1), ("U64", 64, 1)]
    h, off = {}, 0
    for name, bits, n in spec:
        size = bits * n // 8
        h["t_" + name] = {"dtype": name, "shape": [n], "data_offsets": [off, off + size]}
        off += size
    return h, off


def upstream_verdict(data: bytes):
    def kind(msg: str) -> str:
        msg = msg.split("Error while deserializing header: ")[-1].split("Error while deserializing: ")[-1]
        return msg.split(":")[0].split("`")[0].strip()

    try:
        deserialize(data)
        d = (True, "")
    except Exception as ex:  # SafetensorError
        d = (False, kind(str(ex)))
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "x.safetensors"
        p.write_bytes(data)
        try:
            with safe_open(p, "numpy") as f:
                for k in f.keys():
                    f.get_slice(k)
            s = (True, "")
        except Exception as ex:
            s = (False, kind(str(ex)))
    return d, s


def make_malformed() -> None:
    cases = malformed_cases()
    for case in cases:
        (d_ok, d_kind), (s_ok, s_kind) = upstream_verdict(bytes.fromhex(case["hex"]))
        assert d_ok == s_ok, (case["name"], d_kind, s_kind)
        case["upstream_accepts"] = d_ok
        case["upstream_error"] = d_kind
        # prefopt rejects exactly what upstream rejects, and a few more (prefopt_stricter).
        case["prefopt_accepts"] = d_ok and not case["prefopt_stricter"]
        if case["name"].startswith("ok_"):
            assert d_ok, case["name"]
    write_json(OUT / "malformed_cases.json", {"safetensors_version": safetensors.__version__, "cases": cases})


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    make_reference()
    make_conversions()
    make_writer_cases()
    make_sharded()
    make_malformed()
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
